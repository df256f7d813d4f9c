"""FHPST01060000 (today's trades by time) in the simulator: the venue's trade feed, as a record.

Each row is a trade exactly as the venue's real-time trade feed sends it (or would have, under
a silent loss): stamp, price, quantity and cumulative volume, so paging back through a day
rebuilds the feed's chain trade by trade. Each UNCONFIRMED belief has its switch
(`SimConfig.time_trades_*`); the page never holds a trade after now.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from harness.sim.config import Faults, SimConfig, TickLoss
from harness.sim.market import KST, Market, quote_at
from harness.sim.price_units import price_limits
from harness.sim.quotes import PAPER_LACKS
from harness.sim.server import Simulator
from harness.sim.tape import volume_to
from observer.calendar.clock import ManualClock, SimulatedClock
from observer.calendar.trading import TradingCalendar

NS = 1_000_000_000
MARKET = Market(31, TradingCalendar(), stocks=40, etfs=4)
DAY = date(2026, 11, 20)  # a Friday with KRX's after-market
BUSY = "005930"  # 71,315 KRX trades that day, Nextrade's too
SMALL = "207940"  # 11,204 KRX trades, Nextrade's too
KRX_ONLY = "000270"  # not on Nextrade's list
TR = "FHPST01060000"
PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemconclusion"
FEEDS = {"J": "H0STCNT0", "NX": "H0NXCNT0", "UN": "H0UNCNT0"}
# A trade record's fields (every trade TR: H0STCNT0's order)
HOUR, PRICE, CNTG_VOL, ACML_VOL = 1, 2, 12, 13


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade as a record or a row has it."""

    stamp: str  # HHMMSS
    price: int
    qty: int
    volume: int  # the cumulative volume after it


def at(hh: int, mm: int = 0, ss: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), KST)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def simulator(now: datetime | int, **config: Any) -> Simulator:
    start = now if isinstance(now, int) else ns(now)
    return Simulator(MARKET, ManualClock(start), SimConfig(**config))


def seconds(hhmmss: str) -> int:
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:])


def hhmmss(second: int) -> str:
    return f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"


def of_record(record: str) -> Trade:
    fields = record.split("^")
    return Trade(fields[HOUR], int(fields[PRICE]), int(fields[CNTG_VOL]), int(fields[ACML_VOL]))


def of_row(row: dict[str, str]) -> Trade:
    return Trade(
        row["stck_cntg_hour"], int(row["stck_prpr"]), int(row["cnqn"]), int(row["acml_vol"])
    )


def pushed(sim: Simulator, venue: str, symbol: str, start: int, end: int) -> list[Trade]:
    """The trade records a registration of ``venue``'s feed made at ``start`` (ns) is sent
    to ``end``, as its pushes would send them (a minute at a time)."""
    state: dict[tuple[str, str], Any] = {}
    records: list[str] = []
    for after in range(start, end, 60 * NS):
        upto = min(after + 60 * NS, end)
        records += sim.realtime._records(FEEDS[venue], symbol, after, upto, state)
    return [of_record(r) for r in records]


def answer(sim: Simulator, symbol: str, venue: str, hour: str) -> dict[str, Any]:
    query = {"FID_COND_MRKT_DIV_CODE": venue, "FID_INPUT_ISCD": symbol, "FID_INPUT_HOUR_1": hour}
    response = sim.time_trades(query)
    assert response.text is not None
    body: dict[str, Any] = json.loads(response.text)
    return body


def page(sim: Simulator, symbol: str, venue: str, hour: str) -> list[Trade]:
    body = answer(sim, symbol, venue, hour)
    assert body["rt_cd"] == "0", body
    return [of_row(row) for row in body["output2"]]


def page_back(
    ask: Callable[[str], list[Trade]],
    until: str,
    since: str,
    rows: int = 30,
    inclusive: bool = False,
) -> list[Trade]:
    """Every trade stamped from ``since`` to before ``until``, oldest first, as a caller pages.

    KIS offers no continuation: each page is asked again from its oldest row's second (the
    next one, when the TR answers strictly before it), the rows seen already dropped.
    """
    trades: list[Trade] = []  # newest first
    hour = until
    while True:
        answered = ask(hour)
        fresh = [t for t in answered if not trades or t.volume < trades[-1].volume]
        trades += [t for t in fresh if t.stamp >= since]
        if len(answered) < rows or answered[-1].stamp < since:
            return trades[::-1]
        oldest = answered[-1].stamp
        again = oldest if inclusive else hhmmss(seconds(oldest) + 1)
        assert again < hour, f"a page within one second: {answered}"
        hour = again


