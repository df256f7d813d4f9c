"""One enrichment run: the regions in parallel, each in batches with checkpoints.

Per stock (`workers.enrich.classify`): an override, else the KIS code's mapping, else KIS's
lookups (`workers.enrich.kis_tier`), else the fallback source behind its guards
(`observer.sector_sources.GuardedSource`, one limiter per host for every region). A failing run
never loses a good sector: a fallback error publishes nothing, "no answer" republishes the
stored one (`kept`), a stock kept from being asked is deferred, and whatever a fallback call
raises fails that stock alone. What the operator hears is `workers.enrich.alerts`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bus.events import Alert, Event, SectorCodes
from observer.calendar.clock import Clock
from observer.config.tree import Settings
from observer.db.sector_queries import Stored
from observer.errors import BreakerOpen, FallbackError, KisError, KisPaperRefused
from observer.reference.sector_map import Classification, SectorMap, normalise_icod
from observer.sector_sources import (
    GuardedSource,
    GuardSettings,
    Profile,
    QuoteSummarySource,
    yahoo_symbol,
)
from observer.sector_sources.yfinance_source import YFinanceSource
from workers.enrich import checkpoint as cp
from workers.enrich.classify import (
    DAY_NS,
    EXCHANGES_OF,
    KIS_NAME_LENGTH,
    ORIGIN_RANK,
    Tally,
    due,
    kept_event,
    sector_event,
)
from workers.enrich.kis_tier import CrossCheck, KisLookups, cross_check

if TYPE_CHECKING:
    from observer.kis.session import KisAccount

__all__ = [
    "EnrichRun",
    "check_lists",
    "exchanges_of",
    "fallback_on",
    "fetch_codes",
    "guard_settings",
    "guarded_source",
    "kis_lookups_on",
    "kis_tier",
    "requests_per_call",
    "run_regions",
]

log = logging.getLogger(__name__)

YAHOO_HOST = "query2.finance.yahoo.com"  # where yfinance asks quoteSummary


@dataclass
class EnrichRun:
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
    kis: KisLookups | None = None  # the per-symbol KIS tier (None: off, or a dry run)
    cross: dict[str, CrossCheck] = field(default_factory=dict)  # region -> cross-check
    problems: list[Alert] = field(default_factory=list)  # found on the way, sent at the end
    # account alias -> (calls sent, refused as over its rate limit) of the KIS tier
    refusals: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """``"force"`` or ``"incremental"``."""
        return "force" if self.force else "incremental"


def fallback_on(settings: Settings) -> bool:
    """Whether ``[enrich]`` configures a fallback source."""
    e = settings.enrich
    return e.fallback == "yfinance" or bool(e.fallback_url)


def guard_settings(settings: Settings) -> GuardSettings:
    """The fallback guards of ``[enrich]``: rate, retries, breaker and cache."""
    e = settings.enrich
    return GuardSettings(
        rate_per_s=e.fallback_rate_per_s,
        max_retries=e.max_retries,
        retry_delay_s=e.retry_delay_s,
        breaker_threshold=e.breaker_threshold,
        breaker_open_s=e.breaker_open_s,
        cache_size=e.cache_size,
        cache_ttl_s=e.cache_ttl_s,
    )


def requests_per_call(settings: Settings) -> int:
    """The HTTP requests one fallback call of ``[enrich]`` makes (what the limiter charges)."""
    return YFinanceSource.REQUESTS_PER_CALL if settings.enrich.fallback == "yfinance" else 1


def guarded_source(
    settings: Settings, clock: Clock
) -> tuple[GuardedSource, httpx.AsyncClient | None]:
    """The fallback source of ``[enrich]`` behind its guards, and its client to close.

    Raises `ConfigError` when yfinance is selected but not installed.
    """
    e, guards = settings.enrich, guard_settings(settings)
    if e.fallback == "yfinance":
        # one limiter for Yahoo, as for any host (Yahoo limits per IP); it charges a call
        # the REQUESTS_PER_CALL it makes, so Yahoo sees at most fallback_rate_per_s requests
        return GuardedSource(YFinanceSource.installed(), clock, YAHOO_HOST, guards), None
    http = httpx.AsyncClient(base_url=e.fallback_url, timeout=e.fallback_timeout_s)
    host = httpx.URL(e.fallback_url).host or e.fallback_url
    return GuardedSource(QuoteSummarySource(http), clock, host, guards), http


def kis_lookups_on(settings: Settings) -> bool:
    """Whether a run would ask KIS's per-symbol lookups (a real account, a TR wanted)."""
    e, kis = settings.enrich, settings.kis
    return (e.kis_detail or e.kis_search_info) and bool(kis.accounts) and kis.environment != "paper"


