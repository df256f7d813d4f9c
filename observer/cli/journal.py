"""``observer journal list|verify|replay``: the raw journal of every frame and answer from KIS.

``list`` shows each day's files, records and bytes; ``verify`` reads files whole (exit 1 on
a damaged one, or a sealed one whose sha256 changed); ``replay`` parses a day's frames again
with today's parser into a scratch database (`observer.kis.journal_replay`).
"""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from observer.kis.journal_replay import Limits, TrackARun

from observer.cli.support import counted, fail, settings_or_exit
from observer.config.tree import Settings
from observer.kis.journal import (
    JournalFile,
    day_files,
    journal_days,
    journal_name,
    journal_root,
    list_file,
    verify_file,
)

__all__ = ["journal_app"]

PROGRAM = "observer journal"

journal_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="The raw journal of every frame and answer received from KIS.",
)

Config = Annotated[Path | None, typer.Option("--config", help="observer.toml to load")]
Day = Annotated[str | None, typer.Option("--date", help="the day, YYYY-MM-DD (KST)")]


def _root(settings: Settings) -> Path:
    return journal_root(settings.kis.journal, settings.paths)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(PROGRAM, f"--date {text!r} is not a date (YYYY-MM-DD)", 2)


def _days(root: Path, day: date | None) -> list[date]:
    days = journal_days(root)
    if day is None:
        return days
    if day not in days:
        fail(PROGRAM, f"the journal in {root} holds no day {day.isoformat()}", 2)
    return [day]


def _live_run(settings: Settings, day: date, checked: bool) -> tuple[Limits, TrackARun | None]:
    """What the live run knew that its journal does not hold, from its database (read only).

    The day's price limits by Track A's snapshots (Track B's checks), Track A's cycles and
    the universe's markets (where Track A's answers go).

    Exit 2 if it cannot be read while ``checked``: the checks would not be the live run's.
    Unchecked, the replay goes on without them (Track A's answers are counted unplaced).
    """
    # deferred: the database, for the replay alone
    from sqlalchemy.exc import SQLAlchemyError

    from observer.db.engine import make_engine
    from observer.db.queries import cycle_windows, snapshot_limits, universe_of
    from observer.errors import StoreError
    from observer.kis.journal_replay import TrackARun

    try:
        engine = make_engine(settings.database.url, read_only=True)
        try:
            with engine.connect() as conn:
                markets = {symbol: market for symbol, market, _ in universe_of(conn, day)}
                run = TrackARun(cycle_windows(conn, day), markets, settings.kis.halt_from)
                return (snapshot_limits(conn, day) if checked else {}), run
        finally:
            engine.dispose()
    except (SQLAlchemyError, StoreError) as exc:
        # the product's own errors say what is wrong; a driver's may hold the URL
        detail = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
        why = f"cannot read the live database ({detail})"
        if checked:
            fail(PROGRAM, f"{why}: --unchecked replays without Track B's checks", 2)
        _stderr().print(f"{PROGRAM}: {why}: Track A's answers are not placed in their cycles")
        return {}, None


def _stderr() -> Console:
    # deferred: rich, for the commands that draw
    from rich.console import Console

    return Console(stderr=True)


def _state(found: JournalFile) -> str:
    if found.problem:
        return "DAMAGED"
    if found.torn:
        return "torn tail"
    return "sealed" if found.sealed else "unsealed (its process ended without closing it)"


@journal_app.command("list")
def list_days(config: Config = None, day: Day = None) -> None:
    """Each day's files: records, bytes on disk and received, and whether each is sealed.

    A sealed file is listed from its seal; an unsealed one is read whole.
    """
    settings = settings_or_exit(PROGRAM, config)
    root = _root(settings)
    days = _days(root, _day(day))
    if not days:
        typer.echo(f"the journal in {root} is empty")
        return
    for each in days:
        found = [list_file(path) for path in day_files(root, each)]
        records = sum(f.records for f in found)
        size, raw = sum(f.bytes for f in found), sum(f.raw_bytes for f in found)
        ratio = raw / size if size else 0.0
        typer.echo(
            f"{each.isoformat()}: {counted(len(found), 'file')}, {records:,} records, "
            f"{size:,} bytes ({raw:,} received, {ratio:.1f}x)"
        )
        for f in found:
            typer.echo(f"  {f.path.name}: {f.records:,} records, {f.bytes:,} bytes, {_state(f)}")


@journal_app.command("verify")
def verify(config: Config = None, day: Day = None) -> None:
    """Read every file whole (of ``--date``, or all); exit 1 if one is damaged.

    A sealed file must match its ``.sha256``. A file whose process died is read to its last
    whole record; a torn last record (a power cut mid-append) is reported, not a failure.
    """
    # deferred: rich's progress bar, for this command only
    from rich.progress import Progress

    settings = settings_or_exit(PROGRAM, config)
    root = _root(settings)
    wanted = _day(day)
    days = _days(root, wanted)
    paths = [path for each in days for path in day_files(root, each)]
    found: list[JournalFile] = []
    # A bar on standard error, by bytes read (a real day's files take a while); the report
    # below on standard output.
    with Progress(transient=True, console=_stderr()) as progress:
        task = progress.add_task("reading the journal", total=sum(p.stat().st_size for p in paths))
        for path in paths:
            found.append(verify_file(path))
            progress.advance(task, path.stat().st_size)
    problems = [f.problem for f in found if f.problem]
    for problem in problems:
        typer.echo(f"DAMAGED {problem}", err=True)
    for f in found:
        if f.torn:
            typer.echo(f"{f.path}: its last record is torn (lost): {f.records:,} read")
    typer.echo(f"{counted(len(found), 'journal file')} read whole, {len(problems)} damaged")
    if problems:
        raise typer.Exit(1)


