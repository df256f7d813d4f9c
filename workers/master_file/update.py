"""Check, download, verify, diff and apply the master files; restore and verify.

An applied change is crash-safe: the download is verified and diffed against the database,
the changes and the check are made durable in the outbox, and only then does the archive
become current. A skipped check re-applies the file in use when the database differs. A
stale mirror's download is refused (``master_stale_file``) unless allowed by hand. A failed
file raises ``master_file_failed`` (subject the market), resolved by its next check that
gets through (`workers.master_file.settle`); held changes are `workers.master_file.review`'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec

from bus.events import AlertResolved
from bus.producer import Producer
from observer.calendar.clock import Clock
from observer.cli.support import open_alert_subjects
from observer.config.tree import Settings
from observer.errors import KisTransportError, MasterFileError
from observer.kis.master import Downloaded, RemoteFile, download_master, probe_master
from observer.kis.session import master_http
from observer.process.heartbeat import Heartbeat
from observer.reference.instruments import MASTER_FILES, MasterFile
from workers.master_file import SOURCE
from workers.master_file.context import Run, Services
from workers.master_file.decide import STALE, FileDecision, decide, without_head
from workers.master_file.diff import diff
from workers.master_file.files import Current, FileState, sha256_of
from workers.master_file.outcome import FileOutcome, sample
from workers.master_file.quality import Quality, assess
from workers.master_file.reading import Parsed, read_archive
from workers.master_file.review import Reviews
from workers.master_file.settle import (
    MALFORMED,
    NEW_CODES,
    QUALITY_LOW,
    SIZE_CHANGE,
    SUSPECT,
    Settle,
    Through,
)

__all__ = ["FileOutcome", "Updater"]

RESYNC = "the database is behind the file in use"
FAILED = "master_file_failed"  # the alert of a file that failed; its subject: the market
_NAMED = 10  # malformed records a warning names; the rest are counted


class Updater(Services):
    """The master-file operations of one process, publishing through ``producer``.

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
        super().__init__(settings, clock, producer, notifier)
        self.reviews = Reviews(self)
        self.settle = Settle(self)

    # ------------------------------------------------------------------ update

    async def update(
        self,
        files: list[MasterFile],
        *,
        force: bool,
        dry_run: bool,
        allow_rollback: bool = False,
    ) -> list[FileOutcome]:
        """Check each file in turn; a file's failure never stops the others.

        ``allow_rollback`` (by hand only) applies a file the worker applied before and
        replaced since, or one older than the file in use, instead of refusing it as stale.
        """
        self.notifier.beat()
        self.raised.clear()
        alerted: set[str] | None = set()
        if not dry_run:  # read while beating: a database slow to answer is no hung job
            alerted = await asyncio.to_thread(open_alert_subjects, self.settings, SOURCE, FAILED)
            await self.settle.load()
        outcomes = []
        async with master_http(self.settings.kis) as http:
            for file in files:
                run = Run(
                    file,
                    self.files.state(file),
                    dry_run,
                    time.monotonic(),
                    force=force,
                    allow_rollback=allow_rollback,
                )
                outcome, through = await self._update_one(http, run)
                if not dry_run and outcome.action != "error":
                    self._resolve_failed(run, outcome, alerted)
                if not dry_run:
                    self.settle.market(file, through, outcome)
                outcomes.append(outcome)
                self.notifier.beat()
        if alerted and "" in alerted:
            self._resolve_unnamed_failure()
        if not dry_run:
            self.settle.unnamed()
        return outcomes

    async def _update_one(self, http: httpx.AsyncClient, run: Run) -> tuple[FileOutcome, Through]:
        """Check one file: its outcome, and whether a download was applied or it is unchanged."""
        file = run.file
        through: Through = ""
        try:
            remote = await self.retry(lambda: probe_master(http, file.name, self.limits.head))
            if remote is None:
                decision = without_head(run.state.current)
            else:
                decision = decide(
                    run.state.current,
                    remote,
                    self.limits,
                    force=run.force,
                    allow_rollback=run.allow_rollback,
                )
            got: Downloaded | None = None
            if decision.action != "skip":
                got = await self.retry(
                    lambda: download_master(
                        http, file.name, self.files.temp_path(file), progress=self._progress
                    )
                )
                decision = self._judged(run, decision, got, headless=remote is None)
            if decision.action == "skip":
                if got is not None:
                    got.path.unlink(missing_ok=True)
                    remote = got.remote
                assert remote is not None
                outcome = self._skip(run, remote, decision)
                through = "unchanged" if decision.severity == "info" else ""
            else:
                assert got is not None
                outcome = await self._download(run, decision, got)
                through = "applied" if outcome.action == "download" else ""
        except (MasterFileError, KisTransportError) as exc:
            outcome, through = self._failed(run, exc), ""
        return outcome, through

    def _judged(
        self, run: Run, decision: FileDecision, got: Downloaded, *, headless: bool
    ) -> FileDecision:
        """``decision`` once the archive is here: unchanged by its sha256, or as its GET says.

        Without HEAD (``headless``) or validators (``decision.by_hash``) the archive's sha256
        against the one in use's tells an unchanged file (skipped, unless forced) from a
        same-size change; without HEAD the GET's size and validators are then judged as a
        HEAD's would have been (a major decrease is still held, a stale copy still refused).
        """
        current = run.state.current
        if current is None:
            return decision
        if (headless or decision.by_hash) and not run.force and got.sha256 == current.sha256:
            return FileDecision("skip", "unchanged (same sha256)")
        if headless:
            return decide(
                current, got.remote, self.limits, force=True, allow_rollback=run.allow_rollback
            )
        return decision

    def _skip(self, run: Run, remote: RemoteFile, decision: FileDecision) -> FileOutcome:
        file, state = run.file, run.state
        current = state.current
        if not self.in_sync(file, current):
            return self._apply_current(run, RESYNC)
        records = current.records if current else 0
        outcome = run.elapsed(FileOutcome(file.market, file.name, "skip", decision.reason, records))
        if run.dry_run:
            return outcome
        if decision.severity != "info":
            message = f"{file.name}: {decision.reason}"
            code = decision.alert or SUSPECT
            self.alert(decision.severity, code, message, file, subject=file.market)
        self.publish(
            outcome.checked(
                current, current, remote_size=remote.size, changed=False, downloaded=False
            )
        )
        self.save(file, state, failures=0, checked_ns=self.clock.now_ns())
        return outcome

    async def _download(self, run: Run, decision: FileDecision, got: Downloaded) -> FileOutcome:
        file, state = run.file, run.state
        try:
            parsed = read_archive(file, got.path)
        except MasterFileError:
            if not run.dry_run:
                self.files.quarantine(file, got.path, self.clock.now_ns())
            got.path.unlink(missing_ok=True)
            raise
        listings, content_sha = parsed.listings, parsed.content_sha256
        quality = assess(listings, len(parsed.malformed))
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
            return self._refused(run, got.size, "contents were rejected in review")
        if state.superseded(content_sha) and not run.allow_rollback:
            got.path.unlink()
            why = (
                "the server serves a file applied before and replaced since (a stale copy): "
                "not applied; `update --allow-rollback` applies it by hand"
            )
            return self._refused(run, got.size, why, STALE)
        known = self.known(file)
        d = diff(listings, parsed.comparable(known))
        outcome = FileOutcome(
            file.market,
            file.name,
            "download",
            decision.reason + _left_as_stored(parsed) + _beyond_layout(parsed),
            fresh.records,
            len(d.new),
            len(d.changed),
            len(d.removed),
            quality.complete_pct,
            changes=sample(d),
        )
        if run.dry_run:
            got.path.unlink()
            outcome.action = "dry-run"
            return run.elapsed(outcome)
        if state.current is not None and content_sha == state.current.content_sha256:
            outcome.reason += "; contents unchanged"
        reasons = [decision.reason] if decision.action == "hold" else []
        if known:  # the first load of a market is applied in full
            reasons += self.reviews.reasons(d, known, fresh.records)
        if not reasons:  # the contents awaiting review wait for its decision, forced or not
            reasons = self.reviews.awaiting(state, content_sha)
        self._quality_alert(file, quality)
        self._malformed_alert(file, parsed)
        state = self._report_findings(file, state, parsed)
        run = dataclasses.replace(run, state=state)
        if reasons:
            return self.reviews.hold(run, fresh, d, got.path, reasons, outcome)
        if decision.severity != "info":
            message = f"{file.name}: {decision.reason}"
            self.alert(decision.severity, SIZE_CHANGE, message, file, subject=file.market)
        state = self.reviews.supersede(file, state, "a newer file was applied")
        self.publish(*d.events(initial=not known))
        self.publish(
            run.elapsed(outcome).checked(
                state.current,
                fresh,
                remote_size=got.size,
                changed=not d.empty,
                downloaded=True,
                forced=run.force,
            )
        )
        self.install(file, got.path, fresh, state)
        return outcome

    def _refused(self, run: Run, size: int, why: str, alert: str = "") -> FileOutcome:
        """A downloaded file not applied: the one in use stays (re-applied if the DB is behind)."""
        file, state = run.file, run.state
        if not self.in_sync(file, state.current):
            return self._apply_current(run, RESYNC)
        records = state.current.records if state.current else 0
        outcome = run.elapsed(FileOutcome(file.market, file.name, "skip", why, records))
        if run.dry_run:
            return outcome
        if alert:
            self.alert("warning", alert, f"{file.name}: {why}", file, subject=file.market)
        self.publish(
            outcome.checked(
                state.current, state.current, remote_size=size, changed=False, downloaded=True
            )
        )
        self.save(file, state, failures=0, checked_ns=self.clock.now_ns())
        return outcome

    def _progress(self, _received: int) -> None:
        self.notifier.beat()

    def _quality_alert(self, file: MasterFile, quality: Quality) -> None:
        if quality.complete_pct < Decimal(str(self.limits.quality_alert_pct)):
            self.alert(
                "warning",
                QUALITY_LOW,
                f"{file.name}: {quality.complete_pct}% complete; " + "; ".join(quality.lines()),
                file,
                subject=file.market,
            )

    def _malformed_alert(self, file: MasterFile, parsed: Parsed) -> None:
        """A warning naming the records held back: their listings stay as stored.

        One of them may be a live stock (a record one character too long reads 005930 as
        another type): left as it was, never changed or removed, and never unsaid.
        """
        if not parsed.malformed:
            return
        named = "; ".join(str(m) for m in parsed.malformed[:_NAMED])
        more = len(parsed.malformed) - _NAMED
        self.alert(
            "warning",
            MALFORMED,
            f"{file.name}: {len(parsed.malformed)} records hold fields outside their form and "
            f"are left as stored, neither changed nor removed: {named}"
            + (f" and {more} more" if more > 0 else ""),
            file,
            subject=file.market,
        )

    def _report_findings(self, file: MasterFile, state: FileState, parsed: Parsed) -> FileState:
        """An info alert naming what ``parsed`` holds beyond the layout, each finding once.

        A new group code or an extra ``.cod`` column is no damage (its rows are listings),
        but the layout the product reads is behind KIS's: said once, then remembered in
        ``state`` (the answer, saved) so a daily check does not repeat it.
        """
        fresh = [key for key in parsed.findings if key not in state.reported]
        if not fresh:
            return state
        details = [str(c) for c in parsed.new_codes if f"{c.field}={c.code}" in fresh]
        details += [key for key in fresh if key.startswith("cod_columns=")]
        self.alert(
            "info",
            NEW_CODES,
            f"{file.name}: holds what its layout does not list, read as listings: "
            + "; ".join(details),
            file,
            subject=file.market,
        )
        state = msgspec.structs.replace(state, reported=(*state.reported, *fresh))
        self.save(file, state)
        return state

    def _failed(self, run: Run, exc: Exception) -> FileOutcome:
        file, state = run.file, run.state
        outcome = run.elapsed(
            FileOutcome(file.market, file.name, "error", type(exc).__name__, error=str(exc))
        )
        if run.dry_run:
            return outcome
        failures = state.failures + 1
        self.alert(
            self._failed_severity(failures),
            FAILED,
            f"{file.name}: {exc} ({failures} failed run(s) in a row; the file in use is kept)",
            file,
            subject=file.market,
        )
        self.publish(
            outcome.checked(
                state.current, state.current, remote_size=0, changed=False, downloaded=False
            )
        )
        self.save(file, state, failures=failures)
        return outcome

    def _failed_severity(self, failures: int) -> str:
        """An error, critical from ``failures_critical`` failed runs of a file in a row."""
        return "critical" if failures >= self.limits.failures_critical else "error"

    def _resolve_failed(self, run: Run, outcome: FileOutcome, alerted: set[str] | None) -> None:
        """End the open ``master_file_failed`` of ``run``'s market: its check got through.

        Only of an alert that is open (``alerted``; None: the database cannot say, then the
        file's own count of failed runs does): a resolution of nothing would go to every
        channel each run.
        """
        file, failures = run.file, run.state.failures
        if (file.market not in alerted) if alerted is not None else not failures:
            return
        after = f" after {failures} failed run(s)" if failures else ""
        self.publish(
            AlertResolved(
                code=FAILED,
                severity=self._failed_severity(failures),  # type: ignore[arg-type]
                subject=file.market,
                message=f"{file.name} checked again{after} ({outcome.action}: {outcome.reason})",
            )
        )

    def _resolve_unnamed_failure(self) -> None:
        """End a ``master_file_failed`` raised before it named its market, once none fails.

        Such an alert could be any file's: it ends when every file's last check got through.
        """
        if any(self.files.state(file).failures for file in MASTER_FILES):
            return
        message = "every master file's last check got through"
        self.publish(AlertResolved(code=FAILED, severity="critical", message=message))

    # ------------------------------------------------------------------ the file in use

    def _apply_current(self, run: Run, reason: str) -> FileOutcome:
        """Diff the file in use against the database and publish what differs."""
        file, state = run.file, run.state
        current = state.current
        assert current is not None
        parsed = read_archive(file, self.files.current_path(file))
        known = self.known(file)
        d = diff(parsed.listings, parsed.comparable(known))
        outcome = FileOutcome(
            file.market,
            file.name,
            "dry-run" if run.dry_run else "resync",
            reason,
            current.records,
            len(d.new),
            len(d.changed),
            len(d.removed),
            assess(parsed.listings, len(parsed.malformed)).complete_pct,
            changes=sample(d),
        )
        if run.dry_run:
            return run.elapsed(outcome)
        self.publish(*d.events(initial=not known))
        self.publish(
            run.elapsed(outcome).checked(
                current,
                current,
                remote_size=current.size,
                changed=not d.empty,
                downloaded=False,
            )
        )
        self.save(file, state, failures=0, checked_ns=self.clock.now_ns())
        return outcome

    # ------------------------------------------------------------------ operators

    def approve(self, review_id: str) -> FileOutcome:
        """Apply a held change as it is now against the database, and make its file current."""
        return self.reviews.approve(review_id)

    def reject(self, review_id: str) -> FileOutcome:
        """Drop a held change; the same contents are not held again."""
        return self.reviews.reject(review_id)

    def restore(self, file: MasterFile, backup: Path | None = None) -> FileOutcome:
        """Put a backup (the newest by default) back in use and apply it to the database.

        The contents it replaces count as rejected, so the next check does not bring them
        straight back; a newer file from the server is applied as usual.
        """
        started = time.monotonic()
        backups = self.files.backups(file)
        source = backup or (backups[0] if backups else None)
        if source is None or not source.exists():
            raise MasterFileError(f"no backup of {file.name} in {self.files.root / 'backups'}")
        parsed = read_archive(file, source)
        run = Run(file, self.files.state(file), started=started)
        temp = self.files.temp_path(file)
        shutil.copyfile(source, temp)
        temp.chmod(0o600)
        known = self.known(file)
        d = diff(parsed.listings, parsed.comparable(known))
        outcome = FileOutcome(
            file.market,
            file.name,
            "restore",
            f"restored {source.name}" + _left_as_stored(parsed),
            parsed.records,
            len(d.new),
            len(d.changed),
            len(d.removed),
            assess(parsed.listings, len(parsed.malformed)).complete_pct,
            changes=sample(d),
        )
        fresh = Current(
            temp.stat().st_size,
            sha256_of(temp),
            parsed.content_sha256,
            parsed.records,
            installed_ns=self.clock.now_ns(),
        )
        self.publish(*d.events(initial=not known))
        self.publish(
            run.elapsed(outcome).checked(
                run.state.current,
                fresh,
                remote_size=fresh.size,
                changed=not d.empty,
                downloaded=False,
            )
        )
        current = run.state.current
        rejected = current.content_sha256 if current else ""
        self.install(
            file, temp, fresh, msgspec.structs.replace(run.state, rejected_sha256=rejected)
        )
        return outcome

    def verify(self, region: str) -> tuple[list[str], dict[str, Quality]]:
        """Compare the database with the files in use for ``region``: (problems, quality)."""
        problems: list[str] = []
        quality: dict[str, Quality] = {}
        files = [f for f in MASTER_FILES if f.region == region]
        if not files:
            raise MasterFileError(f"unknown region {region!r}")
        for file in files:
            known = self.known(file)
            stray = sorted(s for s, (x, _) in known.items() if x.region != region)
            if stray:
                problems.append(f"{file.market}: {len(stray)} rows not in {region}: {stray[:5]}")
            path = self.files.current_path(file)
            if not path.exists():
                problems.append(f"{file.market}: no file in use ({path})")
                continue
            parsed = read_archive(file, path)
            quality[file.market] = assess(parsed.listings, len(parsed.malformed))
            d = diff(parsed.listings, parsed.comparable(known))
            if not d.empty:
                problems.append(f"{file.market}: database differs from the file: {d.summary()}")
        return problems, quality


def _left_as_stored(parsed: Parsed) -> str:
    """The note of a check whose file held records back: "" when none."""
    if not parsed.malformed:
        return ""
    return f"; {len(parsed.malformed)} malformed records left as stored"


def _beyond_layout(parsed: Parsed) -> str:
    """The note of a check whose file holds codes or columns its layout lacks: "" when none."""
    if not parsed.findings:
        return ""
    return f"; beyond the layout, read as listings: {', '.join(parsed.findings)}"
