"""The simulator's days of other hours, read from the observer's table (`harness.sim.hours`).

The year's first session (2027-01-04) opens at 10:00 and closes at 15:30: KRX trades nothing
before its 10:00 match, its morning auction and status records move an hour, and Nextrade has
no pre-market and opens its main session at 10:00:30. The CSAT day, whose close moves too, is
drawn at an ordinary day's hours, and the demo refuses to run it. Switched off
(`Market(late_days=False)`), every day is an ordinary one: the other way, for a test of the
observer against a market that kept its hours.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from harness.demo import DemoError, DemoOptions, default_day, run_demo
from harness.sim.config import Faults, SimConfig
from harness.sim.hours import krx_day
from harness.sim.market import BARS_PER_DAY, KST, Market, quote_at
from harness.sim.market_status import status_records
from harness.sim.nextrade import NXT_SPANS, nxt_spans
from harness.sim.paths import draw_paths
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.calendar.venues import venues_from
from tests.sim.test_krx_after_market import HOUR, ns, pushed

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
    assert krx_day(FIRST).first == 60 and krx_day(FIRST).as_table
    seconds = [(s.start_s, s.end_s) for s in nxt_spans(FIRST)]
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
    assert ORDINARY.nxt_spans(FIRST) == NXT_SPANS
    assert (ORDINARY.nxt_day(NEXTRADE[0], FIRST).at_s < 8 * 3600 + 50 * 60).any()
    assert quote_at(ORDINARY, symbol, at(FIRST, "09:30")).volume > 0


def test_the_csat_day_is_drawn_at_ordinary_hours_and_the_demo_refuses_it() -> None:
    assert not krx_day(CSAT).as_table and nxt_spans(CSAT) == NXT_SPANS
    assert MARKET.day_path(STOCKS[0], CSAT).first == 0
    calendar = TradingCalendar()
    assert default_day(calendar, CSAT) == CSAT - timedelta(days=1)
    assert default_day(calendar, FIRST + timedelta(days=1)) == FIRST + timedelta(days=1)
    with pytest.raises(DemoError, match="2026-11-19 closes late"):
        run_demo(DemoOptions(day=CSAT), lambda state: None)
