"""``observer enrich``: GICS sectors of the overseas stocks (the ``enrich`` job).

``run`` classifies the stocks of some regions (KIS code mapping, else the fallback source)
and publishes what it found; ``report`` and ``unmapped`` read the database; ``codes``
fetches KIS's industry catalogs. Exit codes: 0 done (failures and deferrals are alerted,
and the next run picks them up); 1 the writer did not acknowledge; 2 bad arguments or
configuration; 3 another run holds the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import msgspec
import typer

from bus.errors import BusError
from bus.lock import InstanceLock, LockHeld
from observer.calendar.clock import clock_from_env
from observer.cli.support import (
    fail,
    job_producer,
    report_reading,
    settings_or_exit,
    start_job,
)
from observer.config.tree import Settings
from observer.errors import ConfigError, KisError
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging
from observer.reference.sector_map import SectorMap, load_sector_map
from workers.enrich import SOURCE
from workers.enrich.classify import EXCHANGES_OF

if TYPE_CHECKING:
    from workers.enrich.summary import DryRunSummary, RunSummary

__all__ = ["app"]

PROGRAM = "observer enrich"
REGIONS = tuple(EXCHANGES_OF)

app = typer.Typer(no_args_is_help=True, help="GICS sectors of the stocks (overseas and KR).")

ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]
JsonOption = Annotated[bool, typer.Option("--json", help="last line is JSON")]


def _fail(message: str, code: int) -> NoReturn:
    fail(PROGRAM, message, code)


def _regions(text: str) -> list[str]:
    if text.strip().upper() == "ALL":
        return list(REGIONS)
    wanted = [r.strip().upper() for r in text.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in REGIONS]
    if unknown or not wanted:
        _fail(f"--regions: unknown {unknown or text!r}; known: {', '.join(REGIONS)} or ALL", 2)
    return wanted


def _sector_map(settings: Settings) -> SectorMap:
    try:
        return load_sector_map(
            Path(settings.enrich.sector_map) if settings.enrich.sector_map else None
        )
    except ConfigError as exc:
        _fail(str(exc), 2)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        lock = InstanceLock(folder / "LOCK")
    except LockHeld as exc:
        _fail(f"another enrichment run (pid {exc.holder}) holds {folder / 'LOCK'}", 3)
    with contextlib.closing(lock):
        yield


@app.command()
def run(
    regions: Annotated[str, typer.Option("--regions", help="US,CN,HK,JP,VN,KR or ALL")] = "ALL",
    force_refresh: Annotated[
        bool, typer.Option("--force-refresh/--incremental", help="every stock, or only due ones")
    ] = False,
    max_age_days: Annotated[int | None, typer.Option("--max-age-days", min=1)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only: publish nothing")] = False,
    max_retries: Annotated[int | None, typer.Option("--max-retries", min=0, max=10)] = None,
    retry_delay: Annotated[float | None, typer.Option("--retry-delay", min=0.001)] = None,
    max_workers: Annotated[int | None, typer.Option("--max-workers", min=1, max=10)] = None,
    as_json: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="log at DEBUG")] = False,
    config: ConfigOption = None,
) -> None:
    """Classify the stocks of some regions and publish their sectors."""
    settings = settings_or_exit(PROGRAM, config)
    wanted = _regions(regions)
    changes = {
        "max_age_days": max_age_days,
        "max_retries": max_retries,
        "retry_delay_s": retry_delay,
        "max_workers": max_workers,
    }
    enrich = msgspec.structs.replace(
        settings.enrich, **{k: v for k, v in changes.items() if v is not None}
    )
    settings = msgspec.structs.replace(settings, enrich=enrich)
    sector_map = _sector_map(settings)
    if enrich.fallback == "yfinance":
        # deferred: the fallback source (about 0.1 s) only where it is configured
        from observer.sector_sources.yfinance_source import YFinanceSource

        try:
            YFinanceSource.installed()  # a clear error now, not in the middle of a run
        except ConfigError as exc:
            _fail(str(exc), 2)
    setup_logging("DEBUG" if verbose else "INFO")
    clock = clock_from_env()
    notifier = Heartbeat.from_env()
    folder = Path(settings.paths.data_dir) / "enrich"
    with _folder_lock(folder):
        notifier.ready()
        from workers.enrich import job  # after READY: KIS, the fallback and the database

        summary: RunSummary | DryRunSummary
        if dry_run:
            summary = job.dry_run(settings, clock, sector_map, wanted, force_refresh)
        else:
            try:
                with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
                    summary = job.run_job(
                        settings, clock, sector_map, wanted, force_refresh, producer, notifier
                    )
            except BusError as exc:
                _fail(str(exc), 1)
    _print(summary, as_json)


def _print(summary: RunSummary | DryRunSummary, as_json: bool) -> None:
    from workers.enrich.summary import summary_text  # loaded with the job, after READY

    typer.echo(summary_text(summary))
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(summary)))


@app.command()
def report(
    day: Annotated[
        str | None, typer.Option("--date", help="the runs of this day (KST), not the latest")
    ] = None,
    with_changes: Annotated[
        bool, typer.Option("--changes", help="list the symbols whose sector changed")
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Per region: a run's counts, coverage, unmapped codes, cross-check and changes."""
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.enrich.report import report_rows, report_text

    settings = settings_or_exit(PROGRAM, config)
    try:
        target = date.fromisoformat(day) if day else None
    except ValueError as exc:
        _fail(f"--date: {exc}", 2)
    sector_map = _sector_map(settings)
    with report_reading(f"{PROGRAM} report", settings.database) as conn:
        rows = report_rows(conn, sector_map, target)
    for line in report_text(rows, with_changes):
        typer.echo(line)
    if not rows:
        typer.echo(f"no enrichment run {'on ' + str(target) if target else 'yet'}")
    if as_json:
        typer.echo(json.dumps({"date": day, "regions": rows}))


