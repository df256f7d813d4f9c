"""The ``enrich`` job's work once READY and the folder is held: a run, or a dry run.

`run_job` resumes a killed run of the same regions and mode (`workers.enrich.checkpoint`),
fetches KIS's industry catalogs, classifies every region (`workers.enrich.run`), sends
each region's `EnrichmentRun`, raises what the operator must hear and resolves what is
over (`workers.enrich.alerts`), and appends its summary to the day's report. `dry_run`
asks and publishes nothing: it counts what a run would ask, and bounds how long it takes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bus.events import Alert, AlertResolved
from bus.producer import Producer
from observer.calendar.clock import Clock
from observer.cli.support import open_alert_subjects
from observer.config.tree import Settings
from observer.db.readers import reader_engine
from observer.db.sector_queries import Stored, code_names, latest_runs, stocks_with_sectors
from observer.errors import KisError
from observer.kis.rate_alert import KIS_RATE_LIMITED, judged, rate_alerts, refusals
from observer.process.heartbeat import Heartbeat
from observer.reference.sector_map import SectorMap
from workers.enrich import SOURCE
from workers.enrich import checkpoint as cp
from workers.enrich.alerts import ALERT_CODES, alerts, cleared
from workers.enrich.classify import Tally
from workers.enrich.run import (
    EnrichRun,
    check_lists,
    exchanges_of,
    fallback_on,
    fetch_codes,
    guarded_source,
    kis_tier,
    requests_per_call,
    run_regions,
)
from workers.enrich.summary import DryRunSummary, RunSummary, write_summary

__all__ = ["dry_run", "run_job"]


def _read(
    settings: Settings, regions: list[str]
) -> tuple[dict[str, list[Stored]], dict[tuple[str, str], str], dict[str, dict[str, Any]]]:
    """The regions' stocks, KIS's code names, and every region's newest stored run."""
    engine = reader_engine(settings.database, "enrich")
    try:
        with engine.connect() as conn:
            stocks = {r: stocks_with_sectors(conn, r) for r in regions}
            runs = {row["region"]: row for row in latest_runs(conn)}
            return stocks, code_names(conn), runs
    finally:
        engine.dispose()


def _job(
    settings: Settings,
    clock: Clock,
    sector_map: SectorMap,
    force: bool,
    producer: Producer | None,
    names: dict[tuple[str, str], str],
    checkpoint: cp.Checkpoint,
    since_ns: int,
) -> EnrichRun:
    return EnrichRun(
        settings=settings,
        clock=clock,
        sector_map=sector_map,
        send=producer.send if producer else None,
        flush=producer.flush if producer else (lambda: None),
        beat=lambda: None,
        source=None,
        names=names,
        force=force,
        checkpoint_path=_checkpoint_path(settings),
        checkpoint=checkpoint,
        since_ns=since_ns,
    )


def _checkpoint_path(settings: Settings) -> Path:
    return Path(settings.paths.data_dir) / "enrich" / "checkpoint.json"


def dry_run(
    settings: Settings, clock: Clock, sector_map: SectorMap, regions: list[str], force: bool
) -> DryRunSummary:
    """What a run of ``regions`` would ask, and its time at most; nothing asked or sent."""
    stocks, names, _ = _read(settings, regions)
    mode = "force" if force else "incremental"
    checkpoint = cp.Checkpoint(mode=mode, started_ns=clock.now_ns(), regions=tuple(regions))
    job = _job(settings, clock, sector_map, force, None, names, checkpoint, 0)
    tallies = asyncio.run(run_regions(job, stocks))
    rate = settings.enrich.fallback_rate_per_s / requests_per_call(settings)  # calls a second
    needed = sum(t.fallback_needed for t in tallies.values())
    kis = sum(t.kis_needed for t in tallies.values())
    # KIS's lookups go round every account, each at the jobs' share of its budget; a stock
    # asks at least one TR (HHDFS76200200, or CTPF1702R alone)
    share = settings.kis.process_share.get("jobs", 0.0)
    kis_rate = share * sum(
        settings.kis.usable_per_second(a) for a in settings.kis.accounts
    )  # calls a second
    return DryRunSummary(
        mode=mode,
        mapping_version=sector_map.version,
        regions=tallies,
        kis_lookups=kis,
        kis_floor_s=round(kis / kis_rate, 1) if kis_rate else 0.0,
        fallback_calls=needed,
        fallback_max_s=round(needed / rate, 1),
    )


