"""``observer bench enrich``: a forced enrichment run against its rate-limit bound.

A first, forced `workers.enrich.run` over the simulator's overseas masters (the simulator at real
speed, in its own process) is timed against the bound its two limiters set for the calls it made:
``max(fallback calls / fallback rate, KIS calls / (accounts x rate x the jobs' share))``. The
limits, not this machine, are what the run should wait for (target <= 1.05).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from harness.bench.simulator import simulator_kis, simulator_process
from observer.calendar.clock import Clock
from observer.config.tree import Settings
from observer.config.workers import EnrichSettings
from observer.db.sector_queries import Stored
from observer.kis.master import extract_single
from observer.kis.session import master_http, open_account, rate_limits
from observer.process.logs import setup_logging
from observer.reference.instruments import MASTER_FILES
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import GuardedSource, QuoteSummarySource
from workers.enrich import checkpoint as cp
from workers.enrich.classify import EXCHANGES_OF, Tally
from workers.enrich.run import EnrichRun, check_lists, guard_settings, kis_tier, run_regions
from workers.master_file.reading import read_listings

__all__ = ["app", "bench_enrich"]

app = typer.Typer(help="A forced enrichment run against its rate-limit bound.")
CLOCK = "2026-11-22T03:30:00+09:00@1x"  # Sunday 03:30 KST: the weekly forced run
REGIONS = tuple(r for r, exchanges in EXCHANGES_OF.items() if exchanges)  # KR asks nothing


async def _stocks(settings: Settings, per_region: int) -> dict[str, list[Stored]]:
    """The overseas stocks of the simulator's masters, as `stocks_with_sectors` reads them."""
    found: dict[str, list[Stored]] = {r: [] for r in REGIONS}
    async with master_http(settings.kis) as http:
        for file in MASTER_FILES:
            if file.region not in found or file.indices:
                continue
            response = await http.get(file.name)
            response.raise_for_status()
            for x in read_listings(file, extract_single(response.content, file.member)):
                if x.security_type == "stock":  # ETPs have no sector
                    found[x.region].append(
                        Stored(x.market, x.symbol, x.market, x.region, x.sector_code, "", "", 0)
                    )
    for rows in found.values():
        rows.sort(key=lambda s: (s.market, s.symbol))  # the database's order
    return {r: rows if per_region <= 0 else rows[:per_region] for r, rows in found.items()}


def _job(
    settings: Settings, clock: Clock, folder: Path, regions: list[str], published: list[object]
) -> EnrichRun:
    return EnrichRun(
        settings=settings,
        clock=clock,
        sector_map=load_sector_map(None),
        send=published.append,
        flush=lambda: None,
        beat=lambda: None,
        source=None,
        names={},
        force=True,
        checkpoint_path=folder / "checkpoint.json",
        checkpoint=cp.Checkpoint(mode="force", started_ns=clock.now_ns(), regions=tuple(regions)),
    )


def _region(t: Tally) -> dict[str, Any]:
    classified = t.manual + t.kis_mapped + t.kis_detail + t.kis_info + t.fallback_ok
    return {
        "stocks": t.total,
        "kis_mapped": t.kis_mapped + t.manual,
        "kis_detail": t.kis_detail + t.kis_info,
        "fallback": t.fallback_ok,
        "unresolved": t.unresolved,
        "failed": t.fallback_failed,
        "deferred": t.deferred,
        "coverage_pct": round(100 * classified / t.total, 1) if t.total else 0.0,
    }


async def _run(settings: Settings, clock: Clock, per_region: int, folder: Path) -> dict[str, Any]:
    stocks = await _stocks(settings, per_region)
    limits = rate_limits(settings.kis, "jobs")
    for a in settings.kis.accounts:  # tokens are a once-a-day cost, not the run's
        account = open_account(settings.kis, a.alias, clock, limits)
        await account.tokens.token()
        await account.aclose()
    published: list[object] = []  # what the writer would get: one event per stock
    job = _job(settings, clock, folder, list(stocks), published)
    # Its own limiter, keyed by this simulator's URL: limiters are per host and process, and
    # the first one made for a host sets its rate.
    async with httpx.AsyncClient(
        base_url=settings.enrich.fallback_url, timeout=settings.enrich.fallback_timeout_s
    ) as http:
        source = job.source = GuardedSource(
            QuoteSummarySource(http), clock, settings.enrich.fallback_url, guard_settings(settings)
        )
        accounts = kis_tier(job)
        assert accounts and job.kis is not None
        try:
            started = time.perf_counter()
            await check_lists(job, stocks)
            tallies = await run_regions(job, stocks)
            elapsed = time.perf_counter() - started
        finally:
            for account in accounts:
                await account.aclose()
    kis_limit = sum(settings.kis.usable_per_second(a) for a in settings.kis.accounts)
    kis_limit *= settings.kis.process_share["jobs"]
    kis_calls = job.kis.requests
    fallback_bound = source.calls / settings.enrich.fallback_rate_per_s
    kis_bound = kis_calls / kis_limit
    bound = max(fallback_bound, kis_bound)
    regions = {r: _region(t) for r, t in tallies.items()}
    return {
        "mode": job.mode,
        "stocks": sum(len(rows) for rows in stocks.values()),
        "per_region": per_region,
        "regions": regions,
        "published": len(published),
        "duration_s": round(elapsed, 2),
        "bound_s": round(bound, 2),
        "ratio": round(elapsed / bound, 3) if bound else 0.0,
        "bound_by": "fallback" if fallback_bound >= kis_bound else "kis",
        "fallback_calls": source.calls,
        "fallback_retries": source.retries,
        "fallback_bound_s": round(fallback_bound, 2),
        "fallback_limit_per_s": settings.enrich.fallback_rate_per_s,
        "breaker_opens": source.breaker.opened,
        "kis_calls": kis_calls,
        "kis_lookup_calls": job.kis.calls,
        "kis_cross_check_calls": kis_calls - job.kis.calls,
        "kis_lookups_failed": job.kis.failed,
        "kis_bound_s": round(kis_bound, 2),
        "kis_limit_per_s": round(kis_limit, 2),
        "kis_accounts_used": len(accounts),
        "cross_compared": sum(c.compared for c in job.cross.values()),
        "cross_disagreeing": sum(c.disagreeing for c in job.cross.values()),
        "failed": sum(r["failed"] for r in regions.values()),
        "deferred": sum(r["deferred"] for r in regions.values()),
    }


