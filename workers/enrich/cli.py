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
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import msgspec
import typer

from bus.errors import BusError
from bus.events import Alert, AlertResolved
from bus.lock import InstanceLock, LockHeld
from observer.calendar.clock import Clock, clock_from_env
from observer.cli.support import (
    fail,
    job_producer,
    open_alert_subjects,
    report_reading,
    settings_or_exit,
    start_job,
)
from observer.config.tree import Settings
from observer.errors import ConfigError, KisError
from observer.process.heartbeat import Notifier
from observer.process.logs import setup_logging
from observer.reference.sector_map import SectorMap, load_sector_map
from workers.enrich import checkpoint as cp
from workers.enrich.classify import EXCHANGES_OF, Tally
from workers.enrich.summary import summary_text, write_summary

if TYPE_CHECKING:
    from bus.producer import Producer
    from observer.db.sector_queries import Stored
    from workers.enrich.run import Job

__all__ = ["SOURCE", "app"]

SOURCE = "enrich"
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


def _read(
    settings: Settings, regions: list[str]
) -> tuple[dict[str, list[Stored]], dict[tuple[str, str], str], dict[str, dict[str, Any]]]:
    """The regions' stocks, KIS's code names, and every region's newest stored run."""
    from observer.db.readers import reader_engine
    from observer.db.sector_queries import code_names, latest_runs, stocks_with_sectors

    engine = reader_engine(settings.database, "enrich")
    try:
        with engine.connect() as conn:
            stocks = {r: stocks_with_sectors(conn, r) for r in regions}
            runs = {row["region"]: row for row in latest_runs(conn)}
            return stocks, code_names(conn), runs
    finally:
        engine.dispose()


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
        from observer.fallback.yfinance_source import YFinanceSource

        try:
            YFinanceSource.installed()  # a clear error now, not in the middle of a run
        except ConfigError as exc:
            _fail(str(exc), 2)
    setup_logging("DEBUG" if verbose else "INFO")
    clock = clock_from_env()
    notifier = Notifier.from_env()
    folder = Path(settings.paths.data_dir) / "enrich"
    with _folder_lock(folder):
        notifier.ready()
        if dry_run:
            summary = _dry_run(settings, clock, sector_map, wanted, force_refresh, notifier)
        else:
            try:
                with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
                    summary = _run(
                        settings, clock, sector_map, wanted, force_refresh, producer, notifier
                    )
            except BusError as exc:
                _fail(str(exc), 1)
    _print(summary, as_json)


def _job(
    settings: Settings,
    clock: Clock,
    sector_map: SectorMap,
    force: bool,
    producer: Producer | None,
    notifier: Notifier,
    names: dict[tuple[str, str], str],
    checkpoint: cp.Checkpoint,
    since_ns: int,
) -> Job:
    from workers.enrich.run import Job

    return Job(
        settings=settings,
        clock=clock,
        sector_map=sector_map,
        send=producer.send if producer else None,
        flush=producer.flush if producer else (lambda: None),
        beat=lambda: None,
        source=None,
        names=names,
        force=force,
        checkpoint_path=Path(settings.paths.data_dir) / "enrich" / "checkpoint.json",
        checkpoint=checkpoint,
        since_ns=since_ns,
    )


def _dry_run(
    settings: Settings,
    clock: Clock,
    sector_map: SectorMap,
    regions: list[str],
    force: bool,
    notifier: Notifier,
) -> dict[str, Any]:
    from workers.enrich.run import requests_per_call, run_regions

    stocks, names, _ = _read(settings, regions)
    mode = "force" if force else "incremental"
    checkpoint = cp.Checkpoint(mode=mode, started_ns=clock.now_ns(), regions=tuple(regions))
    job = _job(settings, clock, sector_map, force, None, notifier, names, checkpoint, 0)
    tallies = asyncio.run(run_regions(job, stocks))
    rate = settings.enrich.fallback_rate_per_s / requests_per_call(settings)  # calls a second
    needed = sum(t.fallback_needed for t in tallies.values())
    kis = sum(t.kis_needed for t in tallies.values())
    # KIS's lookups go round every account, each at the jobs' share of its budget; a stock
    # asks at least one TR (HHDFS76200200, or CTPF1702R alone)
    share = settings.kis.process_share.get("jobs", 0.0)
    kis_rate = share * sum(a.rest_per_second for a in settings.kis.accounts)  # calls a second
    return {
        "dry_run": True,
        "mode": mode,
        "mapping_version": sector_map.version,
        "regions": {r: asdict(t) for r, t in tallies.items()},
        "kis_lookups": kis,
        # the KIS tier's wall-time floor: one call per stock at the jobs' share
        "kis_floor_s": round(kis / kis_rate, 1) if kis_rate else 0.0,
        # at most: KIS's lookups answer some of these first (retries not counted)
        "fallback_calls": needed,
        # one limiter per host, shared by every region: the fallback's time, at most
        "fallback_max_s": round(needed / rate, 1),
    }