def run_job(
    settings: Settings,
    clock: Clock,
    sector_map: SectorMap,
    regions: list[str],
    force: bool,
    producer: Producer,
    notifier: Heartbeat,
) -> RunSummary:
    """One run of ``regions``: classified, published, alerted; its summary written."""
    path = _checkpoint_path(settings)
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
    raised: set[str] = set()
    codes_fetched = _catalogs(settings, clock, regions, producer, raised)
    stocks, names, earlier_runs = _read(settings, regions)
    since = checkpoint.started_ns if resumed else 0
    job = _job(settings, clock, sector_map, force, producer, names, checkpoint, since)
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
    _rate_limited(settings, producer, job.refusals)
    fetched = codes_fetched > 0 and "enrich_kis_codes_failed" not in raised
    _resolve(settings, producer, cleared(job, tallies, earlier_runs, raised, fetched))
    if not job.stop.is_set():
        cp.clear(path)  # a stopped run keeps it: the next one resumes
    notifier.beat_now(job.counters)
    summary = RunSummary(
        mode=mode,
        resumed=resumed,
        mapping_version=sector_map.version,
        regions=tallies,
        kis_codes=codes_fetched,
        fallback_calls=calls,
        retries=retries,
        breaker_opens=opens,
        kis_calls=kis_calls,
        duration_s=ms / 1000,
        stopped=job.stop.is_set(),
        cross_check=job.cross,
    )
    write_summary(settings, clock, summary)
    return summary


def _catalogs(
    settings: Settings, clock: Clock, regions: list[str], producer: Producer, raised: set[str]
) -> int:
    """KIS's industry catalogs of ``regions`` sent; how many codes (a failure: alerted, 0).

    HHDFS76370100 is taken as real-only (paper availability UNCONFIRMED): a paper
    deployment maps the codes without their names rather than warn on every run.
    """
    kis = settings.kis
    if not (settings.enrich.kis_codes and kis.accounts and kis.environment != "paper"):
        return 0
    fetched = 0
    try:
        catalogs = fetch_codes(settings, clock, exchanges_of(regions), producer.send)
        for event in asyncio.run(catalogs):
            producer.send(event)
            fetched += len(event.codes)
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
    return fetched


def _resolve(settings: Settings, producer: Producer, codes: list[str]) -> None:
    """An `AlertResolved` for each open alert of ``codes``, conditions the run found over.

    Only of an alert that is open (a resolution of nothing would go to every channel each
    run); a database that cannot say counts as open.
    """
    for code in codes:
        subjects = open_alert_subjects(settings, SOURCE, code)
        for subject in sorted(subjects if subjects is not None else {"enrich"}):
            producer.send(
                AlertResolved(
                    code=code, severity="warning", subject=subject, message=ALERT_CODES[code]
                )
            )


def _rate_limited(
    settings: Settings, producer: Producer, refused: dict[str, tuple[int, int]]
) -> None:
    """`KIS_RATE_LIMITED` of each account KIS refused the KIS tier's calls too often.

    An open one is resolved where the run's calls as its account were not.
    """
    present = {alias for _, alias in rate_alerts(settings.kis, producer.send, SOURCE, refused)}
    clear = judged(refused) - present
    opened = open_alert_subjects(settings, SOURCE, KIS_RATE_LIMITED)
    for alias in sorted(clear if opened is None else clear & opened):
        sent, refusals_ = refused[alias]
        producer.send(
            AlertResolved(
                code=KIS_RATE_LIMITED,
                severity="warning",
                subject=alias,
                message=f"KIS refused {refusals_} of the run's {sent} calls as {alias}",
            )
        )


@contextmanager
def _progress(job: EnrichRun, notifier: Heartbeat, total: int) -> Iterator[None]:
    """Heartbeats with the counters; a rich bar too on a terminal when unsupervised."""
    if notifier.supervised or not sys.stdout.isatty():
        job.beat = lambda: notifier.beat(lambda: job.counters)
        yield
        return
    from rich.progress import Progress  # a terminal's alone: not loaded under the supervisor

    with Progress(transient=True) as bar:
        task = bar.add_task("stocks", total=total)

        def beat() -> None:
            done = sum(v for k, v in job.counters.items() if k.endswith("_done"))
            bar.update(task, completed=done)

        job.beat = beat
        yield


async def _guarded(job: EnrichRun, stocks: dict[str, list[Stored]]) -> dict[str, Tally]:
    """The regions with the fallback source open; SIGTERM/SIGINT defer the rest."""
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
        job.refusals = refusals(accounts)
        for account in accounts:
            await account.aclose()
