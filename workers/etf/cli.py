"""``observer etf``: the ETF jobs (list, daily, holdings, backfill), their health and reports.

A job checks configuration and arguments first (exit 2 before READY: the supervisor's usage
error); then READY, the lock ``<data_dir>/etf/LOCK``, the producer, and the work. Exit codes:
0 done; 1 the run failed (too many ETFs failed, no active ETF, the writer did not
acknowledge); 2 bad arguments or configuration; 3 another ETF job runs. ``status`` exits 1
when the data is stale.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import msgspec
import typer

from bus.lock import InstanceLock, LockHeld
from observer.calendar.clock import clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.cli.support import (
    check_credentials,
    fail,
    job_producer,
    report_reading,
    settings_or_exit,
)
from observer.config.tree import Settings
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging

if TYPE_CHECKING:
    from observer.calendar.clock import Clock

__all__ = ["CHECK_SOURCE", "SOURCE", "app"]

SOURCE = "etf"
CHECK_SOURCE = "etf_check"  # its own outbox: the check may run while a collection does
PROGRAM = "observer etf"

app = typer.Typer(
    no_args_is_help=True,
    help="ETFs: the KRX list, daily price/NAV/premium/AUM, constituents, health and reports.",
)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]
DateOption = Annotated[str | None, typer.Option("--date", help="session (default: see help)")]
_CODE = re.compile(r"[0-9A-Z]{6}")  # a KRX short code (alphanumeric since 2024: 0091C0)


def _fail(message: str, code: int) -> NoReturn:
    fail(PROGRAM, message, code)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as exc:
        _fail(f"--date: {exc}", 2)


def _session(settings: Settings, clock: Clock, text: str | None, job: str, instead: str) -> date:
    """The session a live-quote job collects: the last completed one, the only one allowed.

    KIS's quote after the close is that session's; a ``--date`` of another session would
    stamp it on that day (and replace the day's good row), so it exits 2 naming ``instead``
    (``{day}``: the day asked for).
    """
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.sessions import target_session

    target = target_session(settings, now_utc(clock).astimezone(KST))
    asked = _day(text)
    if target is None:
        _fail(f"a session is under way: {job} collects a closed session, after its close", 2)
    if asked is not None and asked != target:
        _fail(
            f"--date {asked}: {job} reads KIS's live answer, which is {target}'s (the last "
            f"completed session: omit --date or pass {target}); {instead.format(day=asked)}",
            2,
        )
    return target


def _completed(settings: Settings, clock: Clock, text: str | None, job: str) -> date:
    """``--date`` (default: the last completed session), never a session not yet closed.

    A table read before the close is the session's prices so far: stored, it would stand
    as the day's final row. Exits 2 while a session is under way or for a later day.
    """
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.sessions import target_session

    target = target_session(settings, now_utc(clock).astimezone(KST))
    asked = _day(text)
    if target is None:
        _fail(f"a session is under way: {job} reads closed sessions, after the close", 2)
    if asked is not None and asked > target:
        _fail(
            f"--date {asked}: {job} reads completed sessions only, and the last one is "
            f"{target} (omit --date or pass {target} or earlier)",
            2,
        )
    return asked or target


def _judged_day(settings: Settings, clock: Clock, text: str | None) -> date | None:
    """``--date`` of a health judgement: a KRX session, not after today (exit 2 otherwise).

    A day without a session has no rows and never will: judged, it read as a missed session
    (``status`` STALE, ``check`` a critical ``etf_stale`` that nothing could end).
    """
    asked = _day(text)
    if asked is None:
        return None
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.sessions import judgeable

    why = judgeable(settings, now_utc(clock).astimezone(KST), asked)
    if why is not None:
        _fail(f"--date: {why}, so it has no ETF data to judge (omit --date: the session due)", 2)
    return asked


def _symbols(settings: Settings, text: str | None) -> list[str]:
    """``--symbols``: KRX codes of held ETFs (exit 2 otherwise, before any call is made).

    A typo sent to KIS failed there, and the run opened an ``etf_holdings_failures`` error
    alert for it. The ETFs are the daily run's: the held KRX list, else the KIS masters'.
    """
    only = [s.strip().upper() for s in (text or "").split(",") if s.strip()]
    malformed = [s for s in only if not _CODE.fullmatch(s)]
    if malformed:
        _fail(f"--symbols: {', '.join(malformed)}: not a KRX code (6 letters or digits)", 2)
    if not only:
        return only
    held = _held_symbols(settings)
    unknown = [s for s in only if s not in held]
    if unknown:
        _fail(
            f"--symbols: {', '.join(unknown)}: not an ETF of the held list ({len(held)} "
            f"active; `{PROGRAM} list` updates it)",
            2,
        )
    return only


def _held_symbols(settings: Settings) -> set[str]:
    """The active ETFs the jobs collect: the KRX list's, else the KIS masters' (exit 1)."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from sqlalchemy.exc import SQLAlchemyError

    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.etf_queries import held_etfs, kis_etf_symbols
    from observer.db.readers import reader_engine
    from observer.errors import StoreError

    try:
        engine = reader_engine(settings.database, SOURCE)
        try:
            with engine.connect() as conn:
                return set(held_etfs(conn)) or kis_etf_symbols(conn)
        finally:
            engine.dispose()
    except (SQLAlchemyError, StoreError) as exc:
        _fail(f"cannot read the held ETFs to check --symbols: {exc}", 1)


def _prepared(settings: Settings) -> Clock:
    """A job's start before READY: configuration, credentials, logging; its clock."""
    if settings.kis.environment == "paper":
        _fail("the ETF TRs are for real accounts only; kis.environment is 'paper'", 2)
    check_credentials(PROGRAM, settings.kis)
    setup_logging()
    return clock_from_env()


@contextmanager
def _job(settings: Settings) -> Iterator[Heartbeat]:
    """READY, then the lock: once every check (`_prepared`, the arguments) has passed."""
    notifier = Heartbeat.from_env()
    folder = Path(settings.paths.data_dir) / "etf"
    folder.mkdir(parents=True, exist_ok=True)
    notifier.ready()
    try:
        lock = InstanceLock(folder / "LOCK")
    except LockHeld as exc:
        _fail(f"another ETF job (pid {exc.holder}) holds {folder / 'LOCK'}", 3)
    with contextlib.closing(lock):
        yield notifier


def _echo(summary: msgspec.Struct, as_json: bool) -> None:
    """A job's summary as ``key=value`` words (counts per field left out), then its JSON."""
    fields = msgspec.structs.asdict(summary)
    typer.echo(" ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, dict)))
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(summary)))


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Read the KRX ETF list and apply its changes (never an empty, LOGOUT or shrunken one)."""
    settings = settings_or_exit(PROGRAM, config)
    clock = _prepared(settings)
    with _job(settings) as notifier:
        # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
        from workers.etf.jobs import run_list

        with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
            summary = run_list(settings, clock, producer)
    _echo(summary, as_json)


@app.command()
def daily(
    day: DateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Collect the last completed session's price, NAV, premium and AUM of every ETF.

    The session: today's once it has closed, else the previous one (KIS's quote shows it
    until the next opening). Refused while a session is under way, and for a ``--date`` of
    another session (the quote is not that day's): ``backfill --date D`` mends past days.
    """
    settings = settings_or_exit(PROGRAM, config)
    clock = _prepared(settings)
    target = _session(
        settings,
        clock,
        day,
        "the daily run",
        f"past sessions are mended from their own tables by `{PROGRAM} backfill --date "
        f"{{day}}` (the {settings.etf.repair_sessions} sessions up to that day)",
    )
    with _job(settings) as notifier:
        # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
        from workers.etf.daily import run_daily

        with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
            summary = run_daily(settings, clock, target, producer, notifier)
    _echo(summary, as_json)
    if summary.listed == 0:  # nothing to collect is no healthy day (etf_stale)
        _fail("no active ETF: no KRX ETF list is held and the KIS masters have none", 1)
    if summary.failed_over_limit:
        _fail(f"{summary.failures} ETFs failed (over {settings.etf.max_failed_pct:g}%)", 1)


