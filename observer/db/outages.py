"""Reads a daemon retries while the database fails them: one policy for every reader.

A PostgreSQL restart or failover fails reads for seconds to minutes, and ending the process helps
nothing (its restarts meet the same database, then the supervisor parks it). So a read the
database fails (`not_answering`) is logged, counted and tried again on the
`observer.process.retry.Backoff` curve while the process beats and reports ``failing_s``
(`ReadRetries`); after `READS_GIVE_UP_S` in a row it is no outage but a wrong URL: `StoreError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from observer.db.engine import error_reason
from observer.errors import StoreError
from observer.process.retry import Backoff

__all__ = ["DATABASE_ERRORS", "READS_GIVE_UP_S", "ReadRetries", "not_answering"]

log = logging.getLogger(__name__)

T = TypeVar("T")

READS_GIVE_UP_S = 600.0  # wall seconds of failed reads in a row that end the process
DATABASE_ERRORS = (StoreError, SQLAlchemyError)  # what a database outage raises in a read


def not_answering(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised from, the database not answering: an outage.

    The driver's `OperationalError` or `InterfaceError`, as DB-API names a connection
    refused, lost or timed out, or a server starting up or shutting down; a missing table
    or a refused statement is no outage. The product's own errors keep the driver's
    exception as their cause or context (``raise ... from None`` keeps the context).
    """
    walked: set[int] = set()  # `raise exc from exc` makes a chain a loop
    seen: BaseException | None = exc
    while seen is not None and id(seen) not in walked:
        if isinstance(seen, OperationalError | InterfaceError):
            return True
        walked.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return False


class ReadRetries:
    """The failed reads in a row of one daemon, and the pause before its next try.

    A failure is a `StoreError` (the reader pool's timeout) or a `SQLAlchemyError` (the
    driver's). Pauses run in wall time, and `read` reads in a thread so the process beats
    meanwhile; its ``failing_s`` makes ``observer ctl status`` unhealthy.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        on_failure: Callable[[], object] = lambda: None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = Backoff(initial_s, max_s, monotonic=monotonic)
        self.on_failure = on_failure  # counts a failed read (one a caller handles itself too)

    def failed(self, what: str, exc: Exception) -> float:
        """Count and log a failed read; the pause before the next try.

        `StoreError` once the reads have failed for `READS_GIVE_UP_S` in a row.
        """
        self.on_failure()
        pause = self._backoff.failed()
        failing = self._backoff.failing_s()
        if failing >= READS_GIVE_UP_S:
            raise StoreError(f"{what} failed for {failing:.0f} s: {error_reason(exc)}") from exc
        log.warning("%s failed (%s); again in %.1f s", what, error_reason(exc), pause)
        return pause

    def succeeded(self) -> None:
        """A read went through: the next failure is the first of a new outage."""
        self._backoff.succeeded()

    def failing_s(self) -> float:
        """Seconds the reads have failed in a row, for a heartbeat's ``failing_s``.

        0 once one went through; at least 0.1 while they fail, so that the first failure
        says so at once.
        """
        if not self._backoff.failures:
            return 0.0
        return max(round(self._backoff.failing_s(), 1), 0.1)

    async def read(self, read: Callable[[], T], what: str, stop: asyncio.Event) -> T | None:
        """``read()`` in a thread, again after each pause while the database fails it.

        None if ``stop`` is set while it fails (the pause ends early then).
        """
        while True:
            try:
                value = await asyncio.to_thread(read)
            except DATABASE_ERRORS as exc:
                pause = self.failed(what, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    return None
                continue
            self.succeeded()
            return value