async def paged(
    ask: Callable[[str], Awaitable[list[Trade]]], until: str, since: str
) -> list[Trade]:
    """`page_back` over an asynchronous ``ask``."""
    trades: list[Trade] = []
    hour = until
    while True:
        answered = await ask(hour)
        fresh = [t for t in answered if not trades or t.volume < trades[-1].volume]
        trades += [t for t in fresh if t.stamp >= since]
        if len(answered) < 30 or answered[-1].stamp < since:
            return trades[::-1]
        again = hhmmss(seconds(answered[-1].stamp) + 1)
        assert again < hour
        hour = again


def before(trades: list[Trade], stamp: str, since: str = "") -> list[Trade]:
    """The trades stamped from ``since`` to before ``stamp``."""
    return [t for t in trades if since <= t.stamp < stamp]


def assert_chained(trades: list[Trade], start: int | None = None) -> None:
    """Each trade's cumulative volume is the previous one's plus its own quantity."""
    for older, newer in itertools.pairwise(trades):
        assert newer.volume - newer.qty == older.volume, (older, newer)
    if start is not None and trades:
        assert trades[0].volume - trades[0].qty == start


# ------------------------------------------------------------------ the feed's chain, rebuilt


@functools.cache
def whole_day(venue: str, symbol: str) -> list[Trade]:
    """The feed's records of the whole day, registered before its first trade."""
    sim = simulator(at(20, 30))
    return pushed(sim, venue, symbol, ns(at(7, 59)), ns(at(20, 1)))


@pytest.mark.parametrize("venue", ["J", "NX", "UN"])
def test_paging_back_through_the_morning_rebuilds_the_feed_trade_by_trade(venue: str) -> None:
    sim = simulator(at(12, 0, 30))
    stream = before(pushed(sim, venue, BUSY, ns(at(7, 59)), ns(at(12))), "120000")
    assert len(stream) > 10_000
    trades = page_back(lambda hour: page(sim, BUSY, venue, hour), "120000", "000000")
    assert trades == stream  # stamps, prices, quantities, cumulative volumes
    assert_chained(trades, start=0)  # from the venue's first trade of the day
    assert trades[0].stamp >= ("090000" if venue == "J" else "080000")


@pytest.mark.parametrize("venue", ["J", "NX", "UN"])
def test_the_evening_and_the_whole_day_follow_the_feed(venue: str) -> None:
    """Through Nextrade's after-market auction match (15:40:00) and KRX's after-market."""
    sim = simulator(at(20, 30))
    trades = page_back(lambda hour: page(sim, BUSY, venue, hour), "203000", "153000")
    stream = whole_day(venue, BUSY)
    assert trades == [t for t in stream if t.stamp >= "153000"]
    assert_chained(trades)
    assert trades[-1].volume == stream[-1].volume


def test_a_registration_later_in_the_day_reads_the_same_cumulative_volume() -> None:
    sim = simulator(at(12))
    later = before(pushed(sim, "J", SMALL, ns(at(10, 30)), ns(at(10, 40))), "104000", "103001")
    trades = page_back(lambda hour: page(sim, SMALL, "J", hour), "104000", "103001")
    assert later == trades and len(later) > 100


def test_a_name_nextrade_does_not_trade_has_no_nextrade_rows() -> None:
    sim = simulator(at(12))
    assert page(sim, KRX_ONLY, "NX", "120000") == []
    assert page(sim, KRX_ONLY, "UN", "120000") == page(sim, KRX_ONLY, "J", "120000")


# ------------------------------------------------------------------ what the feed lost


@pytest.mark.parametrize("venue", ["J", "NX", "UN"])
def test_trades_the_feed_withheld_are_in_the_record(venue: str) -> None:
    sim = simulator(at(11))
    loss = TickLoss(ns(at(10, 2)), ns(at(10, 5)), 0.4, feeds=frozenset({FEEDS[venue]}))
    sim.faults.tick_loss.append(loss)
    stream = before(pushed(sim, venue, BUSY, ns(at(9, 59)), ns(at(10, 10))), "101000", "095901")
    withheld = sim.realtime.records_withheld[BUSY]
    assert withheld > 20
    trades = page_back(lambda hour: page(sim, BUSY, venue, hour), "101000", "095901")
    sent = set(stream)
    assert [t for t in trades if t in sent] == stream
    missing = [t for t in trades if t not in sent]
    assert len(missing) == withheld
    assert all("100200" <= t.stamp < "100500" for t in missing)
    assert_chained(trades)  # the record's chain is whole where the feed's breaks


