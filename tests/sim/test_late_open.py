"""The simulator's days of other hours, read from the observer's table (`harness.sim.hours`).

The year's first session (2027-01-04) opens at 10:00 and closes at 15:30: KRX trades nothing
before its 10:00 match, its morning auction and status records move an hour, and Nextrade has
no pre-market and opens its main session at 10:00:30. The CSAT day (2026-11-19) moves KRX's
whole regular day an hour (10:00-16:30: its bars, auctions, status records and REST answers),
its after-market to 17:00-20:00, and Nextrade keeps its own sessions that day (no pre-market,
10:00:30-16:20, its after-market's auction 16:30-16:40, 종가매매 16:30-17:00). Switched off
(`Market(late_days=False)`), every day is an ordinary one: the other way, for a test of the
observer against a market that kept its hours.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np

from harness.demo import default_day
from harness.sim.config import Faults, SimConfig
from harness.sim.hours import NXT_SPANS, day_hours
from harness.sim.market import BARS_PER_DAY, KST, Market, quote_at
from harness.sim.market_status import status_records
from harness.sim.nextrade import krx_after_trades
from harness.sim.paths import draw_paths
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.calendar.venues import venues_from
from tests.sim.test_krx_after_market import HOUR, TRADE_CODE, ns, pushed

MARKET = Market(31, TradingCalendar(), stocks=40, etfs=4)
ORDINARY = Market(31, TradingCalendar(), stocks=40, etfs=4, late_days=False)
FIRST = date(2027, 1, 4)  # the year's first session: 10:00-15:30
CSAT = date(2026, 11, 19)  # 10:00-16:30
TABLE = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
NEXTRADE = sorted(MARKET.nxt_eligible(FIRST) & set(STOCKS))


def at(day: date, text: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(text), KST)


def opening(venue: str, day: date) -> datetime:
    """When ``venue``'s continuous day opens on ``day``, as the observer's table says."""
    return next(s for s, _, span in TABLE.spans(venue, day) if span.session == "regular")


def test_the_table_s_year_s_first_session_opens_an_hour_late_on_both_venues() -> None:
    assert opening("KRX", FIRST) == at(FIRST, "10:00")
    assert opening("NXT", FIRST) == at(FIRST, "10:00:30")
    assert "pre_market" not in {span.session for _, _, span in TABLE.spans("NXT", FIRST)}
    assert (day_hours(FIRST).first, day_hours(FIRST).shift) == (60, 0)
    seconds = [(s.start_s, s.end_s) for s in day_hours(FIRST).nxt]
    assert seconds[0] == (10 * 3600 + 30, 15 * 3600 + 20 * 60)  # its main session first


def test_krx_trades_nothing_before_the_10_00_match_and_the_rest_of_its_day_is_as_drawn() -> None:
    for symbol in STOCKS:
        path = MARKET.day_path(symbol, FIRST)
        assert path.first == 60 and not path.trades[:60].any() and not path.volume[:60].any()
        assert MARKET.ticks(symbol, FIRST, 59) == ()
        assert MARKET.ticks(symbol, FIRST, 60)[0].second == 0.0  # the opening match
        assert path.day_open == path.open[60] == MARKET.daily_bar(symbol, FIRST).open
        assert MARKET.daily_bar(symbol, FIRST).volume == int(path.volume[60:].sum())
        before = quote_at(MARKET, symbol, at(FIRST, "09:59:59"))
        assert (before.volume, before.price, before.last_trade) == (0, path.prev_close, None)
        opened = quote_at(MARKET, symbol, at(FIRST, "10:00:00"))
        assert opened.volume > 0 and opened.last_trade == at(FIRST, "10:00:00")
    # The bars from the opening on are the ones an ordinary day of the same draw has.
    listing = MARKET.listings[STOCKS[0]]
    args = (listing, [FIRST], [10_000], [10_500], [7])
    late, whole = draw_paths(*args, firsts=[60]), draw_paths(*args)
    for name in ("open", "high", "low", "close", "volume", "trades"):
        assert np.array_equal(getattr(late, name)[:, 60:], getattr(whole, name)[:, 60:]), name
    assert late.close.shape == (1, BARS_PER_DAY)


def test_nextrade_has_no_pre_market_and_opens_at_10_00_30() -> None:
    assert NEXTRADE
    for symbol in NEXTRADE:
        day = MARKET.nxt_day(symbol, FIRST)
        assert day.at_s.min() >= 10 * 3600 + 30
        main = (day.at_s >= 10 * 3600 + 30) & (day.at_s < 15 * 3600 + 20 * 60)
        assert main.sum() > 100
        assert (MARKET.nxt_day(symbol, date(2027, 1, 5)).at_s < 8 * 3600 + 50 * 60).any()


def test_the_feeds_follow_the_day_s_hours() -> None:
    """Trades, the opening auction's expected matches and the session events, on each venue."""
    sim = Simulator(MARKET, ManualClock(ns(at(FIRST, "10:05"))), SimConfig())
    krx, nxt = STOCKS[0], NEXTRADE[0]
    trades = pushed(sim, "H0STCNT0", krx, at(FIRST, "08:00"), at(FIRST, "10:05"))
    assert trades and min(r.split("^")[HOUR] for r in trades) == "100000"
    nxt_trades = pushed(sim, "H0NXCNT0", nxt, at(FIRST, "08:00"), at(FIRST, "10:05"))
    assert nxt_trades and min(r.split("^")[HOUR] for r in nxt_trades) >= "100030"
    expected = pushed(sim, "H0STANC0", krx, at(FIRST, "08:00"), at(FIRST, "10:05"))
    hours = sorted(r.split("^")[HOUR] for r in expected)
    assert hours[0] > "093000" and hours[-1] <= "100000"

    def events(tr_id: str, symbol: str, start: str, end: str) -> list[tuple[str, str]]:
        """(MKOP_CLS_CODE, ANTC_MKOP_CLS_CODE) of the session events in (start, end]."""
        found = status_records(tr_id, symbol, at(FIRST, start), at(FIRST, end), Faults(), MARKET)
        return [(f[3], f[4]) for f in (r.split("^") for r in found)]

    assert events("H0STMKO0", krx, "08:00", "09:29:59") == []
    assert events("H0STMKO0", krx, "09:29:59", "09:59:59") == [("", "311")]
    assert events("H0STMKO0", krx, "09:59:59", "10:00") == [("112", "112")]
    assert events("H0NXMKO0", nxt, "07:00", "10:00:29") == []  # no 130/139: no pre-market
    assert events("H0NXMKO0", nxt, "10:00:29", "10:00:30") == [("112", "")]
    # The minute bars KIS would give at 10:05: from 10:00 alone
    bars = sim.quotes._bar_rows(krx, FIRST, "100500", 100)
    assert bars and min(b["stck_cntg_hour"] for b in bars) == "100000"


