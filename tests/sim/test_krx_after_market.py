"""KRX's after-market in the simulator (from 2026-09-14, stocks, 16:00-20:00 KST).

Its trades are drawn beside every other draw (KRX's bars, Nextrade's day stay as they were),
within their hours and band; KRX's feeds send them with the session code "3", the day's
volume running on; the current price, the daily bar and the minute bars follow them, each
as its switch says.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import date, datetime, time, timedelta
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from harness.sim.config import SimConfig, TickLoss
from harness.sim.hours import KRX_AFTER_SPAN
from harness.sim.market import BARS_PER_DAY, KST, Market, bars_value, quote_at, tick_size
from harness.sim.nextrade import (
    KRX_AFTER_MARKET_FROM,
    NXT_AFTER_MARKET_EXCLUDES,
    OFF_HOURS_SHARE,
    DayTrades,
    krx_after_trades,
    venue_trades,
)
from harness.sim.price_units import price_limits
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock, SimulatedClock
from observer.calendar.trading import TradingCalendar

NS = 1_000_000_000
MARKET = Market(31, TradingCalendar(), stocks=40, etfs=4)
DAY = date(2026, 11, 20)  # a Friday session after the after-market's start
BEFORE = date(2026, 9, 11)  # the last session without it (16:00-18:00 single price then)
STOCKS = [s for s, x in MARKET.listings.items() if x.group == "ST"]
ETFS = [s for s, x in MARKET.listings.items() if x.group == "EF"]
BUSY = STOCKS[0]  # the largest real name: trades in most evening minutes
NXT = next(s for s in STOCKS if s in MARKET.nxt_eligible(DAY))
KRX_ONLY = next(s for s in STOCKS if s not in MARKET.nxt_eligible(DAY))
OPENS, CLOSES = KRX_AFTER_SPAN.start_s, KRX_AFTER_SPAN.end_s

# The 2026-09 records: H0STCNT0's 46 fields then MARKET_CLS_CODE; H0STASP0's 59, the
# book's mid-point (3), then MARKET_CLS_CODE.
HOUR, CNTG_VOL, ACML_VOL, TRADE_CODE, BOOK_CODE = 1, 12, 13, 46, 62


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), KST)


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS


def simulator(now: datetime, **config: Any) -> Simulator:
    return Simulator(MARKET, ManualClock(ns(now)), SimConfig(**config))


def answer(response: web.Response) -> Any:
    assert response.text is not None
    return json.loads(response.text)


def pushed(sim: Simulator, tr_id: str, symbol: str, start: datetime, end: datetime) -> list[str]:
    """The records a registration made at ``start`` is pushed to ``end``, every 7 s."""
    state: dict[tuple[str, str], Any] = {}
    records: list[str] = []
    for after in range(ns(start), ns(end), 7 * NS):
        records += sim.realtime._records(tr_id, symbol, after, min(after + 7 * NS, ns(end)), state)
    return records


def evening_of(symbol: str, day: date = DAY) -> DayTrades:
    evening = MARKET.krx_after_day(symbol, day)
    assert evening is not None, (symbol, day)
    return evening


def second_of(record: str) -> int:
    hhmmss = record.split("^")[HOUR]
    return int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:])


# ------------------------------------------------------------------ the draw


@pytest.mark.parametrize("day", [KRX_AFTER_MARKET_FROM, DAY])
def test_every_stock_trades_in_the_after_market_hours_around_the_close(day: date) -> None:
    mid_points = 0
    for symbol in STOCKS:
        evening = evening_of(symbol, day)
        assert len(evening.at_s) > 0, symbol  # some 50 trades for the smallest names
        assert np.all((evening.at_s >= OPENS) & (evening.at_s < CLOSES))
        assert np.all(np.diff(evening.at_s) >= 0) and np.all(evening.qty >= 1)
        bar = MARKET.daily_bar(symbol, day)
        lower, upper = price_limits(bar.prev_close)
        assert np.all((evening.price >= lower) & (evening.price <= upper))
        unit = tick_size(bar.close)
        assert np.all(np.abs(evening.price - bar.close) <= 3 * unit)
        mid_points += int(np.sum(evening.price % tick_size(int(evening.price.min())) != 0))
        # read a minute at a time (as the feeds do), the trades are the day's, in order
        minutes = range(OPENS // 60, CLOSES // 60)
        read = [(m * 60 + s, p, q) for m in minutes for s, p, q in evening.minute(m)]
        assert [p for _, p, _ in read] == evening.price.tolist()
        assert np.allclose([t for t, _, _ in read], evening.at_s)
    assert mid_points > 0  # the configured share prints between two ticks


def test_a_minute_trades_the_off_hours_share_of_the_name_s_mean_krx_minute() -> None:
    """As Nextrade's off-hours minutes: a Poisson `OFF_HOURS_SHARE` of the mean minute."""
    for symbol in STOCKS:
        bar = MARKET.daily_bar(symbol, DAY)
        expected = OFF_HOURS_SHARE * bar.trades / BARS_PER_DAY * (CLOSES - OPENS) / 60
        assert abs(len(evening_of(symbol).at_s) - expected) <= 5 * expected**0.5 + 1, symbol
    assert len(np.unique(evening_of(BUSY).at_s // 60)) > 200  # of the 240 minutes


def test_krx_s_after_market_trades_stocks_under_measures_unless_switched() -> None:
    """A stock under 투자경고 or 투자위험 trades in KRX's after-market as the observer believes
    (no rule of KRX's names one); ``krx_after_market_measures`` off, it does not (Nextrade's
    measures), and the others trade as before."""
    market = Market(11, TradingCalendar())
    stocks = sorted(s for s, x in market.listings.items() if x.group == "ST")
    warned = [s for s in stocks if NXT_AFTER_MARKET_EXCLUDES & set(market.listings[s].measures)]
    assert warned, "the market lists a stock under a measure"
    other = Market(11, TradingCalendar(), krx_after_market_measures=False)
    for symbol in warned:
        assert market.krx_after_day(symbol, DAY) is not None
        assert other.krx_after_day(symbol, DAY) is None and not other.trades_krx_after(symbol, DAY)
    plain = next(s for s in stocks if not market.listings[s].measures)
    evening, before = other.krx_after_day(plain, DAY), market.krx_after_day(plain, DAY)
    assert evening is not None and before is not None
    assert np.array_equal(evening.at_s, before.at_s) and len(evening.at_s) > 0


def test_no_after_market_before_its_day_for_an_etf_or_switched_off() -> None:
    assert all(MARKET.krx_after_day(s, BEFORE) is None for s in STOCKS)
    assert all(MARKET.krx_after_day(s, DAY) is None for s in ETFS)
    off = Market(31, TradingCalendar(), stocks=40, etfs=4, krx_after_market=False)
    assert all(off.krx_after_day(s, DAY) is None for s in STOCKS)
    # the quote after 16:00 is the 15:30 close's, as it always was
    for market, day in ((MARKET, BEFORE), (off, DAY)):
        evening = quote_at(market, BUSY, at(day, 19))
        close = quote_at(market, BUSY, at(day, 15, 31))
        assert evening == close and evening.price == market.day_path(BUSY, day).day_close


def test_the_other_draws_stay_as_they_were() -> None:
    """KRX's bars and ticks and Nextrade's day are the same with the after-market on or off,
    and drawing it first changes none of them."""
    on = Market(31, TradingCalendar(), stocks=40, etfs=4)
    off = Market(31, TradingCalendar(), stocks=40, etfs=4, krx_after_market=False)
    for symbol in (BUSY, NXT, KRX_ONLY):
        assert on.krx_after_day(symbol, DAY) is not None  # drawn first
        assert on.daily_bar(symbol, DAY) == off.daily_bar(symbol, DAY)
        for index in (0, 200, BARS_PER_DAY - 1):
            assert on.ticks(symbol, DAY, index) == off.ticks(symbol, DAY, index)
        a, b = on.nxt_day(symbol, DAY), off.nxt_day(symbol, DAY)
        assert np.array_equal(a.at_s, b.at_s) and np.array_equal(a.price, b.price)
        assert np.array_equal(a.qty, b.qty)
        again, drawn = evening_of(symbol), on.krx_after_day(symbol, DAY)
        assert drawn is not None
        assert np.array_equal(again.at_s, drawn.at_s) and np.array_equal(again.qty, drawn.qty)
    other = Market(32, TradingCalendar(), stocks=40, etfs=4).krx_after_day(BUSY, DAY)
    assert other is not None and not np.array_equal(other.at_s, evening_of(BUSY).at_s)


def test_the_quote_follows_the_after_market() -> None:
    evening = evening_of(BUSY)
    path = MARKET.day_path(BUSY, DAY)
    for hh, mm in ((16, 0), (17, 30), (19, 0), (21, 0)):
        now = at(DAY, hh, mm)
        done = int(np.sum(evening.at_s <= (now - at(DAY, 0)).total_seconds()))
        q = quote_at(MARKET, BUSY, now)
        regular = quote_at(MARKET, BUSY, now, after_market=False)
        assert regular.price == path.day_close and regular.volume == int(path.volume.sum())
        if not done:
            assert q == regular
            continue
        prices, quantities = evening.price[:done], evening.qty[:done]
        assert q.price == int(prices[-1])  # the last trade before it
        assert q.volume == regular.volume + int(quantities.sum())
        assert q.value == regular.value + int((prices * quantities).sum())
        assert q.high == max(regular.high, int(prices.max()))
        assert q.low == min(regular.low, int(prices.min()))
        assert q.open == regular.open and q.prev_close == regular.prev_close
        last = at(DAY, 0) + timedelta(seconds=int(evening.at_s[done - 1]))
        assert q.last_trade == last
    assert quote_at(MARKET, BUSY, at(DAY, 16)).volume == int(path.volume.sum())


# ------------------------------------------------------------------ real time


@pytest.mark.parametrize("symbol", [BUSY, KRX_ONLY])
def test_krx_s_feed_sends_the_after_market_with_code_3_its_volume_running_on(
    symbol: str,
) -> None:
    sim = simulator(at(DAY, 15, 29))
    records = pushed(sim, "H0STCNT0", symbol, at(DAY, 15, 29), at(DAY, 20, 1))
    evening = evening_of(symbol)
    late = [r.split("^") for r in records if second_of(r) >= OPENS]
    regular = [r.split("^") for r in records if second_of(r) < OPENS]
    assert len(late) == len(evening.at_s)
    assert all(OPENS <= second_of("^".join(f)) < CLOSES for f in late)
    assert {f[TRADE_CODE] for f in late} == {"3"} and {f[TRADE_CODE] for f in regular} == {"2"}
    assert [int(f[CNTG_VOL]) for f in late] == evening.qty.tolist()
    day_volume = int(MARKET.day_path(symbol, DAY).volume.sum())
    assert int(regular[-1][ACML_VOL]) == day_volume  # the 15:30 match's record
    previous = day_volume
    for fields in late:
        assert int(fields[ACML_VOL]) == previous + int(fields[CNTG_VOL])
        previous = int(fields[ACML_VOL])
    # a registration in the evening starts from the quote then, and runs on the same way
    later = pushed(sim, "H0STCNT0", symbol, at(DAY, 18), at(DAY, 20, 1))
    assert len(later) == int(np.sum(evening.at_s > 18 * 3600))
    assert [r.split("^")[ACML_VOL] for r in later] == [f[ACML_VOL] for f in late[-len(later) :]]
    books = pushed(sim, "H0STASP0", symbol, at(DAY, 15, 59), at(DAY, 20, 1))
    assert len(books) == len(evening.at_s)
    assert {b.split("^")[BOOK_CODE] for b in books} == {"3"}
    assert pushed(sim, "H0STPGM0", symbol, at(DAY, 15, 59), at(DAY, 20, 1)) == []


def test_krx_s_feed_is_silent_after_15_30_switched_off_before_its_day_and_for_an_etf() -> None:
    off = simulator(at(DAY, 15, 59), krx_after_market=False)
    assert pushed(off, "H0STCNT0", BUSY, at(DAY, 15, 31), at(DAY, 20, 1)) == []
    on = simulator(at(BEFORE, 15, 59))
    assert pushed(on, "H0STCNT0", BUSY, at(BEFORE, 15, 31), at(BEFORE, 20, 1)) == []
    on = simulator(at(DAY, 15, 59))
    assert pushed(on, "H0STCNT0", ETFS[0], at(DAY, 15, 31), at(DAY, 20, 1)) == []


def test_the_after_market_honours_halts_quiet_minutes_and_tick_loss() -> None:
    sim = simulator(at(DAY, 15, 59))
    evening = evening_of(BUSY)
    minute_of = (evening.at_s // 60).astype(int)
    quiet = int(minute_of[minute_of >= 16 * 60 + 45][0])  # a minute with trades
    halted = (evening.at_s >= 17 * 3600) & (evening.at_s < 17 * 3600 + 1800)
    assert np.any(halted)
    sim.faults.halts[BUSY] = (ns(at(DAY, 17)), ns(at(DAY, 17, 30)))
    sim.faults.no_trades[BUSY] = {f"{quiet // 60:02d}{quiet % 60:02d}"}
    sim.faults.tick_loss.append(TickLoss(ns(at(DAY, 18)), ns(at(DAY, 19)), 0.5))
    records = [r.split("^") for r in pushed(sim, "H0STCNT0", BUSY, at(DAY, 16), at(DAY, 20, 1))]
    seconds = [second_of("^".join(f)) for f in records]
    assert not [s for s in seconds if 17 * 3600 <= s < 17 * 3600 + 1800]  # halted
    assert not [s for s in seconds if s // 60 == quiet]  # no trade in the quiet minute
    lost = sim.realtime.records_withheld[BUSY]
    in_loss = int(np.sum((evening.at_s >= 18 * 3600) & (evening.at_s < 19 * 3600)))
    assert 0 < lost < in_loss  # about half of the hour's records withheld ...
    sent_in_loss = sum(18 * 3600 <= s < 19 * 3600 for s in seconds)
    assert sent_in_loss + lost == in_loss
    # ... and still counted: a record's ACML_VOL is its predecessor's, its own quantity and
    # the withheld ones' between them
    jumps = sum(
        int(b[ACML_VOL]) - int(a[ACML_VOL]) != int(b[CNTG_VOL])
        for a, b in itertools.pairwise(records)
    )
    assert jumps > 0
    traded = ~halted & (minute_of != quiet)
    day_volume = int(MARKET.day_path(BUSY, DAY).volume.sum())
    assert int(records[-1][ACML_VOL]) == day_volume + int(evening.qty[traded].sum())


def test_the_combined_feed_holds_krx_s_after_market_in_time_order_with_code_3() -> None:
    sim = simulator(at(DAY, 15, 59))
    faults = sim.faults
    for symbol in (NXT, KRX_ONLY):
        nxt = MARKET.nxt_day(symbol, DAY)
        listed = symbol in MARKET.nxt_eligible(DAY)
        for minute in range(OPENS // 60, CLOSES // 60, 7):
            both = venue_trades(MARKET, faults, symbol, DAY, minute, combined=True)
            krx = krx_after_trades(MARKET, faults, symbol, DAY, minute)
            theirs = nxt.minute(minute) if listed else []
            assert both == sorted(krx + theirs, key=lambda t: t[0])
            old = venue_trades(MARKET, faults, symbol, DAY, minute, True, krx_after_market=False)
            assert old == theirs
        records = pushed(sim, "H0UNCNT0", symbol, at(DAY, 15, 59), at(DAY, 20, 1))
        late = [r.split("^") for r in records if second_of(r) >= OPENS]
        evening = evening_of(symbol)
        nxt_late = int(np.sum(nxt.at_s >= OPENS)) if listed else 0
        assert len(late) == len(evening.at_s) + nxt_late
        assert {f[TRADE_CODE] for f in late} == {"3"}
        assert [second_of("^".join(f)) for f in late] == sorted(
            second_of("^".join(f)) for f in late
        )
        for a, b in itertools.pairwise(late):
            assert int(b[ACML_VOL]) == int(a[ACML_VOL]) + int(b[CNTG_VOL])
    off = simulator(at(DAY, 15, 59), krx_after_market=False)
    records = pushed(off, "H0UNCNT0", KRX_ONLY, at(DAY, 15, 59), at(DAY, 20, 1))
    assert records == []  # a name Nextrade does not list: nothing after KRX's close


def test_a_real_session_on_loopback_pushes_the_evening_with_code_3() -> None:
    """A WebSocket registration of KRX's trades at 15:59:50, the clock at 120x: the evening's
    records arrive coded "3", in the evening's order, their ACML_VOL running on from the day's.

    Which evening trade comes first depends on how soon the registration lands on a busy
    machine (trades before it are not pushed), so the run is located by its ACML_VOL.
    """
    start = at(DAY, 15, 59, 50)
    day_volume = int(MARKET.day_path(BUSY, DAY).volume.sum())
    evening = evening_of(BUSY)

    async def scenario() -> list[list[str]]:
        sim = Simulator(MARKET, SimulatedClock(ns(start), 120.0), SimConfig())
        runner = web.AppRunner(sim.app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        fields: list[list[str]] = []
        try:
            async with aiohttp.ClientSession() as session:
                body = {"grant_type": "client_credentials", "appkey": "k", "secretkey": "s"}
                async with session.post(url + "/oauth2/Approval", json=body) as response:
                    key = (await response.json())["approval_key"]
                async with session.ws_connect(url + "/tryitout") as ws:
                    header = {"approval_key": key, "tr_type": "1", "custtype": "P"}
                    data = {"tr_id": "H0STCNT0", "tr_key": BUSY}
                    await ws.send_json({"header": header, "body": {"input": data}})
                    while len(fields) < 5:
                        message = await asyncio.wait_for(ws.receive(), 60)
                        assert message.type == aiohttp.WSMsgType.TEXT, message
                        if not message.data.startswith("0|H0STCNT0|"):
                            continue  # the registration's answer, a PINGPONG
                        _, _, count, payload = message.data.split("|", 3)
                        values = payload.split("^")
                        width = len(values) // int(count)
                        fields += [values[i : i + width] for i in range(0, len(values), width)]
        finally:
            await runner.cleanup()
        return fields

    fields = asyncio.run(scenario())
    assert [f[TRADE_CODE] for f in fields] == ["3"] * len(fields)
    running = (day_volume + np.cumsum(evening.qty)).tolist()
    first = running.index(int(fields[0][ACML_VOL]))  # ValueError: not an evening trade's total
    assert [int(f[CNTG_VOL]) for f in fields[:5]] == evening.qty[first : first + 5].tolist()
    assert [int(f[ACML_VOL]) for f in fields[:5]] == running[first : first + 5]


# ------------------------------------------------------------------ REST


def test_the_current_price_follows_the_after_market_to_the_next_morning() -> None:
    evening = evening_of(BUSY)
    sim = simulator(at(DAY, 19))
    output = answer(sim.inquire_price({"FID_INPUT_ISCD": BUSY}))["output"]
    q = quote_at(MARKET, BUSY, at(DAY, 19))
    assert output["stck_prpr"] == str(q.price) and output["acml_vol"] == str(q.volume)
    assert q.price == int(evening.price[int(np.sum(evening.at_s <= 19 * 3600)) - 1])
    next_morning = MARKET.calendar.next_session(DAY)
    sim = simulator(at(next_morning, 8))
    output = answer(sim.inquire_price({"FID_INPUT_ISCD": BUSY}))["output"]
    assert output["stck_prpr"] == str(int(evening.price[-1]))  # the last session's last trade
    day_volume = int(MARKET.day_path(BUSY, DAY).volume.sum())
    assert output["acml_vol"] == str(day_volume + int(evening.qty.sum()))
    sim = simulator(at(DAY, 19), krx_after_market=False)
    output = answer(sim.inquire_price({"FID_INPUT_ISCD": BUSY}))["output"]
    assert output["stck_prpr"] == str(MARKET.day_path(BUSY, DAY).day_close)


def test_the_daily_bar_counts_the_after_market_its_close_the_15_30_match() -> None:
    query = {"FID_INPUT_ISCD": BUSY, "FID_INPUT_DATE_1": "20260901", "FID_INPUT_DATE_2": "20261231"}
    evening = evening_of(BUSY)
    path = MARKET.day_path(BUSY, DAY)
    by_switch = {}
    for switch in (True, False):
        sim = simulator(at(DAY, 18, 10), krx_after_market=switch)
        by_switch[switch] = {
            row["stck_bsop_date"]: row for row in answer(sim.daily_chart(query))["output2"]
        }
    today, old = by_switch[True]["20261120"], by_switch[False]["20261120"]
    done = int(np.sum(evening.at_s <= 18 * 3600 + 600))
    assert today["stck_clpr"] == old["stck_clpr"] == str(path.day_close)
    assert int(old["acml_vol"]) == int(path.volume.sum())
    assert int(today["acml_vol"]) == int(path.volume.sum()) + int(evening.qty[:done].sum())
    # a past day's bar holds its whole after-market; one before its start none
    for day in (date(2026, 11, 19), KRX_AFTER_MARKET_FROM, BEFORE):
        bar = MARKET.daily_bar(BUSY, day)
        past = MARKET.krx_after_day(BUSY, day)
        extra = 0 if past is None else int(past.qty.sum())
        assert (past is None) == (day == BEFORE)
        row = by_switch[True][day.strftime("%Y%m%d")]
        assert row["stck_clpr"] == str(bar.close)
        assert int(row["acml_vol"]) == bar.volume + extra
        assert by_switch[False][day.strftime("%Y%m%d")]["acml_vol"] == str(bar.volume)


def test_a_past_evening_s_bar_is_drawn_once_however_many_charts_ask_it() -> None:
    """A daily chart sums each past day's evening (`Market.krx_after_bar`); a second chart
    asked after more evenings than the drawn trades' cache holds (1,024) draws none again
    (each draw, some 0.7 ms, was repeated for every chart: a universe build asks 300 names'
    charts, and the module's other builds asked them again)."""
    market = Market(31, TradingCalendar(), stocks=40, etfs=4)
    days = market.calendar.sessions_before(DAY, 30)
    keys = [(s, d) for s in STOCKS for d in days if d >= KRX_AFTER_MARKET_FROM]
    assert len(keys) > 1_024
    draws = Market._krx_after_day.cache_info  # one cache for every market: count its misses
    before = draws().misses
    first = [market.krx_after_bar(s, d) for s, d in keys]
    assert draws().misses - before == len(keys)
    assert [market.krx_after_bar(s, d) for s, d in keys] == first
    assert draws().misses - before == len(keys)


def minute_rows(sim: Simulator, symbol: str, venue: str = "J") -> list[dict[str, str]]:
    query = {"FID_INPUT_ISCD": symbol, "FID_INPUT_HOUR_1": "200000"}
    query["FID_COND_MRKT_DIV_CODE"] = venue
    rows: list[dict[str, str]] = answer(sim.minute_bars_today(query))["output2"]
    return rows


def test_krx_s_minute_bars_of_the_evening_follow_their_switch() -> None:
    evening = evening_of(BUSY)
    sim = simulator(at(DAY, 20, 30))
    rows = minute_rows(sim, BUSY)
    assert len(rows) == 30  # the newest 30: all in the evening
    minute_of = (evening.at_s // 60).astype(int)
    regular = bars_value(MARKET.day_path(BUSY, DAY), BARS_PER_DAY)
    for row in rows:
        minute = int(row["stck_cntg_hour"][:2]) * 60 + int(row["stck_cntg_hour"][2:4])
        assert OPENS // 60 <= minute < CLOSES // 60
        mine = minute_of == minute
        assert int(row["cntg_vol"]) == int(evening.qty[mine].sum())
        assert row["stck_prpr"] == str(int(evening.price[mine][-1]))
        assert row["stck_hgpr"] == str(int(evening.price[mine].max()))
        value = (evening.price * evening.qty)[minute_of <= minute].sum()
        assert int(row["acml_tr_pbmn"]) == regular + int(value)
    assert rows[0]["stck_cntg_hour"] == f"{int(minute_of[-1]) // 60:02d}{minute_of[-1] % 60:02d}00"
    # past 19:00 asked: the bars before it, newest first
    earlier = answer(sim.minute_bars_today({"FID_INPUT_ISCD": BUSY, "FID_INPUT_HOUR_1": "190000"}))[
        "output2"
    ]
    assert earlier[0]["stck_cntg_hour"] <= "190000" and earlier[0]["stck_cntg_hour"] >= "180000"
    # a past day's bars too (FHKST03010230)
    past = answer(
        sim.minute_bars_past(
            {"FID_INPUT_ISCD": BUSY, "FID_INPUT_DATE_1": "20261119", "FID_INPUT_HOUR_1": "200000"}
        )
    )["output2"]
    assert "160000" <= past[0]["stck_cntg_hour"] < "200000"
    # the unconfirmed other way: KRX's minute bars end at 15:30, in J and in UN's KRX part
    sim.config.krx_after_market_bars = False
    assert minute_rows(sim, BUSY)[0]["stck_cntg_hour"] == "153000"
    assert minute_rows(sim, KRX_ONLY, "UN")[0]["stck_cntg_hour"] == "153000"
    sim.config.krx_after_market_bars = True
    assert minute_rows(sim, KRX_ONLY, "UN")[0]["stck_cntg_hour"] >= "160000"
    sim.config.krx_after_market = False  # no after-market, no bars of it
    assert minute_rows(sim, BUSY)[0]["stck_cntg_hour"] == "153000"


def test_minute_bars_before_the_after_market_s_day_end_at_15_30() -> None:
    sim = simulator(at(BEFORE, 20, 30))
    assert minute_rows(sim, BUSY)[0]["stck_cntg_hour"] == "153000"
    sim = simulator(at(DAY, 20, 30))
    assert minute_rows(sim, ETFS[0])[0]["stck_cntg_hour"] == "153000"
