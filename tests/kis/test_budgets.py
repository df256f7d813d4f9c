"""KIS's REST budgets per kind of key (18/s real, 1/s paper, 3/s for a key's first 3 days).

Against the simulator's gateway, which refuses (EGW00201) past its own budget for the key:
the client paced at the budget its settings give is never refused, and one that believes
the budgets before KIS's 2026 notices (20/s, 2/s, no new-key limit) is.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from harness.sim.server import Simulator
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient
from observer.kis.credentials import Credentials, Secret
from observer.kis.session import rate_limits
from observer.kis.settings import (
    NEW_KEY_DAYS,
    NEW_KEY_PER_SECOND,
    REST_PER_SECOND,
    AccountSettings,
    KisSettings,
)
from tests.etf.test_etf_sources import ETFS, KEY, SECRET
from tests.krx.test_krx import portal

_KST = timezone(timedelta(hours=9))


def test_each_kind_of_key_has_its_budget_and_a_new_key_three_calls_for_three_days() -> None:
    assert REST_PER_SECOND == {"real": 18.0, "paper": 1.0}
    real, paper = KisSettings(environment="real"), KisSettings(environment="paper")
    sim_paper = KisSettings(environment="sim", sim_accounts="paper")
    assert [k.budget(k.accounts[0]) for k in (real, paper, sim_paper)] == [18.0, 1.0, 1.0]
    first = date(2026, 11, 26)
    issued = AccountSettings(alias="new", key_issued=first)
    kis = KisSettings(environment="real", accounts=(issued,))
    account = kis.accounts[0]
    days = [first + timedelta(days=n) for n in range(-1, NEW_KEY_DAYS + 1)]
    assert [kis.budget(account, d) for d in days] == [18.0, 3.0, 3.0, 3.0, 18.0]
    assert NEW_KEY_PER_SECOND == 3.0
    slower = KisSettings(
        accounts=(AccountSettings(alias="a", rest_per_second=2, key_issued=first),)
    )
    assert slower.budget(slower.accounts[0], first) == 2.0  # a budget below KIS's is kept
    assert kis.usable_per_second(account, first) == pytest.approx(3.0 * 0.95)


async def _calls(sim: Simulator, url: str, kis: KisSettings, tmp: Path, calls: int) -> int:
    """``calls`` current prices at the whole of the account's usable budget; EGW00201 heard.

    A call refused past its retries fails alone (the others go on).
    """
    http = httpx.AsyncClient(base_url=url)
    creds = Credentials("acct1", Secret(KEY), Secret(SECRET))
    tokens = TokenManager(http, creds, sim.clock, tmp, "sim", min_issue_interval_s=0)
    pace = rate_limits(kis, "track_a", share=1.0).for_account("acct1")
    client = KisClient(http, creds, tokens, sim.clock, pace)
    # 16 in flight: the pace, not the answers' latency, sets the rate (at 4, on a loaded
    # machine, a client allowed 20 a second never reached the simulator's 18).
    queue = asyncio.Semaphore(16)
    codes = sorted(ETFS)

    async def one(n: int) -> None:
        async with queue:
            await client.current_price(codes[n % len(codes)])

    await tokens.token()  # issued first: the budget is the calls'
    await asyncio.gather(*(one(n) for n in range(calls)), return_exceptions=True)
    await http.aclose()
    return client.rate_limited


def _run(tmp: Path, calls: int, kis: KisSettings, **config: object) -> tuple[int, int, int]:
    """(EGW00201 the client heard, the gateway's refusals, its busiest second's calls)."""

    async def scenario() -> tuple[int, int, int]:
        async with portal(**config) as (sim, url):
            heard = await _calls(sim, url, kis, tmp, calls)
            gateway = sim.gateway
            return heard, gateway.rate_limited, max(gateway.peak_per_second.values())

    return asyncio.run(scenario())


def _kis(environment: str = "real", **account: object) -> KisSettings:
    return KisSettings(
        environment="sim",
        sim_accounts="paper" if environment == "paper" else "real",
        accounts=(AccountSettings(alias="acct1", **account),),  # type: ignore[arg-type]
    )


@pytest.mark.timed  # the client at 20 a second must reach it: at the lower priority it did not
def test_a_real_key_paced_at_its_budget_is_never_refused_and_one_at_twenty_is(
    tmp_path: Path,
) -> None:
    heard, refused, peak = _run(tmp_path / "a", 30, _kis())
    assert (heard, refused) == (0, 0) and peak <= 18
    # The belief before the notices: 20 a second, all of it used.
    old = KisSettings(
        environment="sim",
        rest_headroom=0.0,
        accounts=(AccountSettings(alias="acct1", rest_per_second=20),),
    )
    heard, refused, peak = _run(tmp_path / "b", 50, old)
    assert refused > 0 and heard == refused and peak > 18


def test_a_paper_key_gets_one_call_a_second(tmp_path: Path) -> None:
    heard, refused, peak = _run(tmp_path / "a", 3, _kis("paper"), paper=True)
    assert (heard, refused, peak) == (0, 0, 1)
    old = KisSettings(
        environment="sim",
        sim_accounts="paper",
        rest_headroom=0.0,
        accounts=(AccountSettings(alias="acct1", rest_per_second=3),),
    )
    heard, refused, _ = _run(tmp_path / "b", 6, old, paper=True)
    assert refused > 0 and heard == refused


def test_a_new_key_told_its_first_day_keeps_to_three_and_one_not_told_is_refused(
    tmp_path: Path,
) -> None:
    today = datetime.now(_KST).date()
    new = frozenset({KEY})
    heard, refused, peak = _run(tmp_path / "a", 8, _kis(key_issued=today), new_keys=new)
    assert (heard, refused) == (0, 0) and peak <= 3
    heard, refused, _ = _run(tmp_path / "b", 20, _kis(), new_keys=new)
    assert refused > 0 and heard == refused
