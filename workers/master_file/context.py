"""What every master-file operation works with: the process's `Services` and one file's `Run`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Engine

from bus.events import Alert, Event
from bus.producer import Producer
from observer.calendar.clock import Clock
from observer.config.tree import Settings
from observer.db.queries import master_file_sha
from observer.db.readers import reader_engine
from observer.errors import KisTransportError
from observer.process.heartbeat import Heartbeat
from observer.process.retry import retry
from observer.reference.instruments import Listing, MasterFile
from workers.master_file.diff import known_listings
from workers.master_file.files import Current, FileState, LocalFiles
from workers.master_file.outcome import FileOutcome

__all__ = ["Run", "Services"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Run:
    """One file's turn in one operation: what each of its steps needs."""

    file: MasterFile
    state: FileState  # as the run found it
    dry_run: bool = False  # publish nothing, change nothing
    started: float = field(default_factory=time.monotonic)
    force: bool = False  # download even when unchanged, to compare contents
    allow_rollback: bool = False  # apply a file older than the one in use (by hand only)

    def elapsed(self, outcome: FileOutcome) -> FileOutcome:
        """``outcome``, with the time since the run started."""
        outcome.duration_ms = int((time.monotonic() - self.started) * 1000)
        return outcome


class Services:
    """The folder, the database (read-only), the bus and the clock of one process.

    ``producer`` is None for dry runs (which publish nothing and change nothing). The caller
    holds the folder lock.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer | None,
        notifier: Heartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.limits = settings.master_file
        self.clock = clock
        self.producer = producer
        self.notifier = notifier or Heartbeat(None)
        self.files = LocalFiles(
            Path(settings.paths.data_dir),
            self.limits.keep_backups,
            producer.send if producer is not None else None,  # a dry run moves nothing
        )
        self.engine: Engine = reader_engine(settings.database, "master_file")
        # (code, subject) of the alerts raised since `raised` was cleared: a check that
        # raised one again must not end it in the same run
        self.raised: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def publish(self, *events: Event) -> None:
        """Send ``events``, in order; a heartbeat after them."""
        assert self.producer is not None, "dry runs publish nothing"
        for event in events:
            self.producer.send(event)
        self.notifier.beat()

    def alert(
        self, severity: str, code: str, message: str, file: MasterFile, subject: str = ""
    ) -> None:
        """Publish an `Alert` about ``file`` (``subject``: what its `AlertResolved` names)."""
        self.raised.add((code, subject))
        self.publish(
            Alert(
                severity=severity,  # type: ignore[arg-type]
                code=code,
                message=message,
                context={"market": file.market, "file": file.name},
                subject=subject,
            )
        )

    async def retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, retried on transport errors as the settings say."""
        return await retry(
            call,
            clock=self.clock,
            attempts=self.limits.attempts,
            initial_s=self.limits.retry_initial_s,
            max_s=30,
            retry_if=lambda error: isinstance(error, KisTransportError),
        )

    def _database_sha(self, file: MasterFile) -> str:
        with self.engine.connect() as conn:
            return master_file_sha(conn, file.market)

    def in_sync(self, file: MasterFile, current: Current | None) -> bool:
        """True when the database holds what the file in use says (not after a DB restore)."""
        return current is None or self._database_sha(file) == current.sha256

    def known(self, file: MasterFile) -> dict[str, tuple[Listing, bool]]:
        """What the database holds of ``file``'s market: symbol to (listing, active)."""
        with self.engine.connect() as conn:
            return known_listings(conn, file.market)

    def save(self, file: MasterFile, state: FileState, **changes: Any) -> None:
        """Remember ``state`` of ``file`` with ``changes``."""
        self.files.save_state(file, msgspec.structs.replace(state, **changes))

    def install(self, file: MasterFile, archive: Path, fresh: Current, state: FileState) -> None:
        """Make ``archive`` the file in use, once what was published is durable."""
        assert self.producer is not None
        self.producer.flush()  # the changes are durable before the file becomes current
        self.files.install(file, archive, fresh.sha256, self.clock.now_ns())
        now = self.clock.now_ns()
        applied = state.installing(fresh)
        self.save(file, state, current=fresh, failures=0, checked_ns=now, applied=applied)