@app.command()
def unmapped(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """KIS industry codes without a mapping, with their KIS names and stock counts."""
    # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
    from workers.enrich.report import unmapped_rows

    settings = settings_or_exit(PROGRAM, config)
    sector_map = _sector_map(settings)
    # KIS's overseas codes only: KR's are mapped by kr_* tables (see the report)
    overseas = tuple(r for r in REGIONS if EXCHANGES_OF[r])
    with report_reading(f"{PROGRAM} unmapped", settings.database) as conn:
        rows = unmapped_rows(conn, sector_map, overseas)
    for r in rows:
        typer.echo(f"{r.exchange} {r.icod or '(none)'} {r.name or '?'}: {r.stocks}")
    typer.echo(f"{len(rows)} unmapped codes, {sum(r.stocks for r in rows)} stocks")
    if as_json:
        unmapped = msgspec.to_builtins(rows)
        typer.echo(json.dumps({"mapping_version": sector_map.version, "unmapped": unmapped}))


@app.command()
def codes(
    regions: Annotated[str, typer.Option("--regions", help="US,CN,HK,JP,VN,KR or ALL")] = "ALL",
    config: ConfigOption = None,
) -> None:
    """Fetch KIS's industry catalogs (HHDFS76370100, one call per exchange) and publish them."""
    # deferred: the producer's runtime (ZeroMQ, about 0.1 s) loads after READY
    from observer.runtime import drained
    from workers.enrich.run import exchanges_of, fetch_codes

    settings, clock, notifier = start_job(PROGRAM, config)
    try:
        with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
            try:
                exchanges = exchanges_of(_regions(regions))
                found = asyncio.run(fetch_codes(settings, clock, exchanges, producer.send))
            except KisError as exc:
                _fail(f"HHDFS76370100: {exc}", 1)
            for event in found:
                producer.send(event)
                typer.echo(f"{event.exchange}: {len(event.codes)} codes")
            drained(producer, notifier, 60.0)
    except BusError as exc:
        _fail(str(exc), 1)


def main() -> None:
    """``python -m workers.enrich.cli`` (the same as ``observer enrich``)."""
    app()


if __name__ == "__main__":
    main()
