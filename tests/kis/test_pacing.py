"""An account's pace: halved when KIS refuses a call as over the budget, raised back by steps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from hypothesis import given
from hypothesis import strategies as st

from observer.calendar.clock import SystemClock
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.pacing import FLOOR, PACING_S, RECOVER_S, STEP, Pace
from tests.etf.test_etf_sources import ETFS, KEY, SECRET
from tests.krx.test_krx import portal

# One step of a run: a refusal of a call sent so many slowdowns ago (0: at the current
# pace), an answer, or time passing (seconds).
_STEPS = st.lists(
    st.one_of(st.integers(0, 2), st.just("answered"), st.floats(0.0, 2.0)), max_size=300
)


@given(_STEPS)
def test_the_pace_halves_on_a_fresh_refusal_and_climbs_back_by_steps(
    steps: list[int | str | float],
) -> None:
    now = 0.0
    pace = Pace(20.0, monotonic=lambda: now)
    changed_at = 0.0  # the last refusal, slowdown or raise
    for step in steps:
        before = pace.factor
        if isinstance(step, float):
            now += step
            assert pace.factor == before
        elif step == "answered":
            pace.answered()
            if before < 1.0 and now - changed_at >= RECOVER_S:
                changed_at = now
                assert pace.factor == min(1.0, round(before + STEP, 6))
            else:
                assert pace.factor == before
        else:
            pace.refused(pace.generation - step)
            changed_at = now
            fresh = step == 0 and before > FLOOR
            assert pace.factor == (max(FLOOR, before / 2) if fresh else before)
        assert FLOOR <= pace.factor <= 1.0
        assert pace.current == 20.0 * pace.factor


def test_a_changing_pace_never_sends_above_the_share() -> None:
    """Slowdowns and raises while calls wait: no second holds more than the share's calls."""

    async def scenario() -> list[float]:
        pace = Pace(200.0)
        sent: list[float] = []

        async def call(n: int) -> None:
            generation = pace.generation
            async with pace:
                sent.append(time.monotonic())
            if n % 25 == 0:
                pace.refused(generation)
            else:
                pace.answered()

        await asyncio.gather(*(call(n) for n in range(250)))
        return sent

    sent = sorted(asyncio.run(scenario()))
    burst = max(1, int(200 * PACING_S))
    for i, start in enumerate(sent):
        within = sum(1 for t in sent[i:] if t < start + 1.0)
        assert within <= 200 + burst, f"{within} calls in the second from call {i}"


def test_a_budget_above_the_gateways_slows_down_instead_of_failing_calls(
    tmp_path: Path,
) -> None:
    """Paced at four times what the gateway allows: no call fails, fewer are refused.

    Retries pause in real time, as in production (the simulator's clock runs 60 times
    faster). Paced on at the configured rate, two of these 150 calls failed after five tries
    and 57 of 205 requests were refused (EGW00201).
    """

    async def scenario() -> tuple[int, int, int, Pace]:
        async with portal(calls_per_second=50) as (sim, url):
            http = httpx.AsyncClient(base_url=url)
            creds = Credentials("sim1", Secret(KEY), Secret(SECRET))
            tokens = TokenManager(http, creds, sim.clock, tmp_path / "tokens", "sim")
            pace = RateLimits({"sim1": 200}).for_account("sim1")
            client = KisClient(http, creds, tokens, SystemClock(), pace)
            queue = asyncio.Semaphore(10)

            async def one(code: str) -> None:
                async with queue:
                    await client.current_price(code)

            codes = [ETFS[n % len(ETFS)] for n in range(150)]
            results = await asyncio.gather(*(one(c) for c in codes), return_exceptions=True)
            await http.aclose()
            failed = sum(isinstance(r, BaseException) for r in results)
            return failed, client.requests, client.rate_limited, pace

    failed, requests, refused, pace = asyncio.run(scenario())
    print(f"{requests} requests, {refused} refused, {failed} failed; {pace!r}")
    assert failed == 0
    # A test process starved of CPU may never call faster than the gateway: nothing is then
    # refused, and nothing asks the pace to slow down.
    assert pace.slowdowns >= 1 or refused == 0
    assert refused <= 0.2 * requests
