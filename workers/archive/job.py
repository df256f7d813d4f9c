"""What the archive job does: write a day's files, keep the retention, check the archives.

Each run also brings the files of the days before it up to date (`LOOK_BACK_DAYS`): a day's
file is written only by that day's run otherwise, so a run missed or caught up after
midnight, rows committed after the run (a recovery) or a day that could not be written
would leave the tables kept forever (snapshots, bars) without a whole archive for good.

Every file is recorded through the bus (`bus.events.DayArchived`, which the writer keeps in
``day_archives``) and every pruning is asked of the writer (`bus.events.PruneRequested`):
this job only reads the database. A table's day whose file cannot be written
(`ArchiveError`) is a failure of that table and day alone (`Outcome.failed`): it is neither
recorded nor pruned, and the other tables and days go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bus.events import Event, PruneRequested
from observer.config import Settings
from observer.db.archive import Written, glance_file, verify_file, write_day
from observer.db.retention_queries import (
    ARCHIVED_TABLES,
    ArchivedTable,
    ArchiveRecord,
    archive_records,
    days_with_rows,
    newest_archive,
    pruned_rows,
)
from observer.errors import ArchiveError

__all__ = ["LOOK_BACK_DAYS", "Outcome", "archive_day", "keep_retention", "verify_archives"]

LOOK_BACK_DAYS = 30  # the days before a run's day whose files each run brings up to date

Send = Callable[[Event], object]  # the producer's send (returns the seq)
Beat = Callable[[], None]  # the job's heartbeat, called as files are written and read
Check = Callable[[Path, ArchiveRecord, Beat], str | None]  # what is wrong with a file, or None


def _idle() -> None:
    """No heartbeat to send (a run outside the supervisor's job)."""


@dataclass(slots=True)
class Outcome:
    """What a run did and found."""

    written: list[Written] = field(default_factory=list)
    requested: list[PruneRequested] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left alone, and why
    problems: list[str] = field(default_factory=list)  # damaged archives: alert, never prune
    failed: list[str] = field(default_factory=list)  # "<table> of <day>: why": not written

    def summary(self) -> dict[str, object]:
        """What ``--json`` prints."""
        rows = sum(w.rows for w in self.written)
        size = sum(w.bytes for w in self.written)
        raw = sum(w.raw_bytes for w in self.written)
        return {
            "files": [
                {
                    "table": w.table,
                    "trade_date": w.trade_date.isoformat(),
                    "path": w.path,
                    "rows": w.rows,
                    "bytes": w.bytes,
                    "raw_bytes": w.raw_bytes,
                    "ratio": round(w.raw_bytes / w.bytes, 2) if w.bytes else 0.0,
                    "seconds": w.elapsed_ms / 1000,
                    "sha256": w.sha256,
                }
                for w in self.written
            ],
            "rows": rows,
            "bytes": size,
            "ratio": round(raw / size, 2) if size else 0.0,
            "seconds": sum(w.elapsed_ms for w in self.written) / 1000,
            "prune_requested": [f"{r.table}:{r.trade_date}" for r in self.requested],
            "notes": self.notes,
            "problems": self.problems,
            "failed": self.failed,
        }


def archive_day(
    engine: Engine, settings: Settings, root: Path, day: date, send: Send, beat: Beat = _idle
) -> Outcome:
    """Write every archived table's file of ``day`` and send its record.

    ``beat`` is called as the files are written and checked (a job's heartbeat).

    A table whose day was pruned in part keeps the archive it was pruned against: a new file
    would hold only what is left.
    """
    outcome = Outcome()
    for spec in ARCHIVED_TABLES.values():
        with engine.connect() as conn:
            if pruned_rows(conn, spec.name, day)[0]:
                outcome.notes.append(f"{spec.name} of {day}: pruned, its archive is kept")
                continue
            try:
                written = write_day(conn, spec, day, root, settings.retention.read_rows, beat)
            except ArchiveError as exc:  # this table's day alone: the others go on
                outcome.failed.append(f"{spec.name} of {day}: {exc}")
                continue
        if written is not None:
            send(written.event())
            outcome.written.append(written)
    return outcome


def keep_retention(
    engine: Engine,
    settings: Settings,
    root: Path,
    today: date,
    send: Send,
    outcome: Outcome,
    beat: Beat = _idle,
    look_back: int = LOOK_BACK_DAYS,
) -> None:
    """Bring the recent days' files up to date, then have the old days pruned.

    Recent days: every table's days among the ``look_back`` before ``today`` (a pruned
    table's within its retention) that hold rows. A day's file is written again unless its
    newest record holds as many rows as the day (those pruned counted) and the file has the
    recorded size and row count (`glance_file`): a day no run archived, rows committed after
    its run, a day that failed. Those days are never pruned here.

    Old days: each day older than its table's retention still holding rows is pruned, by the
    writer, only against an archive that verifies (read whole) and holds every row of the
    day: a missing, outdated or damaged file is written again first while the day is whole;
    a damaged file of a day already pruned in part is a problem (never pruned further).

    A day whose file cannot be written is a failure of that table and day (never pruned),
    tried again by the next run while it is a recent day; the next days and tables go on.
    """
    _bring_up_to_date(engine, settings, root, today, send, outcome, beat, look_back)
    for spec in ARCHIVED_TABLES.values():
        days = settings.retention.days(spec.name)
        if days == 0:
            continue
        with engine.connect() as conn:
            holding = days_with_rows(conn, spec, today - timedelta(days=days))
        for day, count in sorted(holding.items()):
            try:
                record = _archived(
                    engine, settings, root, spec, day, count, send, outcome, beat, verify_file
                )
            except ArchiveError as exc:
                outcome.failed.append(f"{spec.name} of {day}: {exc}")
                continue
            if record is not None:
                request = PruneRequested(
                    table=spec.name, trade_date=day, rows=record.rows, sha256=record.sha256
                )
                send(request)
                outcome.requested.append(request)


def _bring_up_to_date(
    engine: Engine,
    settings: Settings,
    root: Path,
    today: date,
    send: Send,
    outcome: Outcome,
    beat: Beat,
    look_back: int,
) -> None:
    """Write each recent day's file again where it does not hold the day's rows as they are.

    One count per table (`days_with_rows`: only the index entries of those days are read),
    then, per day holding rows, its newest record and a glance at its file.
    """
    for spec in ARCHIVED_TABLES.values():
        kept = settings.retention.days(spec.name)
        recent = min(look_back, kept) if kept else look_back
        if recent <= 0:
            continue
        with engine.connect() as conn:
            holding = days_with_rows(conn, spec, today, since=today - timedelta(days=recent))
        for day, count in sorted(holding.items()):
            try:
                _archived(engine, settings, root, spec, day, count, send, outcome, beat)
            except ArchiveError as exc:  # tried again by the next run
                outcome.failed.append(f"{spec.name} of {day}: {exc}")


def _archived(
    engine: Engine,
    settings: Settings,
    root: Path,
    spec: ArchivedTable,
    day: date,
    count: int,
    send: Send,
    outcome: Outcome,
    beat: Beat,
    check: Check = glance_file,
) -> ArchiveRecord | None:
    """The archive of the ``count`` rows ``spec``'s ``day`` holds, written now if need be.

    The newest record counts if it has those rows (and those pruned) and its file passes
    ``check``. None: the day is pruned in part and its archive does not match (a problem),
    or it holds no rows.
    """
    with engine.connect() as conn:
        record = newest_archive(conn, spec.name, day)
        pruned = pruned_rows(conn, spec.name, day)[0]
        problem = check(root, record, beat) if record is not None else "no archive"
        if record is not None and problem is None and record.rows == count + pruned:
            return record
        why = problem or f"{record.rows if record else 0} rows archived, {count + pruned} known"
        if pruned:
            outcome.problems.append(
                f"{spec.name} of {day} is pruned in part and its archive does not match ({why})"
            )
            return None
        written = write_day(conn, spec, day, root, settings.retention.read_rows, beat)
    if written is None:
        return None
    send(written.event())
    outcome.written.append(written)
    outcome.notes.append(f"{spec.name} of {day}: written ({why})")
    return ArchiveRecord(
        written.table,
        written.trade_date,
        written.path,
        written.rows,
        written.bytes,
        written.sha256,
        written.raw_bytes,
        written.elapsed_ms,
    )


def verify_archives(
    engine: Engine, root: Path, day: date | None, beat: Beat = _idle
) -> tuple[int, list[str]]:
    """Check every recorded file (or one day's): the count checked and what is wrong.

    ``beat`` is called as each file is read (a job's heartbeat: a day's ticks take a while).
    """
    with engine.connect() as conn:
        records = archive_records(conn, day)
    problems = []
    for record in records:
        if (problem := verify_file(root, record, beat)) is not None:
            problems.append(problem)
    return len(records), problems