def test_switched_off_the_year_s_first_session_is_an_ordinary_day() -> None:
    """The other way: a market that kept its hours (KRX from 09:00, Nextrade's pre-market)."""
    symbol = STOCKS[0]
    path = ORDINARY.day_path(symbol, FIRST)
    assert path.first == 0 and path.trades[:60].all()
    assert ORDINARY.hours(FIRST).nxt == NXT_SPANS
    assert (ORDINARY.nxt_day(NEXTRADE[0], FIRST).at_s < 8 * 3600 + 50 * 60).any()
    assert quote_at(ORDINARY, symbol, at(FIRST, "09:30")).volume > 0


# ------------------------------------------------------------------ the CSAT day

CSAT_NEXTRADE = sorted(MARKET.nxt_eligible(CSAT) & set(STOCKS))
EVENING = sorted(s for s in STOCKS if MARKET.trades_krx_after(s, CSAT))


def test_the_table_s_csat_day_moves_krx_s_whole_day_an_hour_and_the_simulator_s_with_it() -> None:
    """Bar 0 at the table's opening, the last bar's match at its close, the evening after."""
    hours = day_hours(CSAT)
    assert (hours.first, hours.shift, hours.open_minute) == (0, 60, 600)
    spans = {span.session: (s, e) for s, e, span in TABLE.spans("KRX", CSAT)}
    path = MARKET.day_path(STOCKS[0], CSAT)
    assert path.bar_start(0) == spans["regular"][0] == at(CSAT, "10:00")
    assert path.bar_start(BARS_PER_DAY - 1) == spans["closing_auction"][1] == at(CSAT, "16:30")
    assert spans["after_market"] == (at(CSAT, "17:00"), at(CSAT, "20:00"))
    assert (hours.krx_after.start_s, hours.krx_after.end_s) == (17 * 3600, 20 * 3600)
    nxt = {span.session: (s, e) for s, e, span in TABLE.spans("NXT", CSAT)}
    assert "pre_market" not in nxt
    assert [(s.start_s, s.end_s, s.market_code) for s in hours.nxt] == [
        (10 * 3600 + 30, 16 * 3600 + 20 * 60, "2"),
        (16 * 3600 + 30 * 60, 20 * 3600, "3"),
    ]
    assert hours.nxt_auction == (16 * 3600 + 30 * 60, 16 * 3600 + 40 * 60)
    assert (hours.closing_price.start_s, hours.closing_price.end_s) == (59_400, 61_200)
    # the day before is an ordinary one
    assert day_hours(CSAT - timedelta(days=1)) == ORDINARY.hours(CSAT)


