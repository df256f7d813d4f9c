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

from observer.cli.support import counted, fail, settings_or_exit
from observer.config.tree import Settings
from observer.kis.journal import (
    JournalFile,
    day_files,
    journal_days,
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


def _limits(url: str, day: date) -> dict[str, list[tuple[int, tuple[int, int]]]]:
    """The day's price limits by Track A's snapshots, from the live database (read only).

    Exit 2 if it cannot be read: the checks would not be the live run's.
    """
    # deferred: the database, for the replay alone
    from sqlalchemy.exc import SQLAlchemyError

    from observer.db.engine import make_engine
    from observer.db.queries import snapshot_limits

    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as conn:
            return snapshot_limits(conn, day)
    except SQLAlchemyError as exc:
        fail(
            PROGRAM,
            f"cannot read the day's price limits from the database ({type(exc).__name__}): "
            "--unchecked replays without Track B's checks",
            2,
        )
    finally:
        engine.dispose()


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
    config: Config = None,
) -> None:
    """Parse a day's journal again with today's parser and store what it gives in ``--db``.

    Its WebSocket frames, and the flows and investor jobs' REST answers (what each job
    published of them, `observer.kis.answer_replay`). A frame refused at the time (a layout
    then unknown) is read with today's layouts. Track
    B's checks run as they ran live (``[track_b]``'s, the registrations KIS answered, the
    limits the live database's snapshots gave by then): what they refused is counted, not
    stored, unless ``--unchecked``. The events are stored under
    ``journal.<process>.<YYYYMMDD>``: replaying again stores nothing twice. Exit 1 if an
    event was not stored, 2 for a bad option or the live database.
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
    if normalize_url(db) == normalize_url(settings.database.url):
        fail(PROGRAM, "--db is the live database: replay into a scratch one", 2)
    root = _root(settings)
    _days(root, wanted)
    venues = venues_from(settings.venues, timeline_from(settings.phases, settings.calendar))
    checks, limits = None, None
    if not unchecked:
        checks = Checks.of(settings.track_b)
        limits = _limits(settings.database.url, wanted)
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
