"""One enrichment run: the regions in parallel, each in batches with checkpoints.

Per stock (`workers.enrich.classify`): an override, else the KIS code's mapping, else the
fallback source through its guards (`observer.fallback.GuardedSource`: one limiter per
host shared by every region, retries, breaker, cache). A failing run never loses a good
sector: a fallback error or "no profile" publishes nothing for a stock that has one; a
stock the breaker (or a stop) keeps from being asked is deferred to the next run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bus.events import Alert, Event, SectorCodes
from observer.clock import Clock
from observer.config import Settings
from observer.db.sector_queries import Stored
from observer.errors import BreakerOpen, FallbackError
from observer.fallback import (
    GuardedSource,
    GuardSettings,
    Profile,
    QuoteSummarySource,
    yahoo_symbol,
)
from observer.sector_map import Classification, SectorMap, normalise_icod
from workers.enrich import checkpoint as cp
from workers.enrich.classify import EXCHANGES_OF, Tally, due, sector_event

__all__ = ["Job", "alerts", "exchanges_of", "fetch_codes", "guarded_source", "run_regions"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What one run needs; ``send`` is None on a dry run (nothing published or asked)."""

    settings: Settings
    clock: Clock
    sector_map: SectorMap
    send: Callable[[Event], object] | None
    flush: Callable[[], None]
    beat: Callable[[], None]
    source: GuardedSource | None
    names: dict[tuple[str, str], str]
    force: bool
    checkpoint_path: Path
    checkpoint: cp.Checkpoint
    since_ns: int = 0  # a resumed run: what was stored since the killed one started is fresh
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    counters: dict[str, float] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """``"force"`` or ``"incremental"``."""
        return "force" if self.force else "incremental"


def guarded_source(settings: Settings, clock: Clock) -> tuple[GuardedSource, httpx.AsyncClient]:
    """The fallback source of ``[enrich]`` behind its guards, and its client to close."""
    e = settings.enrich
    http = httpx.AsyncClient(base_url=e.fallback_url, timeout=e.fallback_timeout_s)
    guards = GuardSettings(
        rate_per_s=e.fallback_rate_per_s, max_retries=e.max_retries,
        retry_delay_s=e.retry_delay_s, breaker_threshold=e.breaker_threshold,
        breaker_open_s=e.breaker_open_s, cache_size=e.cache_size, cache_ttl_s=e.cache_ttl_s,
    )  # fmt: skip
    host = httpx.URL(e.fallback_url).host or e.fallback_url
    return GuardedSource(QuoteSummarySource(http), clock, host, guards), http


async def fetch_codes(settings: Settings, clock: Clock, exchanges: list[str]) -> list[SectorCodes]:
    """HHDFS76370100 once per exchange, through the first account (the jobs' share)."""
    from observer.kis.session import open_account, rate_limits

    account = open_account(
        settings, settings.kis.accounts[0].alias, clock, rate_limits(settings, "jobs")
    )
    try:
        found = []
        for exchange in exchanges:
            rows = await account.client.overseas_industry_codes(exchange)
            codes = {}
            for row in rows:
                try:
                    codes[normalise_icod(row.icod)] = row.name.strip()
                except ValueError:
                    log.warning("%s: industry code %r skipped", exchange, row.icod)
            found.append(SectorCodes(exchange=exchange, codes=codes))
        return found
    finally:
        await account.aclose()


async def run_regions(job: Job, stocks: dict[str, list[Stored]]) -> dict[str, Tally]:
    """Every region at once (at most ``max_workers``), under the shared fallback limits."""
    gate = asyncio.Semaphore(job.settings.enrich.max_workers)
    tallies = {region: Tally(total=len(rows)) for region, rows in stocks.items()}

    async def one(region: str) -> None:
        async with gate:
            await _region(job, region, stocks[region], tallies[region])

    async with asyncio.TaskGroup() as group:
        for region in stocks:
            group.create_task(one(region))
    return tallies


async def _region(job: Job, region: str, stocks: list[Stored], tally: Tally) -> None:
    size = job.settings.enrich.batch_size
    key = region.lower()
    job.counters[f"{key}_total"] = len(stocks)
    for start in range(0, len(stocks), size):
        for stored in stocks[start : start + size]:
            await _one(job, stored, tally)
            job.beat()  # rate-limited by the notifier; a fallback call may take a while
        done = min(start + size, len(stocks))
        job.checkpoint.done[region] = done
        _count(job, key, tally, done)
        if job.send is not None:
            job.flush()
            cp.save(job.checkpoint_path, job.checkpoint)
        job.beat()