def test_the_unsent_trades_counted_beyond_are_rows_of_their_own() -> None:
    """`SimConfig.volume_chain` "beyond": KRX's ACML_VOL counts trades its feed never sends;
    the record lists each, so its chain and the feed's agree, whenever registered and with
    records withheld among them."""
    sim = simulator(at(11), volume_chain="beyond")
    sim.faults.tick_loss.append(TickLoss(ns(at(10, 3)), ns(at(10, 6)), 0.5))
    stream = before(pushed(sim, "J", BUSY, ns(at(8, 59)), ns(at(10, 10))), "101000")
    trades = page_back(lambda hour: page(sim, BUSY, "J", hour), "101000", "000000")
    assert_chained(trades, start=0)
    sent = set(stream)
    assert [t for t in trades if t in sent] == stream
    unsent = {t for t in trades if t not in sent and not "100300" <= t.stamp < "100600"}
    assert len(unsent) > 100 and {t.qty for t in unsent} == {100}
    for phantom, then in itertools.pairwise(trades):  # each before a trade the feed sends
        if phantom in unsent:
            assert (then.stamp, then.price) == (phantom.stamp, phantom.price) and then in sent
    later = before(pushed(sim, "J", BUSY, ns(at(10, 7)), ns(at(10, 10))), "101000")
    assert later == [t for t in stream if t.volume >= later[0].volume]  # registered later
    # the other feeds count none
    combined = page(simulator(at(11), volume_chain="beyond"), BUSY, "UN", "101000")
    assert combined == page(simulator(at(11)), BUSY, "UN", "101000")


def test_halts_quiet_minutes_and_limit_locks_are_the_record_s_as_the_feed_s() -> None:
    sim = simulator(at(20, 30))
    faults = sim.faults
    faults.halts[SMALL] = (ns(at(10, 0, 20)), ns(at(10, 12)))
    faults.no_trades[SMALL] = {"1100", "1101", "1705"}
    faults.limit_locks[SMALL] = (ns(at(13)), ns(at(13, 5)))
    for venue in ("J", "UN"):
        stream = pushed(sim, venue, SMALL, ns(at(7, 59)), ns(at(20, 1)))
        trades = page_back(functools.partial(page, sim, SMALL, venue), "203000", "000000")
        assert trades == stream
        assert_chained(trades, start=0)
        if venue == "J":  # (Nextrade's trades go on in the combined feed)
            assert not before(trades, "101200", "100020")
            assert not [t for t in trades if t.stamp[:4] in ("1100", "1101", "1705")]
            upper = price_limits(MARKET.day_path(SMALL, DAY).prev_close)[1]
            assert {t.price for t in before(trades, "130500", "130000")} == {upper}


# ------------------------------------------------------------------ the switches


def test_a_row_a_second_sums_the_second_s_trades() -> None:
    trades = whole_day("J", BUSY)
    sim = simulator(at(20, 30), time_trades_per="second")
    rows = page(sim, BUSY, "J", "100000")
    assert len(rows) == 30 and len({r.stamp for r in rows}) == 30
    for row in rows:
        second = [t for t in trades if t.stamp == row.stamp]
        assert row.qty == sum(t.qty for t in second)
        assert (row.price, row.volume) == (second[-1].price, second[-1].volume)
    assert_chained(rows[::-1])  # a second's chain: its last trade's volume less its shares
    assert rows[0].stamp == max(t.stamp for t in trades if t.stamp < "100000")


def test_another_page_size() -> None:
    for size in (1, 7, 100):
        sim = simulator(at(20, 30), time_trades_rows=size)
        rows = page(sim, BUSY, "NX", "100000")
        assert rows == [t for t in whole_day("NX", BUSY) if t.stamp < "100000"][-size:][::-1]
    with pytest.raises(ValueError, match="time_trades_rows"):
        SimConfig(time_trades_rows=0)


def test_an_offset_cumulative_volume_chains_beside_the_feed_s() -> None:
    sim = simulator(at(12), time_trades_cum_offset=12_345)
    plain = simulator(at(12))
    shifted, rows = page(sim, BUSY, "J", "100000"), page(plain, BUSY, "J", "100000")
    assert [t.volume - 12_345 for t in shifted] == [t.volume for t in rows]
    assert_chained(shifted[::-1])
    summary, base = (answer(s, BUSY, "J", "100000")["output1"] for s in (sim, plain))
    assert int(summary["acml_vol"]) == int(base["acml_vol"]) + 12_345


def test_inclusive_answers_the_asked_second_too() -> None:
    trades = whole_day("J", BUSY)
    stamp = next(t.stamp for t in trades if t.stamp >= "100000")  # a second with a trade
    after = hhmmss(seconds(stamp) + 1)
    inclusive = simulator(at(12), time_trades_inclusive=True)
    strict = simulator(at(12))
    assert page(inclusive, BUSY, "J", stamp)[0].stamp == stamp
    assert page(strict, BUSY, "J", stamp)[0].stamp < stamp
    assert page(inclusive, BUSY, "J", stamp) == page(strict, BUSY, "J", after)
    # paged back inclusively, the same day
    rows = page_back(
        lambda hour: page(inclusive, BUSY, "J", hour), "100500", "100000", inclusive=True
    )
    assert rows == [t for t in trades if "100000" <= t.stamp <= "100500"]


