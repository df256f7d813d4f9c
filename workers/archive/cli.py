"""``observer archive``: day archives in Parquet, their check, and the scheduled retention job.

``--date D`` writes D's files now; ``verify`` re-reads every recorded file (``--alert``:
the weekly job, which raises or resolves ``archive_damaged`` and exits 0); ``run`` is the
supervisor's ``archive`` job (`workers.archive.job`: today's files, the look-back days
brought up to date, then the retention). Alerts: ``archive_made`` (info),
``archive_damaged`` and ``archive_failed`` (critical). Exit 1 when a file cannot be
written, is refused or does not match its record; 2 for a bad ``--date``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from bus.events import Alert, AlertResolved
from observer.calendar.clock import clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.cli.support import (
    counted,
    fail,
    hand_options_to_subcommand,
    is_open_alert,
    job_producer,
    settings_or_exit,
)
from observer.config.tree import Settings
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging

if TYPE_CHECKING:
    from workers.archive.job import ArchiveOutcome

__all__ = ["app"]

SOURCE = "archive"
DAMAGED = "archive_damaged"
PROGRAM = "observer archive"

app = typer.Typer(help="Day archives (Parquet) and retention.")

Config = Annotated[Path | None, typer.Option("--config", help="observer.toml")]
Day = Annotated[str | None, typer.Option("--date", help="trading day, YYYY-MM-DD (KST)")]
AsJson = Annotated[bool, typer.Option("--json", help="print a JSON summary")]


@app.callback(invoke_without_command=True)
def archive(
    ctx: typer.Context, day: Day = None, as_json: AsJson = False, config: Config = None
) -> None:
    """Write a trading day's archive files now (``--date D``) and record them."""
    if ctx.invoked_subcommand is not None:
        hand_options_to_subcommand(ctx, PROGRAM)
        return
    if day is None:
        fail(PROGRAM, "give --date YYYY-MM-DD (or: verify, run)", 2)
    settings = settings_or_exit(PROGRAM, config)
    setup_logging()
    outcome = _with_job(settings, Heartbeat.from_env(), _parse(day), retention=False)
    _report(outcome, as_json)
    if outcome.problems or outcome.failed:  # a file refused (it would shrink) is no success
        raise typer.Exit(1)


@app.command()
def verify(
    day: Day = None,
    as_json: AsJson = False,
    config: Config = None,
    alert: Annotated[
        bool,
        typer.Option(
            "--alert",
            help="publish archive_damaged (critical) on a mismatch, resolve it when all "
            "match (the weekly archive_verify job)",
        ),
    ] = False,
) -> None:
    """Re-read every recorded archive file and journal file (or one day's); exit 1 on a mismatch."""
    settings = settings_or_exit(PROGRAM, config)
    wanted = _parse(day) if day else None
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.archive import archive_root
    from observer.db.readers import reader_engine
    from observer.kis.journal import journal_root, verify_journal
    from workers.archive.job import verify_archives

    notifier = Heartbeat.from_env()
    if alert:
        setup_logging()
        notifier.ready()
    engine = reader_engine(settings.database, "archive")
    try:
        checked, problems = verify_archives(
            engine, archive_root(settings.retention, settings.paths), wanted, notifier.beat
        )
    finally:
        engine.dispose()
    journal, damaged = verify_journal(
        journal_root(settings.kis.journal, settings.paths), wanted, notifier.beat
    )
    problems = problems + damaged
    if alert:
        _alert_verified(settings, notifier, checked, problems, every_day=day is None)
    if as_json:
        typer.echo(json.dumps({"checked": checked, "problems": problems}))
    else:
        for problem in problems:
            typer.echo(problem, err=True)
        typer.echo(
            f"{counted(checked, 'archive record')} checked (their files read whole), "
            f"{counted(len(journal), 'journal file')} read whole, "
            f"{counted(len(problems), 'problem')}"
        )
    if problems and not alert:  # the job's alert is its report: a retry mends no file
        raise typer.Exit(1)


@app.command()
def run(
    day: Day = None,
    as_json: AsJson = False,
    config: Config = None,
    look_back: Annotated[
        int,
        typer.Option(
            "--look-back",
            min=1,
            max=3660,
            help="days before the day whose files are brought up to date (after an outage)",
        ),
    ] = 30,  # workers.archive.job.LOOK_BACK_DAYS (not imported here: pyarrow is slow to load)
) -> None:
    """The scheduled job: today's files (or ``--date``'s), the days before, the retention."""
    settings = settings_or_exit(PROGRAM, config)
    today = _parse(day) if day else _today()  # before READY: a refused day is a usage error
    setup_logging()
    notifier = Heartbeat.from_env()
    notifier.ready()
    outcome = _with_job(settings, notifier, today, retention=True, look_back=look_back)
    _report(outcome, as_json)
    if outcome.problems or outcome.failed:
        raise typer.Exit(1)


def _alert_verified(
    settings: Settings, notifier: Heartbeat, checked: int, problems: list[str], *, every_day: bool
) -> None:
    """archive_damaged for what is wrong; every file right again resolves an open one.

    A damaged file of a pruned day is the only copy of its rows: no one would see it
    otherwise, because the nightly job checks only the days it archives and prunes.
    """
    clock = clock_from_env()
    with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
        if problems:
            message = f"archive files that do not match their records: {len(problems)} of {checked}"
            producer.send(
                Alert(
                    severity="critical",
                    code=DAMAGED,
                    message=f"{message}: {problems[0]}"[:2000],
                    context={"problems": str(len(problems))},
                )
            )
        elif every_day and is_open_alert(settings, SOURCE, DAMAGED):
            message = f"all {counted(checked, 'archive file')} match their records"
            producer.send(AlertResolved(code=DAMAGED, severity="critical", message=message))


