"""What the archive job does: write a day's files, keep the retention, check the archives.

Each run also brings the `LOOK_BACK_DAYS` days before it up to date. What the job decides
for a table's day and the rows it writes come from one snapshot (`one_snapshot`); a file is
never replaced by one with fewer rows (`ArchiveWouldShrink`); rows committed after a day
was pruned go to a late file of the day. Files are recorded (`DayArchived`) and prunings
asked (`PruneRequested`) through the bus: this job only reads the database. A table's day
that cannot be written fails alone (`ArchiveOutcome.failed`): neither recorded nor pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import msgspec
from sqlalchemy import Connection, Engine

from bus.events import Event, PruneRequested
from observer.config.workers import RetentionSettings
from observer.db.archive import (
    ArchiveWouldShrink,
    Written,
    glance_file,
    highest_seqs,
    verify_file,
    write_day,
)
from observer.db.archive_layout import late_path, main_path
from observer.db.retention_queries import (
    ARCHIVED_TABLES,
    ArchivedTable,
    ArchiveRecord,
    archive_records,
    day_count,
    day_files,
    days_with_rows,
    late_filter,
    one_snapshot,
    pruned_rows,
)
from observer.errors import ArchiveError
from observer.kis.journal import prune_journal

__all__ = [
    "LOOK_BACK_DAYS",
    "ArchiveOutcome",
    "FileSummary",
    "Summary",
    "archive_day",
    "keep_retention",
    "verify_archives",
]

LOOK_BACK_DAYS = 30  # the days before a run's day whose files each run brings up to date

Send = Callable[[Event], object]  # the producer's send (returns the seq)
Beat = Callable[[], None]  # the job's heartbeat, called as files are written and read
Check = Callable[[Path, ArchiveRecord, Beat], str | None]  # what is wrong with a file, or None


def _idle() -> None:
    """No heartbeat to send (a run outside the supervisor's job)."""


@dataclass(slots=True)
class ArchiveOutcome:
    """What a run did and found."""

    written: list[Written] = field(default_factory=list)
    requested: list[PruneRequested] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left alone, and why
    problems: list[str] = field(default_factory=list)  # damaged archives: alert, never prune
    failed: list[str] = field(default_factory=list)  # "<table> of <day>: why": not written

    def summary(self) -> Summary:
        """What ``--json`` prints."""
        rows = sum(w.rows for w in self.written)
        size = sum(w.bytes for w in self.written)
        raw = sum(w.raw_bytes for w in self.written)
        return Summary(
            files=[
                FileSummary(
                    table=w.table,
                    trade_date=w.trade_date,
                    path=w.path,
                    rows=w.rows,
                    bytes=w.bytes,
                    raw_bytes=w.raw_bytes,
                    ratio=round(w.raw_bytes / w.bytes, 2) if w.bytes else 0.0,
                    seconds=w.elapsed_ms / 1000,
                    sha256=w.sha256,
                )
                for w in self.written
            ],
            rows=rows,
            bytes=size,
            ratio=round(raw / size, 2) if size else 0.0,
            seconds=sum(w.elapsed_ms for w in self.written) / 1000,
            prune_requested=[f"{r.table}:{r.trade_date}" for r in self.requested],
            notes=self.notes,
            problems=self.problems,
            failed=self.failed,
        )


class FileSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One file a run wrote."""

    table: str
    trade_date: date
    path: str  # under the archive root
    rows: int
    bytes: int
    raw_bytes: int  # the rows' size before compression
    ratio: float  # raw_bytes / bytes
    seconds: float
    sha256: str


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """A run's files, totals, prunings asked, and what it left alone or could not do."""

    files: list[FileSummary]
    rows: int
    bytes: int
    ratio: float
    seconds: float
    prune_requested: list[str]  # "<table>:<day>"
    notes: list[str]
    problems: list[str]
    failed: list[str]


def archive_day(
    engine: Engine,
    retention: RetentionSettings,
    root: Path,
    day: date,
    send: Send,
    beat: Beat = _idle,
) -> ArchiveOutcome:
    """Write every archived table's file of ``day`` and send its record.

    ``beat`` is called as the files are written and checked (a job's heartbeat).

    A table whose day was pruned in part keeps the archive it was pruned against: a new file
    would hold only what is left. Rows of it committed since go to a late file (`_archived`).
    """
    outcome = ArchiveOutcome()
    for spec in ARCHIVED_TABLES.values():
        try:
            with one_snapshot(engine) as conn:  # the check and the read see the same rows
                pruned = pruned_rows(conn, spec.name, day)[0] > 0
                written = None if pruned else _write(conn, retention, root, spec, day, beat)
            if pruned:
                outcome.notes.append(f"{spec.name} of {day}: pruned, its archive is kept")
                _archived(
                    engine, retention, root, spec, day, None, send, outcome, beat, verify_file
                )
                continue
        except ArchiveWouldShrink as exc:
            outcome.problems.append(f"{spec.name} of {day}: {exc}")
            continue
        except ArchiveError as exc:  # this table's day alone: the others go on
            outcome.failed.append(f"{spec.name} of {day}: {exc}")
            continue
        if written is not None:
            send(written.event())
            outcome.written.append(written)
    return outcome


def _write(
    conn: Connection,
    retention: RetentionSettings,
    root: Path,
    spec: ArchivedTable,
    day: date,
    beat: Beat,
) -> Written | None:
    """``spec``'s file of ``day``, from the rows ``conn`` sees (None: no rows)."""
    return write_day(conn, spec, day, root, retention.read_rows, beat)


def keep_retention(
    engine: Engine,
    retention: RetentionSettings,
    root: Path,
    today: date,
    send: Send,
    outcome: ArchiveOutcome,
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
    _bring_up_to_date(engine, retention, root, today, send, outcome, beat, look_back)
    for spec in ARCHIVED_TABLES.values():
        days = retention.days(spec.name)
        if days == 0:
            continue
        with engine.connect() as conn:
            holding = days_with_rows(conn, spec, today - timedelta(days=days))
        for day, count in sorted(holding.items()):
            try:
                record = _archived(
                    engine, retention, root, spec, day, count, send, outcome, beat, verify_file
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


def keep_journal(journal: Path, keep_days: int, today: date, outcome: ArchiveOutcome) -> None:
    """Remove the raw journal's (at ``journal``) days older than ``keep_days`` before ``today``.

    A failure is one of ``outcome``'s (the archive's own work stands).
    """
    try:
        removed = prune_journal(journal, keep_days, today)
    except OSError as exc:
        outcome.failed.append(f"the journal's old days: {exc.strerror or exc}")
        return
    if removed:
        days = f"{removed[0]}" if len(removed) == 1 else f"{removed[0]} to {removed[-1]}"
        outcome.notes.append(f"the journal's days {days} removed (kept {keep_days})")


def _bring_up_to_date(
    engine: Engine,
    retention: RetentionSettings,
    root: Path,
    today: date,
    send: Send,
    outcome: ArchiveOutcome,
    beat: Beat,
    look_back: int,
) -> None:
    """Write each recent day's file again where it does not hold the day's rows as they are.

    One count per table (`days_with_rows`: only the index entries of those days are read),
    then, per day holding rows, its newest record and a glance at its file.
    """
    for spec in ARCHIVED_TABLES.values():
        kept = retention.days(spec.name)
        recent = min(look_back, kept) if kept else look_back
        if recent <= 0:
            continue
        with engine.connect() as conn:
            holding = days_with_rows(conn, spec, today, since=today - timedelta(days=recent))
        for day, count in sorted(holding.items()):
            try:
                _archived(engine, retention, root, spec, day, count, send, outcome, beat)
            except ArchiveError as exc:  # tried again by the next run
                outcome.failed.append(f"{spec.name} of {day}: {exc}")


def _archived(
    engine: Engine,
    retention: RetentionSettings,
    root: Path,
    spec: ArchivedTable,
    day: date,
    count: int | None,
    send: Send,
    outcome: ArchiveOutcome,
    beat: Beat,
    check: Check = glance_file,
) -> ArchiveRecord | None:
    """The day's newest file, once its files hold every row of ``spec``'s ``day``.

    Every row: the ``count`` the day holds (None: counted here) and those pruned. The files
    count if they hold that many rows and each passes ``check``; else the day's file is
    written again while the day is whole, or its late rows are written to a late file once
    it is pruned in part. None: the day holds no rows, or its archive does not match and it
    is pruned in part (a problem: never written again, nor pruned further).
    """
    try:
        with one_snapshot(engine) as conn:  # what is decided here and the rows written agree
            files = day_files(conn, spec.name, day)
            pruned = pruned_rows(conn, spec.name, day)[0]
            problem = _files_problem(root, files, check, beat)
            archived = sum(f.rows for f in files)
            if count is None or archived != count + pruned:
                count = day_count(conn, spec, day)  # a pruning may have gone on since
            if problem is None and archived == count + pruned:
                return files[-1] if files else None
            if pruned:  # a new file would hold only what is left: the late rows alone, if so
                late = problem or _late_rows(
                    conn, retention, root, spec, day, files, pruned, count, beat
                )
                if isinstance(late, str):
                    outcome.problems.append(
                        f"{spec.name} of {day} is pruned in part and its archive does not "
                        f"match ({late})"
                    )
                    return None
                written: Written | None = late
                note = (
                    f"{spec.name} of {day}: {late.rows} rows committed after it was pruned, "
                    f"written to {late.path}"
                )
            else:
                written = _write(conn, retention, root, spec, day, beat)
                why = problem or f"{archived} rows archived, {count} known"
                note = f"{spec.name} of {day}: written ({why})"
    except ArchiveWouldShrink as exc:
        outcome.problems.append(f"{spec.name} of {day}: {exc}")
        return None
    if written is None:
        return None
    send(written.event())
    outcome.written.append(written)
    outcome.notes.append(note)
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


def _files_problem(root: Path, files: list[ArchiveRecord], check: Check, beat: Beat) -> str | None:
    """What is wrong with the first of a day's files that does not pass ``check``, or None."""
    if not files:
        return "no archive"
    for record in files:
        if (problem := check(root, record, beat)) is not None:
            return problem
    return None


def _late_rows(
    conn: Connection,
    retention: RetentionSettings,
    root: Path,
    spec: ArchivedTable,
    day: date,
    files: list[ArchiveRecord],
    pruned: int,
    count: int,
    beat: Beat,
) -> Written | str:
    """The rows of a day pruned in part that its files lack, written to a late file.

    They are late rows (committed after the files were made: a recovery, a replay, a late
    producer) when every row the files hold is either pruned or still in the database, so
    that the others are exactly the rows above each source's highest seq in the files.
    Anything else is damage, never written over: what does not add up, as text.
    """
    highest = highest_seqs(root, files)
    late = late_filter(spec, highest)
    late_count = day_count(conn, spec, day, late)
    archived = sum(f.rows for f in files)
    if late_count == 0 or count - late_count != archived - pruned:
        return (
            f"{archived} rows archived, {pruned} of them pruned, the day holds {count}, "
            f"{late_count} of them committed after its files"
        )
    main = main_path(spec.name, day, (f.path for f in files))
    where = late_path(main, sum(1 for f in files if f.path != main) + 1)
    written = write_day(conn, spec, day, root, retention.read_rows, beat, path=where, where=late)
    if written is None:  # the same snapshot counted them: cannot happen
        return f"the {late_count} rows committed after its files could not be read"
    return written


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