def kis_tier(job: EnrichRun) -> list[KisAccount]:
    """Open every account for the per-symbol KIS tier and the cross-check, if wanted.

    Each at the jobs' share of its budget: the lookups go round the accounts. The accounts
    are the caller's to close (none when the tier is not wanted).
    """
    # deferred: the KIS layer (httpx, aiohttp: about 0.2 s) loads after READY
    from observer.kis.session import open_account, rate_limits

    e, kis = job.settings.enrich, job.settings.kis
    wanted = e.kis_detail or e.kis_search_info or e.cross_check != "off"
    if not wanted or not kis.accounts or job.send is None:
        return []
    limits = rate_limits(job.settings.kis, "jobs")
    accounts = [
        open_account(job.settings.kis, a.alias, job.clock, limits, alerts=job.send)
        for a in kis.accounts
    ]
    clients = [a.client for a in accounts]
    job.kis = KisLookups(clients, job.sector_map, e.kis_detail, e.kis_search_info)
    return accounts


async def fetch_codes(
    settings: Settings,
    clock: Clock,
    exchanges: list[str],
    alerts: Callable[[Event], object] | None = None,
) -> list[SectorCodes]:
    """HHDFS76370100 once per exchange, through the first account (the jobs' share).

    ``alerts`` sends the alert of a token cache file that does not read.
    """
    # deferred: the KIS layer (httpx, aiohttp: about 0.2 s) loads after READY
    from observer.kis.session import open_account, rate_limits

    limits = rate_limits(settings.kis, "jobs")
    account = open_account(
        settings.kis, settings.kis.accounts[0].alias, clock, limits, alerts=alerts
    )
    try:
        found = []
        for exchange in exchanges:
            rows = await account.client.overseas_industry_codes(exchange)
            codes = {}
            for row in rows:
                try:
                    # cut to kis_sector_codes.name: the writer would refuse the whole list
                    codes[normalise_icod(row.icod)] = row.name.strip()[:KIS_NAME_LENGTH]
                except ValueError:
                    log.warning("%s: industry code %r skipped", exchange, row.icod)
            found.append(SectorCodes(exchange=exchange, codes=codes))
        return found
    finally:
        await account.aclose()


async def run_regions(job: EnrichRun, stocks: dict[str, list[Stored]]) -> dict[str, Tally]:
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


async def _region(job: EnrichRun, region: str, stocks: list[Stored], tally: Tally) -> None:
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


def _count(job: EnrichRun, key: str, tally: Tally, done: int) -> None:
    c = job.counters
    c[f"{key}_done"] = done
    c[f"{key}_kis"] = tally.kis_mapped + tally.manual
    c[f"{key}_kis_detail"] = tally.kis_detail + tally.kis_info
    c[f"{key}_fallback"] = tally.fallback_ok
    c[f"{key}_failed"] = tally.fallback_failed
    c[f"{key}_deferred"] = tally.deferred
    c[f"{key}_unresolved"] = tally.unresolved
    if job.source is not None:
        c["retries"] = job.source.retries
        c["breaker_opens"] = job.source.breaker.opened
        c["calls"] = job.source.calls
    if job.kis is not None:
        c["kis_calls"] = job.kis.requests