def bench_enrich(stocks: int, rate: int, accounts: int, fallback_rate: float) -> dict[str, Any]:
    """One forced run against a fresh simulator; the report as one object.

    ``stocks``: the first N of each region (0: all); ``rate``: each account's KIS calls/s
    (the gateway's limit too); ``fallback_rate``: the fallback source's calls/s, the
    simulator's limit and the client's alike (over a 5 s sliding window). The stocks (US,
    CN, HK, JP, VN) are fetched from the simulator and read by the master-file job's own code,
    with nothing stored yet; the run does the cross-check, then every region at once, the KIS
    tier's lookups going round every account (`workers.enrich.run.kis_tier`).
    """
    with (
        simulator_process(rate, CLOCK, fallback_per_second=fallback_rate) as (rest, clock),
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = Settings(
            kis=simulator_kis(rest, tmp, rate, accounts),
            enrich=EnrichSettings(fallback_url=rest, fallback_rate_per_s=fallback_rate),
        )
        report = asyncio.run(_run(settings, clock, stocks, Path(tmp)))
        stats = httpx.get(rest + "/_sim/stats", timeout=10).json()
    calls: Counter[str] = Counter(stats["calls"])
    fallback_seen: Counter[str] = Counter(stats.get("yahoo", {}))
    return report | {
        "egw00201": stats["rate_limited"],
        "http_429": fallback_seen["rate_limited"],
        "fallback_seen": sum(fallback_seen.values()),  # the calls the simulator answered
        "gateway_limit_per_s": rate,
        "gateway_calls": {tr: calls[tr] for tr in ("HHDFS76200200", "HHDFS76370000")},
        "accounts": accounts,
    }


@app.callback(invoke_without_command=True)
def enrich(
    stocks: Annotated[
        int, typer.Option(min=0, help="the first N stocks of each region (0: all)")
    ] = 1000,
    rate: Annotated[int, typer.Option(min=1, help="each account's REST calls/s at KIS")] = 400,
    accounts: Annotated[
        int, typer.Option(min=1, max=8, help="accounts (the KIS tier asks through each in turn)")
    ] = 1,
    fallback_rate: Annotated[
        float, typer.Option(min=0.2, help="the fallback source's calls/s (simulator and client)")
    ] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """One forced enrichment run of US, CN, HK, JP and VN at real speed, against its bound."""
    setup_logging("WARNING")
    r = bench_enrich(stocks, rate, accounts, fallback_rate)
    typer.echo(
        f"enrich bench (real time, forced run; limits: KIS {r['gateway_limit_per_s']}/s per "
        f"account x {r['accounts']}, the jobs' share on {r['kis_accounts_used']}: "
        f"{r['kis_limit_per_s']}/s; fallback {r['fallback_limit_per_s']:g}/s)"
    )
    for region, t in r["regions"].items():
        typer.echo(
            f"  {region}: {t['stocks']:>5} stocks  coverage {t['coverage_pct']:>5.1f} %  "
            f"KIS-mapped {t['kis_mapped']}, KIS detail {t['kis_detail']}, fallback "
            f"{t['fallback']}, unresolved {t['unresolved']}, failed {t['failed']}, "
            f"deferred {t['deferred']}"
        )
    typer.echo(
        f"  calls: KIS {r['kis_calls']} ({r['kis_lookup_calls']} per-symbol lookups, "
        f"{r['kis_cross_check_calls']} cross-check) -> {r['kis_bound_s']:.2f} s; fallback "
        f"{r['fallback_calls']} ({r['fallback_retries']} retries) -> {r['fallback_bound_s']:.2f} s"
    )
    typer.echo(
        f"  {r['stocks']:>5} stocks  {r['duration_s']:>8.2f} s  bound {r['bound_s']:>8.2f} s "
        f"({r['bound_by']})  ratio {r['ratio']:.3f} (target <= 1.05)  {r['failed']} failed, "
        f"{r['deferred']} deferred, {r['egw00201']} EGW00201, {r['http_429']} 429"
    )
    if as_json:
        typer.echo(json.dumps(r))
    bad = r["failed"] or r["deferred"] or r["egw00201"] or r["http_429"]
    raise typer.Exit(1 if bad else 0)
