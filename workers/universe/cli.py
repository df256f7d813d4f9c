"""``observer universe build``: the ``universe`` job (06:10 and 07:00 on sessions, at start-up).

Checks the configuration and ``--date``, takes ``<data_dir>/universe/LOCK``, signals READY,
then runs `workers.universe.job` (a day's universe is built once; a failed build reuses an
earlier one). Exit codes: 0 built, present, restored or reused; 1 failed with nothing to
reuse, or the writer did not acknowledge; 2 bad arguments or configuration; 3 another build
holds the folder. The database and KIS code load only once the job is READY.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import msgspec
import typer

from bus.errors import BusError
from bus.lock import InstanceLock, LockHeld
from observer.calendar.clock import clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.cli.support import check_credentials, fail, job_producer
from observer.config.load import load_settings
from observer.errors import ConfigError
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging
from workers.universe import SOURCE
from workers.universe.snapshot import UniverseFile, nxt_counts

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True, help="The daily universe of Track A: the stocks it covers all day."
)


@app.callback()
def _group() -> None:
    """Keep ``build`` a subcommand (typer collapses a one-command app)."""


PROGRAM = "observer universe"


def _fail(message: str, code: int) -> NoReturn:
    fail(PROGRAM, message, code)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = InstanceLock(folder / "LOCK")
    except LockHeld as exc:
        _fail(f"another universe build (pid {exc.holder}) holds {folder / 'LOCK'}", 3)
    with contextlib.closing(lock):
        yield


def _report(universe: UniverseFile, outcome: str, as_json: bool) -> None:
    meta = universe.metadata
    nxt = nxt_counts(universe)
    typer.echo(
        f"universe {meta.date} ({outcome}): {meta.symbol_count} symbols of {meta.candidates} "
        f"candidates, based on {meta.previous_trading_day}; excluded {meta.excluded}; "
        f"{meta.requests} requests in {meta.elapsed_s:g} s = {meta.achieved_fraction:.0%} of "
        f"{meta.rate_limit_per_s:g}/s"
        + (f"; reused from {meta.reused_from}" if meta.reused_from else "")
    )
    standing = f"{nxt['eligible']} trade on Nextrade ({nxt['halted']} halted there)"
    if nxt["unknown"]:
        why = f": {meta.nxt_not_asked}" if meta.nxt_not_asked else ""
        standing += f", {nxt['unknown']} not known{why}"
    typer.echo(f"Nextrade: {standing}")
    if as_json:
        summary: dict[str, Any] = msgspec.to_builtins(meta)
        typer.echo(json.dumps({"outcome": outcome, "nxt": nxt, **summary}))


@app.command()
def build(
    day: Annotated[
        str | None, typer.Option("--date", help="trading day (default: today, KST)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is JSON")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Build the day's universe (once), write its file and publish it."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _fail(str(exc), 2)
    check_credentials("observer universe", settings.kis)  # refused ones: exit 2 before READY
    setup_logging()
    clock = clock_from_env()
    calendar = TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)
    try:
        target = date.fromisoformat(day) if day else now_utc(clock).astimezone(KST).date()
    except ValueError as exc:
        _fail(f"--date: {exc}", 2)
    if not calendar.is_session(target):
        typer.echo(f"{target} is not a KRX session: no universe")
        return
    data_dir = Path(settings.paths.data_dir)
    notifier = Heartbeat.from_env()
    with _folder_lock(data_dir / "universe"):
        notifier.ready()
        from workers.universe import job  # after READY: the database and KIS

        try:
            with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
                universe, outcome = job.run_universe(settings, clock, target, producer, notifier)
        except (BusError, job.NoUniverse) as exc:
            _fail(str(exc), 1)
    _report(universe, outcome, as_json)


def main() -> None:
    """``python -m workers.universe.cli`` (the same as ``observer universe``)."""
    app()


if __name__ == "__main__":
    main()
