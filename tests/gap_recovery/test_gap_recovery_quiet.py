"""Minutes without trades: recovered as such at once, when KIS's answer proves them quiet."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import GapDetected
from bus.producer import Producer
from harness.sim.protocol import envelope
from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.kis.auth import TokenManager
from observer.kis.bars import BarsAnswer, fetch_gap
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from tests.gap_recovery.conftest import MARKET, STOCKS, Rig
from tests.support import db_rows, wait_until

S = 1_000_000_000
DAY = (2026, 11, 20)


def _at(hour: int, minute: int, second: int = 0) -> int:
    return int(datetime(*DAY, hour, minute, second, tzinfo=KST).timestamp()) * S


# ------------------------------------------------------------------ the rule


def _nine() -> int:
    return _at(9, 0)


async def _answer(tokens: Path, traded: set[int], gap: list[int]) -> tuple[BarsAnswer, int]:
    """`fetch_gap` against KIS's paging: the newest 30 bars at or before the asked minute."""
    calls = 0

    def route(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if request.url.path == "/oauth2/tokenP":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        calls += 1
        hhmmss = request.url.params["FID_INPUT_HOUR_1"]
        until = int(hhmmss[:2]) * 60 + int(hhmmss[2:4]) - 9 * 60
        newest = sorted((i for i in traded if i <= until), reverse=True)[:30]
        rows = [
            {
                "stck_bsop_date": "20261120",
                "stck_cntg_hour": f"{9 + i // 60:02d}{i % 60:02d}00",
                "stck_prpr": "100",
                "stck_oprc": "100",
                "stck_hgpr": "100",
                "stck_lwpr": "100",
                "cntg_vol": "5",
                "acml_tr_pbmn": "0",
            }
            for i in newest
        ]
        return httpx.Response(200, json=envelope("0", "MCA00000", "ok", output2=rows))

    http = httpx.AsyncClient(base_url="https://kis.test", transport=httpx.MockTransport(route))
    creds = Credentials("quiet", Secret("k" * 36), Secret("s" * 180))
    clock = SimulatedClock(start_ns=0, speed=1e6)
    manager = TokenManager(http, creds, clock, tokens, "sim", min_issue_interval_s=0)
    client = KisClient(
        http, creds, manager, clock, RateLimits({"quiet": 1000}).for_account("quiet")
    )
    minutes = [_nine() + i * 60 * S for i in gap]
    try:
        return await fetch_gap(client, "005930", minutes, date(*DAY)), calls
    finally:
        await http.aclose()


@given(
    st.sets(st.integers(0, 390), max_size=120),
    st.integers(0, 390),
    st.integers(0, 120),  # gaps over 29 minutes too: a backfilled restart gap
)
def test_an_answer_proves_a_gap_quiet_only_when_it_reached_the_minutes_before(
    token_dir: Path, traded: set[int], first: int, length: int
) -> None:
    gap = list(range(first, min(first + length, 390) + 1))
    answer, calls = asyncio.run(_answer(token_dir, traded, gap))
    assert set(answer.bars) == {_nine() + i * 60 * S for i in traded & set(gap)}
    # KIS answers the newest bars at or before the asked minute, none left out: any bar
    # before the gap proves its minutes quiet, however long the gap or far back the bar.
    assert answer.no_trades == (not traded & set(gap) and any(i < gap[0] for i in traded))
    if len(gap) <= 29 and traded:
        assert calls == 1  # the minutes before a short gap come in the same call
    # Never a call more than the window's pages: a page whose oldest row is at or before the
    # window's first minute ends the paging, whether that minute traded or not.
    window = max(30, len(gap) + 1)
    assert calls <= max(1, -(-window // 30))


def _gap(symbol: str, start: int, end: int) -> GapDetected:
    return GapDetected(
        gap_id=f"acct1:{symbol}:{start}",
        symbol=symbol,
        start_ns=start,
        end_ns=end,
        reason="disconnect",
        account="acct1",
    )


@pytest.mark.slow
def test_a_gap_in_minutes_without_trades_is_recovered_at_once_and_an_empty_answer_is_retried(
    rig: Rig,
) -> None:
    quiet, silent = STOCKS[0], STOCKS[1]
    # ``quiet`` does not trade at 10:05 and 10:06; ``silent`` not from 09:00 to 10:15, so
    # that KIS's answer for a gap at 10:10 holds no bar at all (nothing proves the gap quiet:
    # any bar before it, however far back, would).
    rig.sim.sim.faults.no_trades = {
        quiet: {"1005", "1006"},
        silent: {f"{m // 60:02d}{m % 60:02d}" for m in range(9 * 60, 10 * 60 + 16)},
    }
    rig.start()
    calm = _gap(quiet, _at(10, 5, 20), _at(10, 6, 10))
    empty = _gap(silent, _at(10, 10), _at(10, 10, 30))
    with Producer("track_b", rig.writer.ingest, rig.outbox) as producer:
        producer.send(calm)
        producer.send(empty)
        assert producer.wait_acked(30)
    url = rig.url
    done = wait_until(
        lambda: db_rows(
            url,
            "select state, bars, detail from gaps where gap_id = "
            f"'{calm.gap_id}' and state = 'recovered'",
        ),
        60,
        "the quiet gap recovered",
    )
    assert done == [("recovered", 0, "no trades in 10:05-10:06")]
    history = db_rows(
        url, f"select state from gap_events where gap_id = '{calm.gap_id}' order by seq"
    )
    assert [s for (s,) in history] == ["detected", "recovering", "recovered"]  # one attempt
    assert not db_rows(url, f"select 1 from minute_bars where gap_id = '{calm.gap_id}'")
    # The empty answer is a failed attempt, retried; once KIS has the bar, it is recovered.
    wait_until(
        lambda: (
            f"gap {empty.gap_id}: attempt 1 failed (KIS answered no minute bars up to "
            "10:10)" in rig.log.read_text()
        ),
        60,
        "the empty answer retried",
    )
    assert db_rows(url, f"select state from gaps where gap_id = '{empty.gap_id}'") == [
        ("recovering",)
    ]
    rig.sim.sim.faults.no_trades.pop(silent)
    wait_until(
        lambda: (
            db_rows(url, f"select state from gaps where gap_id = '{empty.gap_id}'")
            == [("recovered",)]
        ),
        60,
        "the bar recovered once KIS has it",
    )
    path = MARKET.day_path(silent, datetime(*DAY).date())
    i = 70  # 10:10 is the 71st minute of the session
    assert db_rows(url, f"select volume from minute_bars where gap_id = '{empty.gap_id}'") == [
        (int(path.volume[i]),)
    ]