def test_on_the_csat_day_krx_trades_10_00_to_16_30_and_its_after_market_from_17_00() -> None:
    sim = Simulator(MARKET, ManualClock(ns(at(CSAT, "20:00"))), SimConfig())
    krx = STOCKS[0]
    path = MARKET.day_path(krx, CSAT)
    before = quote_at(MARKET, krx, at(CSAT, "09:59:59"))
    assert (before.volume, before.price, before.last_trade) == (0, path.prev_close, None)
    opened = quote_at(MARKET, krx, at(CSAT, "10:00:00"))
    assert opened.volume > 0 and opened.last_trade == at(CSAT, "10:00:00")
    closed = quote_at(MARKET, krx, at(CSAT, "16:59:59"), after_market=False)
    assert closed.price == path.day_close and closed.volume == int(path.volume.sum())
    trades = pushed(sim, "H0STCNT0", krx, at(CSAT, "08:00"), at(CSAT, "16:59:59"))
    hours = [r.split("^")[HOUR] for r in trades]
    assert min(hours) == "100000" and max(hours) == "163000"  # the closing match's
    assert sum(int(r.split("^")[12]) for r in trades) == int(path.volume.sum())
    # REST's minute bars agree: 10:00 to the 16:30 match
    bars = sim.quotes._bar_rows(krx, CSAT, "163000", 500)
    stamps = sorted(b["stck_cntg_hour"] for b in bars)
    assert stamps[0] == "100000" and stamps[-1] == "163000"
    # the after-market: from 17:00, its code "3"; nothing between the close and it
    assert EVENING
    evening = [
        r
        for symbol in EVENING[:5]
        for r in pushed(sim, "H0STCNT0", symbol, at(CSAT, "16:30:01"), at(CSAT, "20:00"))
    ]
    assert evening and min(r.split("^")[HOUR] for r in evening) >= "170000"
    assert {r.split("^")[46] for r in evening} == {"3"}
    for symbol in EVENING[:5]:
        drawn = MARKET.krx_after_day(symbol, CSAT)
        assert drawn is not None and drawn.at_s.min() >= 17 * 3600
        assert krx_after_trades(MARKET, Faults(), symbol, CSAT, 16 * 60 + 30) == []


def test_on_the_csat_day_the_auctions_and_session_events_move_an_hour() -> None:
    sim = Simulator(MARKET, ManualClock(ns(at(CSAT, "20:00"))), SimConfig())
    krx = STOCKS[0]
    expected = pushed(sim, "H0STANC0", krx, at(CSAT, "08:00"), at(CSAT, "20:00"))
    hours = sorted(r.split("^")[HOUR] for r in expected)
    morning = [h for h in hours if h <= "100000"]
    closing = [h for h in hours if h > "100000"]
    assert morning[0] > "093000" and morning[-1] <= "100000"
    assert closing[0] > "162000" and closing[-1] < "163000"

    def events(tr_id: str, symbol: str, start: str, end: str) -> list[tuple[str, str]]:
        found = status_records(tr_id, symbol, at(CSAT, start), at(CSAT, end), Faults(), MARKET)
        return [(f[3], f[4]) for f in (r.split("^") for r in found)]

    assert events("H0STMKO0", krx, "08:00", "09:29:59") == []
    assert events("H0STMKO0", krx, "09:29:59", "10:00") == [("", "311"), ("112", "112")]
    assert events("H0STMKO0", krx, "15:00", "16:19:59") == []
    assert events("H0STMKO0", krx, "16:19:59", "16:30") == [("121", "121"), ("129", "129")]


def test_on_the_csat_day_nextrade_keeps_its_own_sessions() -> None:
    """No pre-market, its main session 10:00:30-16:20, its after-market's match at 16:40."""
    assert CSAT_NEXTRADE
    sim = Simulator(MARKET, ManualClock(ns(at(CSAT, "20:00"))), SimConfig())
    for symbol in CSAT_NEXTRADE[:5]:
        day = MARKET.nxt_day(symbol, CSAT)
        assert day.at_s.min() >= 10 * 3600 + 30
        main = (day.at_s >= 10 * 3600 + 30) & (day.at_s < 16 * 3600 + 20 * 60)
        assert main.sum() > 100
        assert not ((day.at_s >= 16 * 3600 + 20 * 60) & (day.at_s < 16 * 3600 + 30 * 60)).any()
        match = MARKET.hours(CSAT).nxt_auction[1]
        assert day.auction_match(match) is not None
        closing = MARKET.nxt_closing_day(symbol, CSAT)
        assert closing is not None and len(closing.at_s)
        assert closing.at_s.min() >= 59_400 and closing.at_s.max() < 61_200
    records = pushed(sim, "H0NXCNT0", CSAT_NEXTRADE[0], at(CSAT, "08:00"), at(CSAT, "20:00"))
    codes = {(r.split("^")[HOUR] < "162000", r.split("^")[TRADE_CODE]) for r in records}
    assert (True, "2") in codes and (False, "3") in codes and (True, "3") not in codes
    assert min(r.split("^")[HOUR] for r in records) >= "100030"


def test_the_demo_runs_the_csat_day_as_its_latest_session() -> None:
    calendar = TradingCalendar()
    assert default_day(calendar, CSAT) == CSAT
    assert default_day(calendar, FIRST + timedelta(days=1)) == FIRST + timedelta(days=1)