@app.command()
def holdings(
    day: DateOption = None,
    symbols: Annotated[
        str | None, typer.Option("--symbols", help="these ETFs (comma-separated), not every one")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Collect every ETF's constituents (weekly), and check them against its count.

    The session: as for ``daily`` (KIS answers only the current constituents: a ``--date``
    of another session is refused). Refused while a session is under way.
    """
    settings = settings_or_exit(PROGRAM, config)
    clock = _prepared(settings)
    target = _session(
        settings,
        clock,
        day,
        "the holdings run",
        "KIS keeps no past constituents: a past session's cannot be collected "
        f"(`{PROGRAM} holdings-report SYMBOL --date {{day}}` shows those stored)",
    )
    only = _symbols(settings, symbols)
    with _job(settings) as notifier:
        # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
        from workers.etf.holdings import run_holdings

        with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
            summary = run_holdings(settings, clock, target, producer, notifier, only)
    _echo(summary, as_json)
    if summary.failed_over_limit:
        _fail(f"{summary.failures} ETFs failed (over {settings.etf.max_failed_pct:g}%)", 1)


@app.command("holdings-report")
def holdings_report(
    symbol: Annotated[str, typer.Argument(help="the ETF's code")],
    day: Annotated[str | None, typer.Option("--date", help="on or before (default: today)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    config: ConfigOption = None,
) -> None:
    """One ETF's newest stored constituents: code, name, kind, weight and value."""
    settings = settings_or_exit(PROGRAM, config)
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.report import holdings_table

    until = _day(day) or now_utc(clock_from_env()).astimezone(KST).date()
    with report_reading(f"{PROGRAM} holdings-report", settings.database) as conn:
        table = holdings_table(conn, symbol, until)
    if table is None:
        _fail(f"no holdings of {symbol} stored on or before {until}", 1)
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(table)))
        return
    typer.echo(
        f"{symbol} on {table.date}: {len(table.lines)} lines "
        f"(the answer counts {table.reported_count}, the quote {table.quote_count})"
    )
    for line in table.lines:
        typer.echo(
            f"{line.code:<12} {line.name[:24]:<24} {line.kind:<7} "
            f"{line.weight_pct!s:>8}% {line.value_krw!s:>16}"
        )