def _with_job(
    settings: Settings, notifier: Heartbeat, day: date, *, retention: bool, look_back: int = 0
) -> ArchiveOutcome:
    """Run the work under the job's producer; alert the outcome; exit 1 if it failed.

    With ``retention``, the ``look_back`` days before ``day`` are brought up to date too, so
    a run without failures leaves no recent day unwritten: it resolves ``archive_failed``;
    the old days are pruned, and the raw journal's days older than ``[kis.journal]
    keep_days`` removed.
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from sqlalchemy.exc import SQLAlchemyError

    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.archive import archive_root
    from observer.db.readers import reader_engine
    from observer.errors import ArchiveError, StoreError
    from observer.kis.journal import journal_root
    from workers.archive.job import archive_day, keep_journal, keep_retention

    clock = clock_from_env()
    root = archive_root(settings.retention, settings.paths)
    engine = reader_engine(settings.database, "archive")
    failure = ""
    with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
        try:
            kept = settings.retention
            outcome = archive_day(engine, kept, root, day, producer.send, notifier.beat)
            if retention:
                keep_retention(
                    engine, kept, root, day, producer.send, outcome, notifier.beat, look_back
                )
                journal = settings.kis.journal
                keep_journal(journal_root(journal, settings.paths), journal.keep_days, day, outcome)
        except (
            ArchiveError,
            StoreError,
            SQLAlchemyError,
            OSError,
        ) as exc:  # StoreError: no reader connection
            failure = f"archive of {day} failed: {type(exc).__name__}: {exc}"[:2000]
            producer.send(Alert(severity="critical", code="archive_failed", message=failure))
        else:
            if outcome.failed:  # those tables' days alone: the rest was archived and pruned
                producer.send(_failed_alert(day, outcome))
            if outcome.problems or not outcome.failed:
                producer.send(_alert(day, outcome))
            # The job's earlier failure, mended: every recent day it tried again was written
            # (by hand, archiving one day proves less).
            if (
                retention
                and not outcome.failed
                and is_open_alert(settings, SOURCE, "archive_failed")
            ):
                resolved = f"archive of {day} made"
                producer.send(
                    AlertResolved(code="archive_failed", severity="critical", message=resolved)
                )
        finally:
            engine.dispose()
    if failure:
        fail(PROGRAM, failure, 1)
    return outcome


def _alert(day: date, outcome: ArchiveOutcome) -> Alert:
    rows = sum(w.rows for w in outcome.written)
    size = sum(w.bytes for w in outcome.written)
    raw = sum(w.raw_bytes for w in outcome.written)
    if outcome.problems:
        return Alert(
            severity="critical",
            code=DAMAGED,
            message=f"{len(outcome.problems)} archives do not match: {outcome.problems[0]}"[:2000],
            context={"problems": str(len(outcome.problems))},
        )
    return Alert(
        severity="info",
        code="archive_made",
        message=(
            f"archive of {day}: {counted(len(outcome.written), 'file')}, {rows} rows, "
            f"{size / 1e6:.1f} MB (x{raw / size if size else 0:.1f}); "
            f"pruning asked for {counted(len(outcome.requested), 'day')}"
        ),
        context={"files": str(len(outcome.written)), "pruned_days": str(len(outcome.requested))},
    )


def _failed_alert(day: date, outcome: ArchiveOutcome) -> Alert:
    """archive_failed naming every table and day not written.

    Those days are never pruned: their rows stay in the database until a run writes them.
    """
    which = [entry.split(": ", 1)[0] for entry in outcome.failed]
    return Alert(
        severity="critical",
        code="archive_failed",
        message=(
            f"archive of {day}: {', '.join(which)} not written (kept in the database); "
            f"{counted(len(outcome.written), 'file')} written, pruning asked for "
            f"{counted(len(outcome.requested), 'day')}: {outcome.failed[0]}"
        )[:2000],
        context={"failed": ", ".join(which)[:2000]},
    )


def _report(outcome: ArchiveOutcome, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(outcome.summary())))
        return
    for w in outcome.written:
        ratio = w.raw_bytes / w.bytes if w.bytes else 0.0
        typer.echo(
            f"{w.path}  {w.rows} rows, {w.bytes / 1e6:.2f} MB (x{ratio:.1f}), "
            f"{w.elapsed_ms / 1000:.1f} s"
        )
    for note in outcome.notes:
        typer.echo(note)
    for request in outcome.requested:
        typer.echo(f"pruning asked: {request.table} of {request.trade_date}")
    for problem in outcome.problems:
        typer.echo(problem, err=True)
    for failure in outcome.failed:
        typer.echo(f"not written: {failure}", err=True)


def _parse(day: str) -> date:
    """``--date``'s day; a later day than today is refused (exit 2), as a typo it mostly is.

    Nothing is stored for it yet, so its archive is no file and reads as made, and a run's
    retention counts back from its day: ``run --date 2030-01-02`` would have had every day
    since some year before it pruned.
    """
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        fail(PROGRAM, f"--date {day!r} is not YYYY-MM-DD", 2)
    today = _today()
    if parsed > today:
        fail(PROGRAM, f"--date {parsed} is in the future (today is {today})", 2)
    return parsed


def _today() -> date:
    """Today in Korea, on the supervisor's clock (a demo's simulated day)."""
    return now_utc(clock_from_env()).astimezone(KST).date()
