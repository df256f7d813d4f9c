"""Where KIS's behaviour is unconfirmed, a switch: halts read from either field, the refusal
codes as the third-party tables give them, and headroom under each account's REST budget."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import aiohttp
import msgspec
import pytest

from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.kis.parse import KEY_REFUSALS, SESSION_REFUSALS, parse_control, price_snapshot
from observer.kis.session import rate_limits
from observer.kis.settings import AccountSettings, KisSettings
from tests.support import SimThread, sim_client

S = 1_000_000_000
MARKET = Market(48, TradingCalendar(), stocks=8, etfs=0)
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
TEN = datetime(2026, 11, 20, 10, 0, tzinfo=KST)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(MARKET, TEN, SimConfig(token_min_interval_s=0)) as thread:
        yield thread


def test_a_symbol_halted_only_by_status_58_is_seen_halted(sim: SimThread, tmp_path: Path) -> None:
    """The simulator flags halts by ``iscd_stat_cls_code`` 58 alone (or ``temp_stop_yn``
    alone): the default ``halt_from = "both"`` sees each, a single field misses the other."""
    halted, trading = STOCKS[0], STOCKS[1]
    now = sim.sim.clock.now_ns()
    sim.sim.faults.halts[halted] = (now - 60 * S, now + 3600 * S)

    async def halts(signal: str) -> dict[tuple[str, str], bool]:
        sim.sim.config.halt_signal = signal  # type: ignore[assignment]
        client = sim_client(sim, tmp_path, "sw1")
        try:
            seen = {}
            for symbol in (halted, trading):
                out = await client.current_price(symbol)
                for halt_from in ("both", "temp_stop_yn", "iscd_stat_cls_code"):
                    snap = price_snapshot(out, symbol, "KOSPI", "c", now, halt_from=halt_from)  # type: ignore[arg-type]
                    seen[symbol, halt_from] = snap.halted
            return seen
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    try:
        by_code = asyncio.run(halts("iscd_stat_cls_code"))
        by_flag = asyncio.run(halts("temp_stop_yn"))
    finally:
        sim.sim.config.halt_signal = "both"
        del sim.sim.faults.halts[halted]
    assert by_code[halted, "both"] and by_code[halted, "iscd_stat_cls_code"]
    assert not by_code[halted, "temp_stop_yn"]  # what reading the flag alone missed
    assert by_flag[halted, "both"] and not by_flag[halted, "iscd_stat_cls_code"]
    assert not any(
        seen for (symbol, _), seen in {**by_code, **by_flag}.items() if symbol == trading
    )
    assert KisSettings().halt_from == "both"


def test_opsp9993_is_a_json_error_and_9994_an_invalid_appkey(sim: SimThread) -> None:
    """As the third-party tables give them: only the invalid app key renews the approval key."""

    async def answers() -> list[str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(sim.url + "/tryitout") as ws,
        ):
            await ws.send_str("{not json")
            bad_json = await ws.receive_str(timeout=10)
            body = {"tr_id": "H0STCNT0", "tr_key": STOCKS[0]}
            header = {"approval_key": "never-issued", "custtype": "P", "tr_type": "1"}
            await ws.send_str(json.dumps({"header": header, "body": {"input": body}}))
            bad_key = await ws.receive_str(timeout=10)
        return [bad_json, bad_key]

    bad_json, bad_key = (parse_control(text) for text in asyncio.run(answers()))
    assert (bad_json.msg_cd, bad_key.msg_cd) == ("OPSP9993", "OPSP9994")
    assert bad_key.msg_cd in KEY_REFUSALS and bad_json.msg_cd not in KEY_REFUSALS
    assert bad_json.msg_cd in SESSION_REFUSALS


def test_the_process_shares_leave_headroom_under_each_accounts_budget() -> None:
    accounts = (AccountSettings(alias="a1"), AccountSettings(alias="a2", rest_per_second=10))
    kis = KisSettings(environment="real", accounts=accounts)
    assert kis.rest_headroom == 0.05
    per_second = {a: rate_limits(kis, "track_a").for_account(a).rate for a in ("a1", "a2")}
    assert per_second == pytest.approx({"a1": 18 * 0.95 * 0.55, "a2": 10 * 0.95 * 0.55})
    # All shares together: 17.1 of the real 18 calls a second.
    total = sum(rate_limits(kis, kind).for_account("a1").rate for kind in kis.process_share)
    assert total == pytest.approx(17.1)
    none = msgspec.structs.replace(kis, rest_headroom=0.0)
    assert rate_limits(none, "track_a").for_account("a1").rate == pytest.approx(9.9)
    for bad in (1.0, -0.1):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"rest_headroom": bad}, KisSettings)