def _count(job: Job, key: str, tally: Tally, done: int) -> None:
    c = job.counters
    c[f"{key}_done"] = done
    c[f"{key}_kis"] = tally.kis_mapped + tally.manual
    c[f"{key}_fallback"] = tally.fallback_ok
    c[f"{key}_failed"] = tally.fallback_failed
    c[f"{key}_deferred"] = tally.deferred
    c[f"{key}_unresolved"] = tally.unresolved
    if job.source is not None:
        c["retries"] = job.source.retries
        c["breaker_opens"] = job.source.breaker.opened
        c["calls"] = job.source.calls


async def _one(job: Job, stored: Stored, tally: Tally) -> None:
    """Classify one stock and publish what changed (see the module docstring)."""
    e = job.settings.enrich
    if not due(stored, job.clock.now_ns(), e.max_age_days, job.force, job.since_ns):
        tally.fresh_skipped += 1
        return
    if job.stop.is_set():
        tally.deferred += 1
        return
    m = job.sector_map
    found = m.override(stored.market, stored.symbol)
    if found is not None:
        tally.manual += 1
    else:
        found = m.for_code(stored.exchange, stored.sector_code)
        if found is not None:
            tally.kis_mapped += 1
    if found is not None:
        _publish(job, stored, found, tally)
        return
    symbol = yahoo_symbol(stored.exchange, stored.symbol)
    if symbol is None or not e.fallback_url:
        tally.unresolved += 1  # no suffix (HNX), or no fallback configured
        _publish(job, stored, None, tally)
        return
    if job.source is None:  # a dry run: nothing is asked
        tally.fallback_needed += 1
        return
    try:
        profile = await job.source.profile(symbol)
    except BreakerOpen:
        tally.deferred += 1
        return
    except FallbackError as exc:
        tally.fallback_failed += 1
        log.warning("%s:%s fallback failed: %s", stored.market, stored.symbol, exc)
        return
    found = m.for_fallback(profile.sector_key, profile.industry_key) if profile else None
    if found is None:
        tally.unresolved += 1
    else:
        tally.fallback_ok += 1
    _publish(job, stored, found, tally, profile)


def _publish(
    job: Job,
    stored: Stored,
    found: Classification | None,
    tally: Tally,
    profile: Profile | None = None,
) -> None:
    if found is None and stored.gics_sector_code:
        return  # nothing better than what is stored: keep it (never lose a good sector)
    if found is not None and stored.gics_sector_code not in ("", found.gics_sector):
        tally.changed += 1
    if job.send is None:
        return
    name = job.names.get((stored.exchange, _icod(stored.sector_code)), "")
    job.send(sector_event(stored, found, job.sector_map, name, profile))


def _icod(code: str) -> str:
    try:
        return normalise_icod(code)
    except ValueError:
        return code


def alerts(job: Job, tallies: dict[str, Tally]) -> list[Alert]:
    """What the operator must hear of a run: failures, deferrals, an open breaker."""
    found = []
    failed = {r: t.fallback_failed for r, t in tallies.items() if t.fallback_failed}
    deferred = {r: t.deferred for r, t in tallies.items() if t.deferred}
    if job.source is not None and job.source.breaker.opened:
        found.append(Alert(
            severity="warning", code="enrich_breaker_open", subject="enrich",
            message=f"the fallback sector source failed {job.settings.enrich.breaker_threshold}"
            f" times in a row; its breaker opened {job.source.breaker.opened} time(s)",
        ))  # fmt: skip
    if failed:
        found.append(Alert(
            severity="warning", code="enrich_fallback_failed", subject="enrich",
            message=f"fallback failed after retries for {sum(failed.values())} stocks "
            "(they keep their stored sector; the next run asks again)",
            context={r: str(n) for r, n in failed.items()},
        ))  # fmt: skip
    if deferred:
        found.append(Alert(
            severity="warning", code="enrich_deferred", subject="enrich",
            message=f"{sum(deferred.values())} stocks deferred to the next run",
            context={r: str(n) for r, n in deferred.items()},
        ))  # fmt: skip
    return found


def exchanges_of(regions: list[str]) -> list[str]:
    """HHDFS76370100's exchanges of ``regions``, in table order."""
    return [x for region in regions for x in EXCHANGES_OF[region]]
