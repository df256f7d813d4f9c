"""Check, download, verify, diff and apply the master files; hold, approve, reject, restore.

Order of an applied change, so a crash at any point loses nothing: the download is verified
(size, zip CRC, cp949, record shape) and diffed against the database; the changes and the
check are made durable in the outbox; only then does the archive become current. Killed
before the outbox write, the next run downloads again; killed after it, the outbox resends
and the next run finds the database already changed. A skipped check still compares the
database's record of the file with the archive in use and re-applies it when they differ.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
from sqlalchemy import Engine, select

from bus.events import Alert, Event, MasterFileChecked, MasterFileReview
from bus.producer import Producer
from observer.clock import Clock
from observer.config import Settings
from observer.db.engine import make_engine
from observer.db.models import MasterFileState
from observer.errors import KisTransportError, MasterFileError
from observer.instruments import (
    MASTER_FILES,
    Diff,
    Listing,
    MasterFile,
    Quality,
    assess,
    diff,
    known_listings,
    master_file,
    read_listings,
)
from observer.kis.master import RemoteFile, download_master, extract_single, head_master
from observer.kis.session import master_http
from observer.notify import Notifier
from observer.phases import KST
from observer.retry import retry
from workers.master_file.decide import Decision, decide
from workers.master_file.files import Current, FileState, LocalFiles, Review, sha256_of

__all__ = ["Outcome", "Updater"]

T = TypeVar("T")
SAMPLE = 10  # listings shown per kind in reviews and dry runs
RESYNC = "the database is behind the file in use"


@dataclass(slots=True)
class Outcome:
    """What one run did to one file."""

    market: str
    file_name: str
    action: str  # skip | download | hold | dry-run | resync | approve | reject | restore | error
    reason: str
    records: int = 0
    added: int = 0
    modified: int = 0
    removed: int = 0
    complete_pct: Decimal | None = None
    review_id: str = ""
    error: str = ""
    duration_ms: int = 0
    changes: list[str] = field(default_factory=list)  # a sample, for people

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(self).items()
        }


def _sample(d: Diff) -> list[str]:
    lines = [f"+ {x.symbol} {x.name or x.name_en}" for x in d.new[:SAMPLE]]
    lines += [f"~ {x.symbol} {', '.join(f)}: {x.name or x.name_en}" for x, f in d.changed[:SAMPLE]]
    lines += [f"- {x.symbol} {x.name or x.name_en}" for x in d.removed[:SAMPLE]]
    return lines


class Updater:
    """The master-file operations of one process, publishing through ``producer``.

    ``producer`` is None for dry runs (which publish nothing and change nothing). The caller
    holds the folder lock.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer | None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.limits = settings.masterfile
        self.clock = clock
        self.producer = producer
        self.notifier = notifier or Notifier(None)
        self.files = LocalFiles(Path(settings.paths.data_dir), self.limits.keep_backups)
        self.engine: Engine = make_engine(settings.database.url, read_only=True)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ helpers

    def _publish(self, *events: Event) -> None:
        assert self.producer is not None, "dry runs publish nothing"
        for event in events:
            self.producer.send(event)
        self.notifier.beat()

    def _alert(self, severity: str, code: str, message: str, file: MasterFile) -> None:
        self._publish(
            Alert(
                severity=severity,  # type: ignore[arg-type]
                code=code,
                message=message,
                context={"market": file.market, "file": file.name},
            )
        )

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
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
            row = conn.execute(
                select(MasterFileState.sha256).where(MasterFileState.market == file.market)
            ).first()
        return row[0] if row else ""

    def _in_sync(self, file: MasterFile, current: Current | None) -> bool:
        """True when the database holds what the file in use says (not after a DB restore)."""
        return current is None or self._database_sha(file) == current.sha256

    def _read(self, file: MasterFile, archive: Path) -> tuple[list[Listing], str]:
        """Verify and parse an archive: (listings, sha256 of the member)."""
        member = extract_single(archive.read_bytes(), file.member)
        return read_listings(file, member), hashlib.sha256(member).hexdigest()

    def _known(self, file: MasterFile) -> dict[str, tuple[Listing, bool]]:
        with self.engine.connect() as conn:
            return known_listings(conn, file.market)

    def _check(
        self,
        file: MasterFile,
        outcome: Outcome,
        previous: Current | None,
        now: Current | None,
        *,
        remote_size: int,
        changed: bool,
        downloaded: bool,
        forced: bool = False,
    ) -> MasterFileChecked:
        """The check event: ``previous`` was in use before, ``now`` is in use after."""
        return MasterFileChecked(
            market=file.market,
            file_name=file.name,
            remote_size=remote_size,
            previous_size=previous.size if previous else 0,
            changed=changed,
            downloaded=downloaded,
            records=now.records if now else 0,
            sha256=now.sha256 if now else "",
            forced=forced,
            error=outcome.error,
            action=outcome.action,
            reason=outcome.reason,
            added=outcome.added,
            modified=outcome.modified,
            removed=outcome.removed,
            complete_pct=outcome.complete_pct,
            review_id=outcome.review_id,
            duration_ms=outcome.duration_ms,
        )

    # ------------------------------------------------------------------ update

    async def update(self, files: list[MasterFile], *, force: bool, dry_run: bool) -> list[Outcome]:
        """Check each file in turn; a file's failure never stops the others."""
        self.notifier.beat()
        outcomes = []
        async with master_http(self.settings) as http:
            for file in files:
                outcomes.append(await self._update_one(http, file, force=force, dry_run=dry_run))
                self.notifier.beat()
        return outcomes

    async def _update_one(
        self, http: httpx.AsyncClient, file: MasterFile, *, force: bool, dry_run: bool
    ) -> Outcome:
        started = time.monotonic()
        state = self.files.state(file)
        try:
            remote = await self._retry(lambda: head_master(http, file.name))
            decision = decide(state.current, remote, self.limits, force=force)
            if decision.action == "skip":
                outcome = self._skip(file, state, remote, decision, dry_run, started)
            else:
                outcome = await self._download(http, file, state, decision, dry_run, started)
        except (MasterFileError, KisTransportError) as exc:
            outcome = self._failed(file, state, exc, dry_run, started)
        return outcome

    def _elapsed(self, outcome: Outcome, started: float) -> Outcome:
        outcome.duration_ms = int((time.monotonic() - started) * 1000)
        return outcome

    def _save(self, file: MasterFile, state: FileState, **changes: Any) -> None:
        self.files.save_state(file, msgspec.structs.replace(state, **changes))

    def _skip(
        self,
        file: MasterFile,
        state: FileState,
        remote: RemoteFile,
        decision: Decision,
        dry_run: bool,
        started: float,
    ) -> Outcome:
        current = state.current
        if not self._in_sync(file, current):
            return self._apply_current(file, state, RESYNC, dry_run, started)
        records = current.records if current else 0
        outcome = self._elapsed(
            Outcome(file.market, file.name, "skip", decision.reason, records), started
        )
        if dry_run:
            return outcome
        if decision.severity != "info":
            message = f"{file.name}: {decision.reason}"
            self._alert(decision.severity, "master_remote_suspect", message, file)
        self._publish(
            self._check(
                file, outcome, current, current,
                remote_size=remote.size, changed=False, downloaded=False,
            )
        )  # fmt: skip
        self._save(file, state, failures=0, checked_ns=self.clock.now_ns())
        return outcome

    async def _download(
        self,
        http: httpx.AsyncClient,
        file: MasterFile,
        state: FileState,
        decision: Decision,
        dry_run: bool,
        started: float,
    ) -> Outcome:
        target = self.files.temp_path(file)
        got = await self._retry(
            lambda: download_master(http, file.name, target, progress=self._progress)
        )
        try:
            listings, content_sha = self._read(file, got.path)
        except MasterFileError:
            if not dry_run:
                self.files.quarantine(file, got.path, self.clock.now_ns())
            got.path.unlink(missing_ok=True)
            raise
        quality = assess(listings)
        fresh = Current(
            size=got.size,
            sha256=got.sha256,
            content_sha256=content_sha,
            records=quality.records - quality.duplicates,
            etag=got.remote.etag,
            last_modified=got.remote.last_modified,
            installed_ns=self.clock.now_ns(),
        )
        if content_sha == state.rejected_sha256:
            got.path.unlink()
            if not self._in_sync(file, state.current):
                return self._apply_current(file, state, RESYNC, dry_run, started)
            why = "contents were rejected in review"
            outcome = self._elapsed(Outcome(file.market, file.name, "skip", why), started)
            if not dry_run:
                self._publish(
                    self._check(
                        file, outcome, state.current, state.current,
                        remote_size=got.size, changed=False, downloaded=True,
                    )
                )  # fmt: skip
            return outcome
        known = self._known(file)
        d = diff(listings, known)
        outcome = Outcome(
            file.market, file.name, "download", decision.reason, fresh.records,
            len(d.new), len(d.changed), len(d.removed), quality.complete_pct,
            changes=_sample(d),
        )  # fmt: skip
        if dry_run:
            got.path.unlink()
            outcome.action = "dry-run"
            return self._elapsed(outcome, started)
        if state.current is not None and content_sha == state.current.content_sha256:
            outcome.reason += "; contents unchanged"
        reasons = [decision.reason] if decision.action == "hold" else []
        if known:  # the first load of a market is applied in full
            reasons += self._mass_change(d, known, fresh.records)
        self._quality_alert(file, quality)
        if reasons:
            return self._hold(file, state, fresh, d, got.path, reasons, outcome, started)
        if decision.severity != "info":
            message = f"{file.name}: {decision.reason}"
            self._alert(decision.severity, "master_size_change", message, file)
        state = self._supersede(file, state, "a newer file was applied")
        self._publish(*d.events(initial=not known))
        self._publish(
            self._check(
                file, self._elapsed(outcome, started), state.current, fresh,
                remote_size=got.size, changed=not d.empty, downloaded=True,
                forced=decision.reason.startswith("forced"),
            )
        )  # fmt: skip
        self._install(file, got.path, fresh, state)
        return outcome

    def _progress(self, _received: int) -> None:
        self.notifier.beat()

    def _mass_change(
        self, d: Diff, known: dict[str, tuple[Listing, bool]], records: int
    ) -> list[str]:
        """Reasons to hold a change for review: a broken file is likelier than such a market.

        Too many new or removed listings at once, or too few records for the active ones.
        """
        limits = self.limits
        reasons = []
        if len(d.new) > limits.max_new:
            reasons.append(f"{len(d.new)} new listings (more than {limits.max_new})")
        if len(d.removed) > limits.max_removed:
            reasons.append(f"{len(d.removed)} removed listings (more than {limits.max_removed})")
        active = sum(1 for _, is_active in known.values() if is_active)
        if active and 100 * (active - records) / active > limits.max_shrink_pct:
            shrink = 100 * (active - records) / active
            reasons.append(f"{records} records for {active} active listings ({shrink:.1f}% fewer)")
        return reasons

    def _quality_alert(self, file: MasterFile, quality: Quality) -> None:
        if quality.complete_pct < Decimal(str(self.limits.quality_alert_pct)):
            self._alert(
                "warning",
                "master_quality_low",
                f"{file.name}: {quality.complete_pct}% complete; " + "; ".join(quality.lines()),
                file,
            )

    def _install(self, file: MasterFile, archive: Path, fresh: Current, state: FileState) -> None:
        assert self.producer is not None
        self.producer.flush()  # the changes are durable before the file becomes current
        self.files.install(file, archive, fresh.sha256, self.clock.now_ns())
        self._save(file, state, current=fresh, failures=0, checked_ns=self.clock.now_ns())

    def _supersede(self, file: MasterFile, state: FileState, why: str) -> FileState:
        if not state.pending_review:
            return state
        review, _ = self.files.review(state.pending_review)
        self._publish(_review_event(review, "superseded", why))
        self.files.close_review(review.review_id)
        return msgspec.structs.replace(state, pending_review="")

    def _hold(
        self,
        file: MasterFile,
        state: FileState,
        fresh: Current,
        d: Diff,
        archive: Path,
        reasons: list[str],
        outcome: Outcome,
        started: float,
    ) -> Outcome:
        outcome.action = "hold"
        outcome.reason = "; ".join(reasons)
        if state.pending_review:
            pending, _ = self.files.review(state.pending_review)
            if pending.content_sha256 == fresh.content_sha256:  # the same change again
                archive.unlink()
                outcome.review_id = pending.review_id
                self._publish(self._held_check(file, outcome, state, fresh, started))
                return outcome
            state = self._supersede(file, state, "a newer change was held")
        now = self.clock.now_ns()
        stamp = datetime.fromtimestamp(now / 1e9, KST).strftime("%Y%m%dT%H%M%S")
        review = Review(
            review_id=f"{file.market.lower()}-{stamp}",
            market=file.market,
            file_name=file.name,
            held_ns=now,
            reasons=tuple(reasons),
            records=fresh.records,
            sha256=fresh.sha256,
            content_sha256=fresh.content_sha256,
            added=len(d.new),
            modified=len(d.changed),
            removed=len(d.removed),
            sample_new=tuple(f"{x.symbol} {x.name or x.name_en}" for x in d.new[:SAMPLE]),
            sample_changed=tuple(f"{x.symbol} {', '.join(f)}" for x, f in d.changed[:SAMPLE]),
            sample_removed=tuple(f"{x.symbol} {x.name or x.name_en}" for x in d.removed[:SAMPLE]),
            etag=fresh.etag,
            last_modified=fresh.last_modified,
        )
        self.files.hold(review, archive)
        outcome.review_id = review.review_id
        self._publish(
            _review_event(review, "held", outcome.reason),
            Alert(
                severity="critical",
                code="master_review_held",
                message=(
                    f"{file.name} held for review {review.review_id}: {outcome.reason}; "
                    f"`observer masterfile review --approve {review.review_id}` or --reject"
                ),
                context={"market": file.market, "file": file.name, "review": review.review_id},
            ),
            self._held_check(file, outcome, state, fresh, started),
        )
        self._save(file, state, pending_review=review.review_id, failures=0, checked_ns=now)
        return outcome

    def _held_check(
        self, file: MasterFile, outcome: Outcome, state: FileState, fresh: Current, started: float
    ) -> MasterFileChecked:
        """A held file changes nothing in use: the check names the file still current."""
        return self._check(
            file, self._elapsed(outcome, started), state.current, state.current,
            remote_size=fresh.size, changed=True, downloaded=True,
        )  # fmt: skip

    def _failed(
        self,
        file: MasterFile,
        state: FileState,
        exc: Exception,
        dry_run: bool,
        started: float,
    ) -> Outcome:
        outcome = self._elapsed(
            Outcome(file.market, file.name, "error", type(exc).__name__, error=str(exc)), started
        )
        if dry_run:
            return outcome
        failures = state.failures + 1
        severity = "critical" if failures >= self.limits.failures_critical else "error"
        self._alert(
            severity,
            "master_file_failed",
            f"{file.name}: {exc} ({failures} failed run(s) in a row; the file in use is kept)",
            file,
        )
        self._publish(
            self._check(
                file, outcome, state.current, state.current,
                remote_size=0, changed=False, downloaded=False,
            )
        )  # fmt: skip
        self._save(file, state, failures=failures)
        return outcome

    # ------------------------------------------------------------------ the file in use

    def _apply_current(
        self, file: MasterFile, state: FileState, reason: str, dry_run: bool, started: float
    ) -> Outcome:
        """Diff the file in use against the database and publish what differs."""
        current = state.current
        assert current is not None
        listings, _ = self._read(file, self.files.current_path(file))
        known = self._known(file)
        d = diff(listings, known)
        outcome = Outcome(
            file.market, file.name, "dry-run" if dry_run else "resync", reason,
            current.records, len(d.new), len(d.changed), len(d.removed),
            assess(listings).complete_pct, changes=_sample(d),
        )  # fmt: skip
        if dry_run:
            return self._elapsed(outcome, started)
        self._publish(*d.events(initial=not known))
        self._publish(
            self._check(
                file, self._elapsed(outcome, started), current, current,
                remote_size=current.size, changed=not d.empty, downloaded=False,
            )
        )  # fmt: skip
        self._save(file, state, failures=0, checked_ns=self.clock.now_ns())
        return outcome

    # ------------------------------------------------------------------ operators

    def approve(self, review_id: str) -> Outcome:
        """Apply a held change as it is now against the database, and make its file current."""
        started = time.monotonic()
        review, archive = self.files.review(review_id)
        file = master_file(review.market)
        if sha256_of(archive) != review.sha256:
            raise MasterFileError(f"{archive} does not match review {review_id}; reject it")
        listings, content_sha = self._read(file, archive)
        known = self._known(file)
        d = diff(listings, known)
        outcome = Outcome(
            file.market, file.name, "approve", f"review {review_id} approved", len(listings),
            len(d.new), len(d.changed), len(d.removed), assess(listings).complete_pct,
            review_id=review_id, changes=_sample(d),
        )  # fmt: skip
        state = self.files.state(file)
        fresh = Current(
            archive.stat().st_size, review.sha256, content_sha, len(listings),
            review.etag, review.last_modified, self.clock.now_ns(),
        )  # fmt: skip
        self._publish(*d.events(initial=not known))
        self._publish(
            _review_event(review, "approved", "approved by an operator"),
            self._check(
                file, self._elapsed(outcome, started), state.current, fresh,
                remote_size=fresh.size, changed=not d.empty, downloaded=False,
            ),
        )  # fmt: skip
        self._install(file, archive, fresh, msgspec.structs.replace(state, pending_review=""))
        self.files.close_review(review_id)
        return outcome

    def reject(self, review_id: str) -> Outcome:
        """Drop a held change; the same contents are not held again."""
        review, _ = self.files.review(review_id)
        file = master_file(review.market)
        assert self.producer is not None
        self._publish(_review_event(review, "rejected", "rejected by an operator"))
        self.producer.flush()
        state = self.files.state(file)
        self._save(file, state, pending_review="", rejected_sha256=review.content_sha256)
        self.files.close_review(review_id)
        return Outcome(
            file.market, file.name, "reject", f"review {review_id} rejected", review.records,
            review_id=review_id,
        )  # fmt: skip

    def restore(self, file: MasterFile, backup: Path | None = None) -> Outcome:
        """Put a backup (the newest by default) back in use and apply it to the database.

        The contents it replaces count as rejected, so the next check does not bring them
        straight back; a newer file from the server is applied as usual.
        """
        started = time.monotonic()
        backups = self.files.backups(file)
        source = backup or (backups[0] if backups else None)
        if source is None or not source.exists():
            raise MasterFileError(f"no backup of {file.name} in {self.files.root / 'backups'}")
        listings, content_sha = self._read(file, source)
        state = self.files.state(file)
        temp = self.files.temp_path(file)
        shutil.copyfile(source, temp)
        temp.chmod(0o600)
        known = self._known(file)
        d = diff(listings, known)
        outcome = Outcome(
            file.market, file.name, "restore", f"restored {source.name}", len(listings),
            len(d.new), len(d.changed), len(d.removed), assess(listings).complete_pct,
            changes=_sample(d),
        )  # fmt: skip
        fresh = Current(
            temp.stat().st_size, sha256_of(temp), content_sha, len(listings),
            installed_ns=self.clock.now_ns(),
        )  # fmt: skip
        self._publish(*d.events(initial=not known))
        self._publish(
            self._check(
                file, self._elapsed(outcome, started), state.current, fresh,
                remote_size=fresh.size, changed=not d.empty, downloaded=False,
            )
        )  # fmt: skip
        rejected = state.current.content_sha256 if state.current else ""
        self._install(file, temp, fresh, msgspec.structs.replace(state, rejected_sha256=rejected))
        return outcome

    def verify(self, region: str) -> tuple[list[str], dict[str, Quality]]:
        """Compare the database with the files in use for ``region``: (problems, quality)."""
        problems: list[str] = []
        quality: dict[str, Quality] = {}
        files = [f for f in MASTER_FILES if f.region == region]
        if not files:
            raise MasterFileError(f"unknown region {region!r}")
        for file in files:
            known = self._known(file)
            stray = sorted(s for s, (x, _) in known.items() if x.region != region)
            if stray:
                problems.append(f"{file.market}: {len(stray)} rows not in {region}: {stray[:5]}")
            path = self.files.current_path(file)
            if not path.exists():
                problems.append(f"{file.market}: no file in use ({path})")
                continue
            listings, _ = self._read(file, path)
            quality[file.market] = assess(listings)
            d = diff(listings, known)
            if not d.empty:
                problems.append(f"{file.market}: database differs from the file: {d.summary()}")
        return problems, quality


def _review_event(review: Review, state: str, reason: str) -> MasterFileReview:
    return MasterFileReview(
        review_id=review.review_id,
        market=review.market,
        file_name=review.file_name,
        state=state,  # type: ignore[arg-type]
        reason=reason,
        added=review.added,
        modified=review.modified,
        removed=review.removed,
        records=review.records,
        sha256=review.sha256,
    )