# ------------------------------------------------------------------ now, and the day


def test_no_trade_after_now() -> None:
    now = ns(at(10, 0, 30)) + NS // 4  # 10:00:30.25
    sim = simulator(now)
    for venue in ("J", "NX", "UN"):
        rows = page(sim, BUSY, venue, "153000")
        stream = pushed(sim, venue, BUSY, ns(at(7, 59)), now)
        assert rows == stream[-30:][::-1]
        assert rows[0].stamp <= "100030"
    quote = quote_at(MARKET, BUSY, at(10, 0, 30))
    summary = answer(sim, BUSY, "J", "153000")["output1"]
    assert summary["stck_prpr"] == str(quote.price) and summary["acml_vol"] == str(quote.volume)
    newest = page(sim, BUSY, "J", "153000")[0]
    assert newest.volume <= quote.volume
    sim.clock.advance(60)  # type: ignore[attr-defined]
    later = page(sim, BUSY, "J", "153000")
    assert "100100" <= later[0].stamp <= "100130" and later[0].volume > newest.volume


def test_before_the_open_and_on_a_day_without_a_session() -> None:
    early = simulator(at(8, 30))
    assert page(early, BUSY, "J", "153000") == []
    nextrade = page(early, BUSY, "NX", "153000")
    assert nextrade and all("080000" <= t.stamp <= "083000" for t in nextrade)
    # "no data" (KIOK0560: `Quotes.rest` answers it for a KeyError, as on loopback below)
    saturday = simulator(at(10, day=date(2026, 11, 21)))
    for sim, symbol, hour in ((saturday, BUSY, "100000"), (early, "999999", "100000")):
        with pytest.raises(KeyError):
            answer(sim, symbol, "J", hour)
    with pytest.raises(KeyError):
        answer(early, BUSY, "J", "10:00")  # what KIS answers is UNCONFIRMED


def test_the_rows_fields() -> None:
    sim = simulator(at(12))
    body = answer(sim, BUSY, "J", "100000")
    output1 = {"stck_prpr", "prdy_vrss", "prdy_vrss_sign", "prdy_ctrt", "acml_vol", "prdy_vol"}
    assert set(body["output1"]) == {*output1, "rprs_mrkt_kor_name"}
    prev_close = MARKET.day_path(BUSY, DAY).prev_close
    for row in body["output2"]:
        price = int(row["stck_prpr"])
        assert int(row["prdy_vrss"]) == price - prev_close
        assert row["prdy_ctrt"] == f"{(price - prev_close) * 100 / prev_close:.2f}"
        assert int(row["bidp"]) <= price < int(row["askp"])
        assert float(row["tday_rltv"]) > 0
    assert "FHPST01060000" not in PAPER_LACKS  # offered on paper accounts


# ------------------------------------------------------------------ any time asked

EVENING = simulator(at(20, 30))  # the whole day done


@given(
    venue=st.sampled_from(["J", "NX", "UN"]),
    symbol=st.sampled_from([BUSY, KRX_ONLY]),
    asked=st.integers(7 * 3600, 21 * 3600),
    rows=st.sampled_from([1, 30, 45]),
    per_second=st.booleans(),
    inclusive=st.booleans(),
)
def test_any_time_asked_answers_the_feed_s_trades_before_it(
    venue: str, symbol: str, asked: int, rows: int, per_second: bool, inclusive: bool
) -> None:
    """Strictly before the time asked (or at it), newest first, a page at most, chained; the
    page short only at the day's first trade; and exactly the feed's trades."""
    config = SimConfig(
        time_trades_rows=rows,
        time_trades_per="second" if per_second else "trade",
        time_trades_inclusive=inclusive,
    )
    sim = EVENING
    sim.gateway.config = config  # the switches are read on each call
    hour = hhmmss(asked)
    answered = page(sim, symbol, venue, hour)

    def inside(trade: Trade) -> bool:
        return trade.stamp <= hour if inclusive else trade.stamp < hour

    assert len(answered) <= rows
    assert all(inside(t) for t in answered)
    assert all(a.stamp >= b.stamp and a.volume > b.volume for a, b in itertools.pairwise(answered))
    assert_chained(answered[::-1])
    if answered and len(answered) < rows:
        assert answered[-1].volume == answered[-1].qty  # the day's first (second of) trade(s)
    expected = [t for t in whole_day(venue, symbol) if inside(t)]
    if per_second:
        expected = [summed(list(second)) for _, second in itertools.groupby(expected, key=stamp)]
    assert answered == expected[max(0, len(expected) - rows) :][::-1]