def _run(
    settings: Settings,
    clock: Clock,
    sector_map: SectorMap,
    regions: list[str],
    force: bool,
    producer: Producer,
    notifier: Notifier,
) -> dict[str, Any]:
    from workers.enrich.alerts import alerts, cleared
    from workers.enrich.run import exchanges_of, fetch_codes

    path = Path(settings.paths.data_dir) / "enrich" / "checkpoint.json"
    mode = "force" if force else "incremental"
    earlier = cp.load(path, producer.send)
    # A killed run of these very regions and mode: what it stored since its start is fresh.
    # Another's (a --regions US run's, resumed by a KR one) would skip the wrong stocks.
    resumed = earlier is not None and earlier.mode == mode and set(earlier.regions) == set(regions)
    checkpoint = (
        earlier
        if resumed and earlier is not None
        else cp.Checkpoint(mode=mode, started_ns=clock.now_ns(), regions=tuple(regions))
    )
    cp.save(path, checkpoint)
    codes_fetched = 0
    raised: set[str] = set()
    # HHDFS76370100 is taken as real-only (paper availability UNCONFIRMED): a paper
    # deployment maps the codes without their names rather than warn on every run.
    if settings.enrich.kis_codes and settings.kis.accounts and settings.kis.environment != "paper":
        try:
            catalogs = fetch_codes(settings, clock, exchanges_of(regions), producer.send)
            for event in asyncio.run(catalogs):
                producer.send(event)
                codes_fetched += len(event.codes)
        except KisError as exc:
            raised.add("enrich_kis_codes_failed")
            producer.send(
                Alert(
                    severity="warning",
                    code="enrich_kis_codes_failed",
                    subject="enrich",
                    message=f"KIS industry catalogs (HHDFS76370100) not fetched: {exc}",
                )
            )
    stocks, names, earlier_runs = _read(settings, regions)
    since = checkpoint.started_ns if resumed else 0
    job = _job(settings, clock, sector_map, force, producer, notifier, names, checkpoint, since)
    total = sum(len(rows) for rows in stocks.values())
    started = clock.now_ns()
    with _progress(job, notifier, total):
        tallies = asyncio.run(_guarded(job, stocks))
    ms = (clock.now_ns() - started) // 1_000_000
    source = job.source
    retries, opens, calls = (
        (source.retries, source.breaker.opened, source.calls) if source else (0, 0, 0)
    )
    kis_calls = job.kis.requests if job.kis else 0
    for region, tally in tallies.items():
        cross = job.cross.get(region)
        producer.send(
            tally.event(
                region,
                mode,
                retries=retries,
                breaker_opens=opens,
                calls=calls,
                duration_ms=ms,
                mapping_version=sector_map.version,
                kis_calls=kis_calls,
                cross_compared=cross.compared if cross else 0,
                cross_disagreeing=cross.disagreeing if cross else 0,
                cross_disagreements=tuple(cross.listed) if cross else (),
            )
        )
        total = max(tally.total, 1)
        job.counters[f"{region.lower()}_success_pct"] = round(
            100 * (tally.total - tally.fallback_failed - tally.deferred) / total, 1
        )
        job.counters[f"{region.lower()}_duration_s"] = ms / 1000
    for alert in alerts(job, tallies):
        raised.add(alert.code)
        producer.send(alert)
    fetched = codes_fetched > 0 and "enrich_kis_codes_failed" not in raised
    _resolve(settings, producer, cleared(job, tallies, earlier_runs, raised, fetched))
    if not job.stop.is_set():
        cp.clear(path)  # a stopped run keeps it: the next one resumes
    notifier.beat_now(job.counters)
    summary = {
        "dry_run": False,
        "mode": mode,
        "resumed": resumed,
        "mapping_version": sector_map.version,
        "regions": {r: asdict(t) for r, t in tallies.items()},
        "kis_codes": codes_fetched,
        "fallback_calls": calls,
        "retries": retries,
        "breaker_opens": opens,
        "kis_calls": kis_calls,
        "duration_s": ms / 1000,
        "stopped": job.stop.is_set(),
        "cross_check": {
            r: {"compared": c.compared, "disagreeing": c.disagreeing, "listed": c.listed}
            for r, c in job.cross.items()
        },
    }
    write_summary(settings, clock, summary)
    return summary