@journal_app.command("replay")
def replay(
    day: Annotated[str, typer.Option("--date", help="the day, YYYY-MM-DD (KST)")],
    db: Annotated[str, typer.Option("--db", help="a scratch database URL (never the live one)")],
    tr: Annotated[str | None, typer.Option("--tr", help="only this TR's frames or answers")] = None,
    process: Annotated[str | None, typer.Option(help="only this process's files")] = None,
    capture: Annotated[
        Path | None, typer.Option(help="keep the bus frames here (for observer replay)")
    ] = None,
    unchecked: Annotated[
        bool, typer.Option(help="store every record, even those Track B's checks refused")
    ] = False,
    compare: Annotated[
        bool,
        typer.Option(help="compare the rows stored with the live database's, table by table"),
    ] = False,
    config: Config = None,
) -> None:
    """Parse a day's journal again with today's parser and store what it gives in ``--db``.

    Its WebSocket frames, and Track A's and the flows and investor jobs' REST answers (what
    each published of them, `observer.kis.answer_replay`; Track A's in the cycles the live
    database holds). A frame refused at the time (a layout then unknown) is read with
    today's layouts. Track B's checks run as they ran live (``[track_b]``'s, the
    registrations KIS answered, the limits the live database's snapshots gave by then): what
    they refused is counted, not stored, unless ``--unchecked``. The events are stored under
    ``journal.<process>.<YYYYMMDD>``: replaying again stores nothing twice. ``--compare``
    then compares each table's rows of the day with the live run's
    (`observer.db.replay_queries`: every column but the audit ones and the receipt stamps),
    into an empty ``--db``, of the whole day (no ``--tr``). Exit 1 if an event was not
    stored or the rows compared differ, 2 for a bad option or the live database (when
    checked or compared).
    """
    # deferred: the bus, the writer's store and the calendar, for this command only
    from observer.calendar.timeline import timeline_from
    from observer.calendar.venues import venues_from
    from observer.db.engine import normalize_url
    from observer.errors import BusError, JournalError, StoreError, WriterLocked
    from observer.kis.journal_replay import capture_journal
    from observer.kis.record_checks import Checks
    from observer.writer.replay import replay_into_db

    settings = settings_or_exit(PROGRAM, config)
    wanted = _day(day)
    assert wanted is not None
    if compare and tr is not None:
        fail(PROGRAM, "--compare compares a whole day's rows: not with --tr", 2)
    if normalize_url(db) == normalize_url(settings.database.url):
        fail(PROGRAM, "--db is the live database: replay into a scratch one", 2)
    root = _root(settings)
    _days(root, wanted)
    venues = venues_from(settings.venues, timeline_from(settings.phases, settings.calendar))
    checks = None if unchecked else Checks.of(settings.track_b)
    limits, track_a = _live_run(settings, wanted, checked=not unchecked)
    with tempfile.TemporaryDirectory(prefix="observer-journal-") as scratch:
        out = capture or Path(scratch) / "journal.cap"
        try:
            parsed = capture_journal(
                root,
                wanted,
                out,
                session_of=venues.session_of_ns,
                tr=tr,
                process=process,
                checks=checks,
                limits=limits,
                track_a=track_a,
            )
        except FileExistsError:
            fail(PROGRAM, f"--capture {out} exists", 2)
        except JournalError as exc:
            fail(PROGRAM, str(exc), 1)
        typer.echo(parsed.summary())
        try:
            result = replay_into_db(out, db, upgrade=True)
        except (BusError, StoreError, WriterLocked) as exc:
            fail(PROGRAM, str(exc), 2)
    typer.echo(
        f"{result.committed:,} events stored, {result.duplicates:,} already there"
        + (f"; the capture is {capture}" if capture else "")
    )
    if result.not_stored():
        fail(PROGRAM, f"not stored: {result.not_stored()}", 1)
    if compare:
        _compare(settings, db, wanted, parsed.processes, result.duplicates)


def _compare(settings: Settings, db: str, day: date, processes: list[str], duplicates: int) -> None:
    """The replayed rows against the live run's (`observer.db.replay_queries`).

    Exit 1 if any table differs, 2 if a database cannot be read or ``--db`` held the day's
    replayed events already.
    """
    # deferred: the database, for the comparison alone
    from sqlalchemy.exc import SQLAlchemyError

    from observer.db.engine import make_engine
    from observer.db.replay_queries import compare_replayed
    from observer.errors import StoreError

    if duplicates:
        fail(PROGRAM, "--compare wants an empty --db: it held replayed events already", 2)
    try:
        live = make_engine(settings.database.url, read_only=True)
        scratch = make_engine(db, read_only=True)
        try:
            tables = compare_replayed(live, scratch, day, processes, journal_name)
        finally:
            live.dispose()
            scratch.dispose()
    except (SQLAlchemyError, StoreError) as exc:
        detail = str(exc) if isinstance(exc, StoreError) else type(exc).__name__
        fail(PROGRAM, f"cannot compare with the live database ({detail})", 2)
    for table in tables:
        typer.echo(table.line())
        for side, row in (("live", table.example_live), ("replayed", table.example_replayed)):
            if row:
                typer.echo(f"  e.g. only {side}: {row}")
    differ = [t.table for t in tables if not t.same]
    if differ:
        fail(PROGRAM, f"the replayed rows differ from the live run's: {', '.join(differ)}", 1)
    typer.echo(f"{counted(len(tables), 'table')} compared: the live run's rows, every one")