async def _one(job: EnrichRun, stored: Stored, tally: Tally) -> None:
    """Classify one stock and publish what changed (see the module docstring)."""
    e = job.settings.enrich
    now = job.clock.now_ns()
    if not due(stored, now, e.max_age_days, job.force, job.since_ns, job.sector_map):
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
        found = (
            m.for_kr(stored.kospi200_sector, stored.industry_code, stored.sector_code)
            if stored.region == "KR"
            else m.for_code(stored.exchange, stored.sector_code)
        )
        if found is not None:
            tally.kis_mapped += 1
    if found is not None:
        _publish(job, stored, found, tally, kis_name=found.note if stored.region == "KR" else "")
        return
    if stored.region == "KR":  # the masters' codes are all KR has: no KIS call, no fallback
        _no_answer(job, stored, tally)
        return
    if job.kis is not None:
        lookup = await job.kis.lookup(stored)
        if lookup.found is not None:
            if lookup.found.source == "kis_info":
                tally.kis_info += 1
            else:
                tally.kis_detail += 1
            _publish(job, stored, lookup.found, tally, kis_name=lookup.name)
            return
        if lookup.failed and ORIGIN_RANK.get(stored.origin, 0) > ORIGIN_RANK["fallback"]:
            # KIS could not be asked (not "no answer"): its stored answer stands, unchecked,
            # rather than the fallback's worse one; nothing is written, so it is due again.
            tally.deferred += 1
            return
    elif job.send is None and kis_lookups_on(job.settings):
        tally.kis_needed += 1  # a dry run: KIS would be asked first
    symbol = yahoo_symbol(stored.exchange, stored.symbol)
    if symbol is None or not fallback_on(job.settings):
        _no_answer(job, stored, tally)  # no suffix (HNX), or no fallback configured
        return
    if job.source is None:  # a dry run: nothing is asked
        tally.fallback_needed += 1
        return
    try:
        profile = await _asked(job, job.source, symbol)
    except BreakerOpen:
        tally.deferred += 1
        return
    except FallbackError as exc:
        tally.fallback_failed += 1
        log.warning("%s:%s fallback failed: %s", stored.market, stored.symbol, exc)
        return
    except Exception as exc:  # a source's bug must not abort every region: this stock failed
        tally.fallback_failed += 1
        log.warning(
            "%s:%s fallback failed: unexpected %s",
            stored.market,
            stored.symbol,
            type(exc).__name__,  # not its text: it may carry a URL
        )
        return
    found = m.for_fallback(profile.sector_key, profile.industry_key) if profile else None
    if found is None:
        _no_answer(job, stored, tally, profile)
        return
    tally.fallback_ok += 1
    _publish(job, stored, found, tally, profile)


async def _asked(job: EnrichRun, source: GuardedSource, symbol: str) -> Profile | None:
    """``source.profile(symbol)``, given up when the job is stopped first.

    A stop (SIGTERM) must not wait out a retry's pause, a ``Retry-After`` or the limiter:
    the call is cancelled (nothing is lost: it is not cached, the breaker not told) and
    `BreakerOpen` raised, so the stock is deferred to the next run like the breaker's.
    """
    asking = asyncio.ensure_future(source.profile(symbol))
    stopping = asyncio.ensure_future(job.stop.wait())
    try:
        await asyncio.wait((asking, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not asking.done():
            asking.cancel()
            await asyncio.wait((asking,))  # let it unwind (an HTTP request under way)
    if asking.cancelled():
        raise BreakerOpen(f"{symbol}: the run was stopped")
    return asking.result()


def _no_answer(
    job: EnrichRun, stored: Stored, tally: Tally, profile: Profile | None = None
) -> None:
    """Nothing classifies ``stored``: unresolved, or its stored sector kept and re-checked."""
    if not stored.gics_sector_code:
        tally.unresolved += 1
        _publish(job, stored, None, tally, profile)
        return
    # Never lose a good sector; publishing it again records the check, so the stock is not
    # due until its next window (else it would be asked again on every run).
    tally.kept += 1
    if job.send is not None:
        job.send(kept_event(stored, job.sector_map))


def _publish(
    job: EnrichRun,
    stored: Stored,
    found: Classification | None,
    tally: Tally,
    profile: Profile | None = None,
    kis_name: str = "",
) -> None:
    if found is not None and stored.gics_sector_code not in ("", found.gics_sector):
        tally.changed += 1
    if job.send is None:
        return
    name = kis_name or job.names.get((stored.exchange, _icod(stored.sector_code)), "")
    job.send(sector_event(stored, found, job.sector_map, name, profile))


def _icod(code: str) -> str:
    try:
        return normalise_icod(code)
    except ValueError:
        return code


async def check_lists(job: EnrichRun, stocks: dict[str, list[Stored]]) -> None:
    """The HHDFS76370000 cross-check of each region into ``job.cross`` (see kis_tier).

    A paper account cannot ask it (real-only); a KIS failure is an alert, not a failed run.
    """
    e = job.settings.enrich
    if job.kis is None or e.cross_check == "off":
        return
    day = job.clock.now_ns() // DAY_NS
    for region, rows in stocks.items():
        exchanges = EXCHANGES_OF.get(region, ())
        if not exchanges:
            continue
        try:
            job.cross[region] = await cross_check(
                job.kis.client, rows, exchanges, e.cross_check, e.cross_check_codes, day
            )
        except KisPaperRefused as exc:
            log.info("cross-check skipped: %s", exc)
            return
        except KisError as exc:
            job.problems.append(
                Alert(
                    severity="warning",
                    code="enrich_cross_check_failed",
                    subject="enrich",
                    message=f"the HHDFS76370000 cross-check of {region} failed: {exc}",
                )
            )
            return


def exchanges_of(regions: list[str]) -> list[str]:
    """HHDFS76370100's exchanges of ``regions``, in table order."""
    return [x for region in regions for x in EXCHANGES_OF[region]]
