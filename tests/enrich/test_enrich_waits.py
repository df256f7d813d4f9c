"""How long the fallback makes a run wait: ``Retry-After`` capped, and a stop cuts it short."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from observer.calendar.clock import SystemClock
from observer.config.tree import Settings
from observer.db.sector_queries import Stored
from observer.errors import BreakerOpen, FallbackRateLimited
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import GuardedSource, GuardSettings, Profile, QuoteSummarySource
from tests.sector_sources.test_fallback import VirtualClock
from workers.enrich import checkpoint as cp
from workers.enrich.run import EnrichRun, run_regions

HOSTS = itertools.count()
TECH = Profile(sector="Technology", sector_key="technology")


class LimitedOnce:
    """Answers 429 with ``Retry-After`` on the first ask, then a profile."""

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        self.asked = 0

    async def profile(self, symbol: str) -> Profile | None:
        self.asked += 1
        if self.asked == 1:
            raise FallbackRateLimited(f"{symbol}: 429", self.retry_after_s)
        return TECH


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 60.0), st.floats(0.001, 10**6), st.floats(1.0, 600.0))
def test_a_retry_after_is_waited_out_up_to_the_cap_and_opens_the_breaker_beyond(
    delay: float, retry_after: float, open_s: float
) -> None:
    async def scenario() -> None:
        clock = VirtualClock()
        guards = GuardSettings(rate_per_s=1e6, retry_delay_s=delay, breaker_open_s=open_s)
        source = LimitedOnce(retry_after)
        guarded = GuardedSource(source, clock, f"waits-{next(HOSTS)}.test", guards)
        cap = max(4 * delay, 60.0)
        assert guarded.max_wait_s == cap
        if retry_after <= cap:
            assert await guarded.profile("A") == TECH
            assert clock.sleeps[0] == retry_after  # then the retry's own pause
            assert sum(clock.sleeps) <= cap + 1.2 * delay
            return
        with pytest.raises(BreakerOpen):
            await guarded.profile("A")
        assert clock.sleeps == [] and source.asked == 1  # no sleeping through it
        assert guarded.breaker.opened == 1 and guarded.breaker.failures == 0
        with pytest.raises(BreakerOpen):  # the other stocks are deferred without a call
            await guarded.profile("B")
        assert source.asked == 1
        clock.now += int(max(retry_after, open_s) * 1e9) - 10**6
        assert guarded.breaker.state == "open"  # as long as the source asked
        clock.now += 2 * 10**6
        assert guarded.breaker.state == "half_open"

    asyncio.run(scenario())


def test_a_stop_cuts_a_retry_after_wait_short(tmp_path: Path) -> None:
    """SIGTERM (job.stop) during a 30 s ``Retry-After``: the run ends at once, the stocks
    deferred (not failed: the breaker is not told)."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "30"}, text="Too Many Requests")

    async def scenario() -> tuple[float, int, int, int]:
        clock = SystemClock()
        base = Settings()
        enrich = msgspec.structs.replace(
            base.enrich, fallback_url="http://y.test", kis_detail=False
        )
        async with httpx.AsyncClient(
            base_url="http://y.test", transport=httpx.MockTransport(answer)
        ) as http:
            guards = GuardSettings(rate_per_s=1e6, retry_delay_s=0.01)
            guarded = GuardedSource(QuoteSummarySource(http), clock, "stop.test", guards)
            job = EnrichRun(
                settings=msgspec.structs.replace(base, enrich=enrich),
                clock=clock,
                sector_map=load_sector_map(),
                send=lambda event: None,
                flush=lambda: None,
                beat=lambda: None,
                source=guarded,
                names={},
                force=True,
                checkpoint_path=tmp_path / "checkpoint.json",
                checkpoint=cp.Checkpoint(mode="force", started_ns=0, regions=("US",)),
            )
            stocks = [Stored("NAS", f"S{n}", "NAS", "US", "0330", "", "", 0) for n in range(5)]
            running = asyncio.create_task(run_regions(job, {"US": stocks}))
            deadline = time.monotonic() + 10
            while guarded.calls == 0:  # the first stock is waiting out its Retry-After
                assert time.monotonic() < deadline, "the fallback was never asked"
                await asyncio.sleep(0.01)
            job.stop.set()
            stopped = time.monotonic()
            tallies = await asyncio.wait_for(running, 10)
            us = tallies["US"]
            return time.monotonic() - stopped, us.deferred, us.fallback_failed, guarded.calls

    took, deferred, failed, calls = asyncio.run(scenario())
    assert took < 2.0  # not the 30 s the source asked for
    assert (deferred, failed, calls) == (5, 0, 1)