def stamp(trade: Trade) -> str:
    return trade.stamp


def summed(second: list[Trade]) -> Trade:
    """A second's trades as one row: its last price and volume, their quantity."""
    last = second[-1]
    return Trade(last.stamp, last.price, sum(t.qty for t in second), last.volume)


# ------------------------------------------------------------------ on loopback


@dataclass(frozen=True, slots=True)
class Loopback:
    """A simulator served on loopback, with an approval key and a token from it."""

    session: aiohttp.ClientSession
    url: str
    key: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """FHPST01060000's headers."""
        return {
            "appkey": "k",
            "appsecret": "s",
            "authorization": f"Bearer {self.token}",
            "tr_id": TR,
        }

    async def ask(self, venue: str, symbol: str, hour: str) -> list[Trade]:
        """One page of FHPST01060000 over HTTP."""
        query = {
            "FID_COND_MRKT_DIV_CODE": venue,
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": hour,
        }
        async with self.session.get(
            self.url + PATH, params=query, headers=self.headers
        ) as response:
            body = await response.json()
        assert response.status == 200 and body["rt_cd"] == "0", body
        return [of_row(row) for row in body["output2"]]


@contextlib.asynccontextmanager
async def loopback(sim: Simulator) -> AsyncIterator[Loopback]:
    """``sim`` on a loopback port, for one client session."""
    runner = web.AppRunner(sim.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            keys = {"grant_type": "client_credentials", "appkey": "k", "secretkey": "s"}
            async with session.post(url + "/oauth2/Approval", json=keys) as response:
                key = (await response.json())["approval_key"]
            token_body = {"grant_type": "client_credentials", "appkey": "k", "appsecret": "s"}
            async with session.post(url + "/oauth2/tokenP", json=token_body) as response:
                token = (await response.json())["access_token"]
            yield Loopback(session, url, key, token)
    finally:
        await runner.cleanup()


def records_of(frame: str) -> tuple[str, list[list[str]]]:
    """A data frame's TR and its records' fields."""
    _, tr_id, count, payload = frame.split("|", 3)
    values = payload.split("^")
    width = len(values) // int(count)
    return tr_id, [values[i : i + width] for i in range(0, len(values), width)]


def test_on_loopback_the_record_matches_what_the_websocket_delivered() -> None:
    """KRX's and Nextrade's feeds registered from 09:59:55 (the clock at 5x, 120x from 10:00)
    and read to 10:03; the TR then asked over HTTP, paging back from 10:03 to the
    registrations: the same trades, and those KRX's feed withheld (10:01:30-10:02:30)
    besides. The gateway's faults apply to the TR as to any REST call."""
    symbol = BUSY
    start = at(9, 59, 55)
    since = ""  # the first second after both registrations

    async def scenario() -> tuple[Simulator, dict[str, list[Trade]], dict[str, list[Trade]]]:
        nonlocal since
        clock = SimulatedClock(ns(start), 5.0, changes=((ns(at(10)), 120.0),))
        sim = Simulator(MARKET, clock, SimConfig(calls_per_second=1000))
        loss = TickLoss(ns(at(10, 1, 30)), ns(at(10, 2, 30)), 0.5, frozenset({symbol}))
        sim.faults.tick_loss.append(loss)
        heard: dict[str, list[Trade]] = {"J": [], "NX": []}
        answered: dict[str, list[Trade]] = {}
        async with loopback(sim) as http:
            async with http.session.ws_connect(http.url + "/tryitout") as ws:
                header = {"approval_key": http.key, "tr_type": "1", "custtype": "P"}
                for venue in heard:
                    data = {"tr_id": FEEDS[venue], "tr_key": symbol}
                    await ws.send_json({"header": header, "body": {"input": data}})
                venues = {FEEDS[v]: v for v in heard}
                registered = 0
                while min((t[-1].stamp if t else "") for t in heard.values()) < "100300":
                    message = await asyncio.wait_for(ws.receive(), 30)
                    assert message.type == aiohttp.WSMsgType.TEXT, message
                    if message.data.startswith("{"):
                        body = json.loads(message.data)
                        if body["header"]["tr_id"] in venues:
                            assert body["body"]["msg_cd"] == "OPSP0000", body
                            registered += 1
                            if registered == len(venues):  # both held by now
                                held = sim.clock.now_ns()
                                assert held < loss.start_ns
                                since = hhmmss((held - ns(at(0))) // NS + 1)
                        continue
                    tr_id, records = records_of(message.data)
                    heard[venues[tr_id]] += [of_record("^".join(r)) for r in records]
            for venue in heard:
                ask = functools.partial(http.ask, venue, symbol)
                answered[venue] = await paged(ask, "100300", since)
            sim.faults.rate_limited = 1  # the gateway's faults apply as to any REST call
            query = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
            url, headers = http.url + PATH, http.headers
            async with http.session.get(url, params=query, headers=headers) as response:
                assert response.status == 500
                assert (await response.json())["msg_cd"] == "EGW00201"
            query["FID_INPUT_ISCD"] = "999999"  # an unknown code: no data
            async with http.session.get(url, params=query, headers=headers) as response:
                assert (await response.json())["msg_cd"] == "KIOK0560"
        return sim, heard, answered

    sim, heard, answered = asyncio.run(scenario())
    for venue, records in heard.items():
        span = before(records, "100300", since)
        trades = answered[venue]
        assert len(span) > 100 and trades[0].stamp >= since
        assert_chained(trades)
        if venue == "NX":
            assert trades == span
            continue
        assert set(span) <= set(trades)  # and in the same order
        assert [t for t in trades if t in set(span)] == span
        lost = [t for t in trades if t not in set(span)]
        assert len(lost) == sim.realtime.records_withheld[symbol] > 0
        assert all("100130" <= t.stamp < "100230" for t in lost)
    assert sim.calls[TR] >= 10


# ------------------------------------------------------------------ registered after a fault

HALTED, QUIET = SMALL, KRX_ONLY  # one on Nextrade's list, one not
REGISTERED = at(11, 30)  # a Track B slot's registration, mid-day


def faulted(kind: str) -> Simulator:
    """A simulator at 20:30, its faults `with_faults`'s; ``kind`` "beyond": KRX's ACML_VOL
    counting the trades its feed never sends (`SimConfig.volume_chain`)."""
    chain = "beyond" if kind == "beyond" else "exact"
    return with_faults(simulator(at(20, 30), volume_chain=chain), kind)


def with_faults(sim: Simulator, kind: str = "exact") -> Simulator:
    """``sim``, its faults keeping trades of ``HALTED`` and ``QUIET`` from happening before
    `REGISTERED`: 10:00:20-10:12 and 17:00-17:30 halted, 11:00, 11:01 and 16:50 quiet;
    ``kind`` adds a limit lock ("lock") or a silent loss ("loss")."""
    faults = sim.faults
    for symbol in (HALTED, QUIET):
        faults.no_trades[symbol] = {"1100", "1101", "1650"}
    faults.halts[HALTED] = (ns(at(10, 0, 20)), ns(at(10, 12)))
    faults.halts[QUIET] = (ns(at(17)), ns(at(17, 30)))
    if kind == "lock":
        faults.limit_locks[HALTED] = (ns(at(9, 30)), ns(at(9, 40)))
    if kind == "loss":  # withheld: the exchange made those trades, they count
        feeds = frozenset(FEEDS.values())
        faults.tick_loss.append(TickLoss(ns(at(10, 30)), ns(at(11, 35)), 0.3, feeds=feeds))
    return sim


@pytest.mark.parametrize("kind", ["exact", "lock", "loss", "beyond"])
@pytest.mark.parametrize("venue", ["J", "NX", "UN"])
@pytest.mark.parametrize("symbol", [HALTED, QUIET])
@pytest.mark.parametrize("registered", [REGISTERED, at(18)], ids=["midday", "evening"])
def test_a_registration_after_a_fault_carries_the_record_s_cumulative_volume(
    kind: str, venue: str, symbol: str, registered: datetime
) -> None:
    """Registered after a halt and quiet minutes (and a limit lock, a silent loss, the unsent
    trades "beyond" counts): every record's ACML_VOL is the exchange's count of the trades
    it made to it, as FHPST01060000 answers it, however late the feed was registered."""
    sim = faulted(kind)
    end = registered + timedelta(minutes=5 if registered < at(16) else 30)  # evenings trade less
    # from the second after the registration (a trade at its instant is counted before it)
    since, until = hhmmss(seconds(f"{registered:%H%M%S}") + 1), f"{end:%H%M%S}"
    stream = before(pushed(sim, venue, symbol, ns(registered), ns(end)), until, since)
    trades = page_back(functools.partial(page, sim, symbol, venue), until, since)
    if venue == "NX" and symbol == QUIET:
        assert stream == trades == []  # Nextrade does not trade it
        return
    assert len(stream) > 5
    sent = set(stream)
    assert [t for t in trades if t in sent] == stream  # ACML_VOL too: the same count
    if kind != "loss" and not (kind == "beyond" and venue == "J"):
        assert trades == stream  # and no trade the feed did not send
    # and the same records as a registration before the day's first trade
    early = before(pushed(sim, venue, symbol, ns(at(7, 59)), ns(end)), until)
    assert early[-len(stream) :] == stream


FAULTED = {kind: faulted(kind) for kind in ("exact", "beyond")}


@given(
    kind=st.sampled_from(["halt", "quiet", "none"]),
    beyond=st.booleans(),
    venue=st.sampled_from(["J", "NX", "UN"]),
    registered=st.integers(9 * 3600, 20 * 3600 - 1),
    offset=st.integers(1, 120),  # minutes the fault starts before the registration
    minutes=st.integers(1, 30),  # how long it lasts
)
def test_a_registration_s_first_record_follows_the_record_s_volume_before_it(
    kind: str, beyond: bool, venue: str, registered: int, offset: int, minutes: int
) -> None:
    """Any registration, after a halt, quiet minutes or neither: its first record's ACML_VOL
    less its quantity is the FHPST01060000 answer's volume before it (its older row's)."""
    sim = FAULTED["beyond" if beyond else "exact"]
    faults = sim.faults
    symbol = BUSY
    first = registered - offset * 60
    saved = dict(faults.halts), {k: set(v) for k, v in faults.no_trades.items()}
    try:
        if kind == "halt":
            faults.halts[symbol] = (ns(at(0)) + first * NS, ns(at(0)) + (first + 60 * minutes) * NS)
        elif kind == "quiet":
            faults.no_trades[symbol] = {hhmmss(first + 60 * m)[:4] for m in range(minutes)}
        start = ns(at(0)) + registered * NS
        state: dict[tuple[str, str], Any] = {}
        records: list[str] = []
        for after in range(start, ns(at(20, 1)), 60 * NS):  # to the first record pushed
            records = sim.realtime._records(FEEDS[venue], symbol, after, after + 60 * NS, state)
            if records:
                break
        if not records:
            return  # none after it that day
        record = of_record(records[0])
        answered = page(sim, symbol, venue, hhmmss(seconds(record.stamp) + 1))
        assert record in answered  # its ACML_VOL too
        nth = answered.index(record)
        if nth + 1 < len(answered):
            assert record.volume - record.qty == answered[nth + 1].volume
        elif len(answered) < 30:  # the day's first trade
            assert record.volume == record.qty
    finally:
        faults.halts.clear()
        faults.halts.update(saved[0])
        faults.no_trades.clear()
        faults.no_trades.update(saved[1])


def test_on_loopback_a_registration_after_a_fault_reads_the_record_s_cumulative_volume() -> None:
    """Track B's slots registered at 11:30 (the clock at 60x) over a real WebSocket: KRX's
    feed and the combined one of a name halted 10:00:20-10:12, KRX's of one quiet at 11:00
    and 11:01, read to 11:32. FHPST01060000, then asked over HTTP back to the registrations,
    answers the same trades with the same cumulative volumes."""
    feeds = [("H0STCNT0", HALTED), ("H0UNCNT0", HALTED), ("H0STCNT0", QUIET)]
    venues = {"H0STCNT0": "J", "H0UNCNT0": "UN"}
    since = ""  # the first second after every registration

    async def scenario() -> tuple[
        dict[tuple[str, str], list[Trade]], dict[tuple[str, str], list[Trade]]
    ]:
        nonlocal since
        clock = SimulatedClock(ns(REGISTERED), 60.0)
        sim = with_faults(Simulator(MARKET, clock, SimConfig(calls_per_second=1000)))
        heard: dict[tuple[str, str], list[Trade]] = {feed: [] for feed in feeds}
        answered: dict[tuple[str, str], list[Trade]] = {}
        async with loopback(sim) as http:
            async with http.session.ws_connect(http.url + "/tryitout") as ws:
                header = {"approval_key": http.key, "tr_type": "1", "custtype": "P"}
                for tr_id, symbol in feeds:
                    data = {"tr_id": tr_id, "tr_key": symbol}
                    await ws.send_json({"header": header, "body": {"input": data}})
                registered = 0
                while min((t[-1].stamp if t else "") for t in heard.values()) < "113200":
                    message = await asyncio.wait_for(ws.receive(), 30)
                    assert message.type == aiohttp.WSMsgType.TEXT, message
                    if message.data.startswith("{"):
                        body = json.loads(message.data)
                        if body["header"]["tr_id"] in venues:
                            assert body["body"]["msg_cd"] == "OPSP0000", body
                            registered += 1
                            if registered == len(feeds):  # every one held by now
                                held = sim.clock.now_ns()
                                since = hhmmss((held - ns(at(0))) // NS + 1)
                        continue
                    tr_id, records = records_of(message.data)
                    for record in records:
                        heard[tr_id, record[0]].append(of_record("^".join(record)))
            for tr_id, symbol in feeds:
                asked = functools.partial(http.ask, venues[tr_id], symbol)
                answered[tr_id, symbol] = await paged(asked, "113200", since)
        return heard, answered

    heard, answered = asyncio.run(scenario())
    # Registered within the minute (a wall second at 60x: 15 simulated seconds were seen in a
    # fresh worker drawing its first paths)
    assert "113000" <= since < "113100"
    for feed, records in heard.items():
        span = before(records, "113200", since)
        assert len(span) > 10, feed
        assert answered[feed] == span, feed  # ACML_VOL too


@pytest.mark.parametrize("now", [at(10, 5), at(11, 30, 0), at(11, 0, 30), at(18, 0, 1)])
def test_the_current_price_counts_the_trades_the_exchange_made(now: datetime) -> None:
    """FHKST01010100's acml_vol (Track A's) and FHPST01060000's summary are the feed's count
    (registered before the day's first trade) of the trades done by now: a halt's and a
    quiet minute's never happened (during the halt: the count at its start). A name without
    faults keeps the path's volume."""
    sim = with_faults(simulator(now))
    for symbol in (HALTED, QUIET, BUSY):
        stream = pushed(sim, "J", symbol, ns(at(7, 59)), ns(now))
        query = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
        response = sim.quotes.inquire_price(query)
        assert response.text is not None
        volume = int(json.loads(response.text)["output"]["acml_vol"])
        assert volume == stream[-1].volume
        summary = answer(sim, symbol, "J", "153000")["output1"]
        assert int(summary["acml_vol"]) == volume
        if symbol == BUSY:
            assert volume == quote_at(MARKET, symbol, now).volume


@given(
    symbol=st.sampled_from([BUSY, SMALL, KRX_ONLY]),
    second=st.integers(8 * 3600, 21 * 3600),
    micro=st.integers(0, 999_999),
)
def test_without_faults_the_record_s_count_is_the_path_s(
    symbol: str, second: int, micro: int
) -> None:
    """What lets the quotes keep the path's volume for a name no fault touches."""
    moment = at(0) + timedelta(seconds=second, microseconds=micro)
    counted = volume_to(MARKET, Faults(), SimConfig(), "J", symbol, moment)
    assert counted == quote_at(MARKET, symbol, moment).volume


def test_on_loopback_a_registration_made_again_carries_the_exchange_s_cumulative_volume() -> None:
    """A slot released and taken again on the same WebSocket (Track B replaces and places
    names all day): the records after the second registration carry the exchange's ACML_VOL,
    the trades made while it was released counted, as FHPST01060000 answers them. (The
    session's running figures were those of the first registration, short of those trades.)"""
    other = QUIET  # its records pace the test while BUSY is released
    since = ""

    async def scenario() -> tuple[list[Trade], list[Trade]]:
        nonlocal since
        clock = SimulatedClock(ns(REGISTERED), 60.0)
        sim = Simulator(MARKET, clock, SimConfig(calls_per_second=1000))
        again: list[Trade] = []
        async with loopback(sim) as http:
            async with http.session.ws_connect(http.url + "/tryitout") as ws:

                async def register(symbol: str, kind: str) -> None:
                    header = {"approval_key": http.key, "tr_type": kind, "custtype": "P"}
                    body = {"input": {"tr_id": "H0STCNT0", "tr_key": symbol}}
                    await ws.send_json({"header": header, "body": body})

                await register(BUSY, "1")
                await register(other, "1")
                phase = "first"  # then "released", then "again"
                while not again or again[-1].stamp < "113300":
                    message = await asyncio.wait_for(ws.receive(), 30)
                    assert message.type == aiohttp.WSMsgType.TEXT, message
                    if message.data.startswith("{"):
                        continue
                    for record in records_of(message.data)[1]:
                        trade = of_record("^".join(record))
                        if record[0] == BUSY and phase == "again":
                            again.append(trade)
                        elif record[0] == BUSY and phase == "first" and trade.stamp >= "113030":
                            phase = "released"
                            await register(BUSY, "2")
                        elif (
                            record[0] == other and phase == "released" and (trade.stamp >= "113200")
                        ):
                            phase = "again"
                            since = hhmmss((sim.clock.now_ns() - ns(at(0))) // NS + 1)
                            await register(BUSY, "1")
            answered = await paged(functools.partial(http.ask, "J", BUSY), "113300", since)
        return again, answered

    again, answered = asyncio.run(scenario())
    assert "113200" <= since < "113300"
    span = before(again, "113300", since)
    assert len(span) > 10
    assert answered == span  # ACML_VOL too: the trades of 11:30:30-11:32 counted