@app.command()
def backfill(
    day: DateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Repair the ``repair_sessions`` sessions up to D: missing or revised NAVs and closes.

    D: the last completed session by default. From each session's own KRX table (else
    KIS's series): the way to mend past sessions. Refused while a session is under way,
    and for a ``--date`` after the last completed session (its table is not final yet).
    """
    settings = settings_or_exit(PROGRAM, config)
    clock = _prepared(settings)
    target = _completed(settings, clock, day, "the repair")
    with _job(settings) as notifier:
        # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
        from workers.etf.backfill import run_repair

        with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
            summary = run_repair(settings, clock, target, producer, notifier)
    _echo(summary, as_json)
    if summary.failed_over_limit:
        _fail(f"{summary.failures} ETFs failed (over {settings.etf.max_failed_pct:g}%)", 1)


@app.command()
def status(
    day: DateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """The ETF data's health; exit 1 when stale (a session's rows missing by 17:00 KST)."""
    settings = settings_or_exit(PROGRAM, config)
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.report import judged

    clock = clock_from_env()
    asked = _judged_day(settings, clock, day)
    now = now_utc(clock).astimezone(KST)
    with report_reading(f"{PROGRAM} status", settings.database) as conn:
        verdict = judged(settings, conn, now, asked)
    typer.echo(
        f"ETFs {verdict.session}: {verdict.collected} of {verdict.active} collected"
        + (" STALE" if verdict.stale else "")
    )
    for condition in verdict.conditions:
        typer.echo(f"  {condition.severity}: {condition.code} {condition.message}")
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(verdict.summary())))
    if verdict.stale:
        raise typer.Exit(1)


@app.command()
def check(
    day: DateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Alert on the ETF data's health, and resolve what has cleared (the 17:00 job)."""
    settings = settings_or_exit(PROGRAM, config)
    setup_logging()
    clock = clock_from_env()
    asked = _judged_day(settings, clock, day)  # a bad --date exits 2 before READY
    notifier = Heartbeat.from_env()
    notifier.ready()
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.jobs import send_health

    with job_producer(PROGRAM, settings, CHECK_SOURCE, clock, notifier, 60.0) as producer:
        verdict = send_health(settings, clock, asked, producer)
    typer.echo(
        f"ETFs {verdict.session}: {verdict.collected} of {verdict.active} collected"
        + (" STALE" if verdict.stale else "")
    )
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(verdict.summary())))


@app.command()
def report(
    day: Annotated[str, typer.Option("--date", help="session, YYYY-MM-DD")],
    sort: Annotated[str, typer.Option("--sort", help="premium | aum | symbol")] = "symbol",
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="also write this CSV")] = None,
    config: ConfigOption = None,
) -> None:
    """The day's table: price, NAV, premium, AUM, premium windows and 52-week range."""
    settings = settings_or_exit(PROGRAM, config)
    if sort not in ("premium", "aum", "symbol"):
        _fail(f"--sort: {sort!r} is not premium, aum or symbol", 2)
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.etf.report import day_table, write_csv

    session = _day(day)
    if session is None:
        _fail("--date: a session is required (YYYY-MM-DD)", 2)
    with report_reading(f"{PROGRAM} report", settings.database) as conn:
        table = day_table(conn, session, sort)
    if csv_path is not None:
        write_csv(table, csv_path)
    if as_json:
        etfs = msgspec.to_builtins(table)
        typer.echo(json.dumps({"date": session.isoformat(), "etfs": etfs}))
        return
    typer.echo(f"ETFs on {session}: {len(table)}")
    for row in table:
        typer.echo(
            f"{row.symbol:<8} {row.name[:20]:<20} {row.price!s:>9} {row.nav!s:>11} "
            f"{row.premium!s:>8}% {row.aum!s:>16}"
        )
    sys.stdout.flush()


def main() -> None:
    """``python -m workers.etf.cli`` (the same as ``observer etf``)."""
    app()


if __name__ == "__main__":
    main()