def _resolve(settings: Settings, producer: Producer, codes: list[str]) -> None:
    """An `AlertResolved` for each open alert of ``codes``, conditions the run found over.

    Only of an alert that is open (a resolution of nothing would go to every channel each
    run); a database that cannot say counts as open.
    """
    from workers.enrich.alerts import ALERT_CODES

    for code in codes:
        subjects = open_alert_subjects(settings, SOURCE, code)
        for subject in sorted(subjects if subjects is not None else {"enrich"}):
            producer.send(
                AlertResolved(
                    code=code, severity="warning", subject=subject, message=ALERT_CODES[code]
                )
            )


@contextmanager
def _progress(job: Job, notifier: Notifier, total: int) -> Iterator[None]:
    """Heartbeats with the counters; a rich bar too on a terminal when unsupervised."""
    if notifier.supervised or not sys.stdout.isatty():
        job.beat = lambda: notifier.beat(lambda: job.counters)
        yield
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("stocks", total=total)

        def beat() -> None:
            done = sum(v for k, v in job.counters.items() if k.endswith("_done"))
            bar.update(task, completed=done)

        job.beat = beat
        yield


async def _guarded(job: Job, stocks: dict[str, list[Stored]]) -> dict[str, Tally]:
    """The regions with the fallback source open; SIGTERM/SIGINT defer the rest."""
    from workers.enrich.run import (
        check_lists,
        fallback_on,
        guarded_source,
        kis_tier,
        run_regions,
    )

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, job.stop.set)
    http = None
    if fallback_on(job.settings):
        job.source, http = guarded_source(job.settings, job.clock)
    accounts = kis_tier(job)
    try:
        await check_lists(job, stocks)
        return await run_regions(job, stocks)
    finally:
        if http is not None:
            await http.aclose()
        for account in accounts:
            await account.aclose()


def _print(summary: dict[str, Any], as_json: bool) -> None:
    typer.echo(summary_text(summary))
    if as_json:
        typer.echo(json.dumps(summary))


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
    from workers.enrich.report import unmapped_rows

    settings = settings_or_exit(PROGRAM, config)
    sector_map = _sector_map(settings)
    # KIS's overseas codes only: KR's are mapped by kr_* tables (see the report)
    overseas = tuple(r for r in REGIONS if EXCHANGES_OF[r])
    with report_reading(f"{PROGRAM} unmapped", settings.database) as conn:
        rows = unmapped_rows(conn, sector_map, overseas)
    for r in rows:
        typer.echo(f"{r['exchange']} {r['icod'] or '(none)'} {r['name'] or '?'}: {r['stocks']}")
    typer.echo(f"{len(rows)} unmapped codes, {sum(r['stocks'] for r in rows)} stocks")
    if as_json:
        typer.echo(json.dumps({"mapping_version": sector_map.version, "unmapped": rows}))


@app.command()
def codes(
    regions: Annotated[str, typer.Option("--regions", help="US,CN,HK,JP,VN,KR or ALL")] = "ALL",
    config: ConfigOption = None,
) -> None:
    """Fetch KIS's industry catalogs (HHDFS76370100, one call per exchange) and publish them."""
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
