"""The fallback sector source against the simulator: answers, 429/5xx/timeouts, the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.sectors import true_sector
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock
from observer.errors import BreakerOpen, FallbackRateLimited, FallbackTransportError
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import (
    CircuitBreaker,
    GuardedSource,
    GuardSettings,
    QuoteSummarySource,
    limiter_for,
    yahoo_symbol,
)
from tests.harness.test_sim_server import MARKET, simulator

FAST = GuardSettings(rate_per_s=1000.0, max_retries=3, retry_delay_s=0.01)
STOCKS = {
    stem: [x for x in MARKET.overseas[stem] if x.security_type == "2"][:12]
    for stem in ("nas", "nys", "shs", "szs", "hks", "tse", "hsx", "hnx")
}


@asynccontextmanager
async def source(
    settings: GuardSettings = FAST, timeout_s: float = 5.0, **config: Any
) -> AsyncIterator[tuple[Simulator, GuardedSource]]:
    config.setdefault("yahoo_limit", 10_000)
    async with simulator(**config) as (sim, url):
        http = httpx.AsyncClient(base_url=url, timeout=timeout_s)
        try:
            guarded = GuardedSource(QuoteSummarySource(http), sim.clock, url, settings)
            yield sim, guarded
        finally:
            await http.aclose()


def test_profiles_name_the_true_sector_and_unknowns_answer_none() -> None:
    sector_map = load_sector_map()

    async def scenario() -> tuple[int, int, int]:
        right = asked = missing = 0
        async with source() as (_, guarded):
            for rows in STOCKS.values():
                for x in rows:
                    symbol = yahoo_symbol(x.exchange, x.symbol)
                    if symbol is None:
                        assert x.exchange == "HNX"  # no Yahoo suffix: never asked
                        continue
                    asked += 1
                    found = await guarded.profile(symbol)
                    if found is None:
                        missing += 1
                        continue
                    mapped = sector_map.for_fallback(found.sector_key, found.industry_key)
                    assert mapped is not None
                    right += mapped.gics_sector == true_sector(
                        x.exchange, x.symbol, x.industry_code
                    )
            assert await guarded.profile("NOSUCH.XX") is None  # an unknown suffix: 404
            etp = next(x for x in MARKET.overseas["nas"] if x.security_type == "3")
            assert await guarded.profile(etp.symbol) is None  # funds have no sector
        return right, asked, missing

    right, asked, missing = asyncio.run(scenario())
    assert asked == 7 * 12 and right + missing == asked
    assert missing <= asked * 0.15  # about 5 % have no profile


def test_429_and_5xx_are_retried_and_retry_after_is_waited_out() -> None:
    async def scenario() -> None:
        async with source(yahoo_retry_after_s=30) as (sim, guarded):
            symbol = STOCKS["nas"][0].symbol
            sim.faults.yahoo_429 = 2
            sim.faults.yahoo_5xx = 1
            before = sim.clock.now_ns()
            assert await guarded.profile(symbol) is not None
            assert guarded.retries == 3 and guarded.calls == 4
            assert sim.clock.now_ns() - before >= 60e9  # two Retry-After: 30 waits
            assert sim.yahoo.counts["rate_limited"] == 2
            assert sim.yahoo.counts["server_error"] == 1
            calls = guarded.calls
            assert await guarded.profile(symbol) is not None  # from the cache
            assert guarded.calls == calls

    asyncio.run(scenario())


def test_a_timeout_fails_after_its_retries() -> None:
    async def scenario() -> None:
        settings = GuardSettings(rate_per_s=1000.0, max_retries=1, retry_delay_s=0.01)
        async with source(settings, timeout_s=0.05) as (sim, guarded):
            sim.faults.yahoo_latency_s = 0.5
            with pytest.raises(FallbackTransportError):
                await guarded.profile(STOCKS["nas"][1].symbol)
            assert guarded.calls == 2 and guarded.breaker.failures == 1

    asyncio.run(scenario())


def test_the_sliding_window_answers_429_past_its_burst() -> None:
    async def scenario() -> int:
        settings = GuardSettings(rate_per_s=1000.0, max_retries=0, retry_delay_s=0.01)
        async with source(settings, yahoo_limit=5, yahoo_window_s=60.0) as (sim, guarded):
            limited = 0
            for x in STOCKS["nys"][:8]:
                try:
                    await guarded.profile(x.symbol)
                except FallbackRateLimited:
                    limited += 1
            assert sim.yahoo.counts["rate_limited"] == limited
            return limited

    assert asyncio.run(scenario()) == 3


def test_the_breaker_opens_stops_calling_then_a_probe_closes_it() -> None:
    async def scenario() -> None:
        settings = GuardSettings(
            rate_per_s=1000.0,
            max_retries=0,
            retry_delay_s=0.01,
            breaker_threshold=3,
            breaker_open_s=30.0,
        )
        async with source(settings) as (sim, guarded):
            sim.faults.yahoo_5xx = 1000
            symbols = [x.symbol for x in STOCKS["nas"]]
            failed = deferred = 0
            for symbol in symbols:
                try:
                    await guarded.profile(symbol)
                except BreakerOpen:
                    deferred += 1
                except Exception:
                    failed += 1
            assert (failed, deferred) == (3, len(symbols) - 3)
            assert sim.yahoo.counts["server_error"] == 3  # nothing asked while open
            sim.faults.yahoo_5xx = 0
            deadline = asyncio.get_running_loop().time() + 10
            while guarded.breaker.state != "half_open":  # 30 simulated s at 60x
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert await guarded.profile(symbols[-1]) is not None
            assert guarded.breaker.state == "closed" and guarded.breaker.opened == 1

    asyncio.run(scenario())


def test_one_limiter_per_host() -> None:
    assert limiter_for("http://a", 1.0) is limiter_for("http://a", 5.0)
    assert limiter_for("http://a", 1.0) is not limiter_for("http://b", 1.0)


@pytest.mark.parametrize(
    ("exchange", "symbol", "expected"),
    [("NAS", "AAPL", "AAPL"), ("NYS", "BRK.B", "BRK-B"), ("HKS", "00700", "0700.HK"),
     ("SHS", "600519", "600519.SS"), ("SZS", "000001", "000001.SZ"), ("TSE", "7203", "7203.T"),
     ("HSX", "VNM", "VNM.VN"), ("HNX", "SHB", None)],
)  # fmt: skip
def test_yahoo_suffixes(exchange: str, symbol: str, expected: str | None) -> None:
    assert yahoo_symbol(exchange, symbol) == expected


@given(st.lists(st.booleans(), max_size=40), st.integers(1, 6))
def test_the_breaker_is_open_exactly_after_threshold_failures_in_a_row(
    outcomes: list[bool], threshold: int
) -> None:
    clock = ManualClock(0)
    breaker = CircuitBreaker(clock, threshold, open_s=10.0)
    streak = 0
    for ok in outcomes:
        if not breaker.allow():
            assert streak >= threshold  # open only after enough failures in a row
            clock.advance(10.0)  # half-open: the next call is a probe
            assert breaker.allow() and not breaker.allow()  # exactly one probe
        if ok:
            breaker.success()
            streak = 0
        else:
            breaker.failure()
            streak += 1
        assert (breaker.state == "open") == (streak >= threshold)


class VirtualClock:
    """Sleeps return at once and move the time; every pause is remembered."""

    spec = "test"

    def __init__(self) -> None:
        self.now = 0
        self.sleeps: list[float] = []

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * 1e9)


class Always429:
    """Yahoo rate-limiting without a ``Retry-After``."""

    async def profile(self, symbol: str) -> None:
        raise FallbackRateLimited(f"{symbol}: 429 Too Many Requests")


def test_retries_wait_5_10_20_s_plus_a_bounded_jitter() -> None:
    """A 429 is never retried sooner than the curve (full jitter retried some after ~0 s)."""
    clock = VirtualClock()
    settings = GuardSettings(rate_per_s=1e6, retry_delay_s=5.0, breaker_threshold=10**6)
    guarded = GuardedSource(Always429(), clock, "always-429.test", settings)

    async def scenario() -> None:
        for n in range(20):
            with pytest.raises(FallbackRateLimited):
                await guarded.profile(f"S{n}")

    asyncio.run(scenario())
    assert len(clock.sleeps) == 20 * 3 and guarded.retries == 60
    for n in range(20):
        for pause, curve in zip(clock.sleeps[3 * n : 3 * n + 3], (5.0, 10.0, 20.0), strict=True):
            assert curve <= pause <= curve + 1.0  # a fifth of retry_delay_s at most
