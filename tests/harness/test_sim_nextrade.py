"""The simulator's Nextrade day: its trades drawn at once for a day, within its sessions and
bounds (the venues' table's), and the same trades whichever way they are read (a minute's
feed, a quote's prefix)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.hours import (
    AFTER_AUCTION,
    CLOSING_PRICE_SPAN,
    KRX_AFTER_SPAN,
    NXT_SPANS,
    ORDINARY,
)
from harness.sim.market import Market
from harness.sim.nextrade import MAIN_SHARE, NXT_AFTER_MARKET_EXCLUDES, draw_nxt_day, span_at
from harness.sim.paths import BARS_PER_DAY
from harness.sim.price_units import tick_size
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.calendar.venues import venues_from

KRX_OPEN_S = 9 * 3600


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    level=st.integers(1_000, 900_000),
    busy=st.integers(0, 40),
    close_units=st.integers(-20, 20),
)
def test_a_day_s_trades_keep_to_nextrade_s_sessions_and_bounds(
    seed: int, level: int, busy: int, close_units: int
) -> None:
    rng = np.random.default_rng(seed)
    unit = tick_size(level)
    trades = rng.integers(0, busy + 1, BARS_PER_DAY)
    volume = trades * rng.integers(1, 500, BARS_PER_DAY)
    low = np.full(BARS_PER_DAY, level - 2 * unit)
    high = np.full(BARS_PER_DAY, level + 2 * unit)
    day_close = level + close_units * unit
    day = draw_nxt_day(rng, ORDINARY, trades, volume, low, high, level, day_close)
    assert len(day.at_s) == len(day.price) == len(day.qty)
    assert np.all(np.diff(day.at_s) >= 0) and np.all(day.qty >= 1)
    for at_s, price in zip(day.at_s.tolist(), day.price.tolist(), strict=True):
        span = span_at(at_s)
        assert span is not None, at_s  # never in Nextrade's breaks
        index = int(at_s // 60) - KRX_OPEN_S // 60
        if span.market_code == "2":  # its main session: within KRX's bar of the minute
            assert low[index] <= price <= high[index]
        else:  # around the previous close before KRX opens, the day's close after
            reference = level if at_s < KRX_OPEN_S else day_close
            assert abs(price - reference) <= 3 * tick_size(reference)
    # the after-market's opening auction trades nothing: its orders match at its end, once
    start, end = AFTER_AUCTION
    assert not np.any((day.at_s >= start) & (day.at_s < end))
    matched = day.auction_match(AFTER_AUCTION[1])
    assert int(np.sum(day.at_s == end)) == (matched is not None)
    # a main-session minute never trades more often than KRX's bar of the minute
    main = day.at_s[(day.at_s >= NXT_SPANS[1].start_s) & (day.at_s < NXT_SPANS[1].end_s)]
    per_minute = np.bincount((main // 60).astype(int) - KRX_OPEN_S // 60, minlength=BARS_PER_DAY)
    assert np.all(per_minute <= trades)
    # read a minute at a time, the trades are the day's, in order
    minutes = range(NXT_SPANS[0].start_s // 60, NXT_SPANS[-1].end_s // 60)
    read = [(m * 60 + s, p, q) for m in minutes for s, p, q in day.minute(m)]
    assert [(p, q) for _, p, q in read] == list(
        zip(day.price.tolist(), day.qty.tolist(), strict=True)
    )
    assert np.allclose([at for at, _, _ in read], day.at_s)
    # a quote's prefix: the trades done by an instant, inclusive
    if len(day.at_s):
        middle = float(day.at_s[len(day.at_s) // 2])
        assert day.until(middle) == int(np.sum(day.at_s <= middle))


def test_the_main_session_trades_about_its_share_of_krx_s() -> None:
    rng = np.random.default_rng(7)
    trades = np.full(BARS_PER_DAY, 50)
    volume, low, high = trades * 100, np.full(BARS_PER_DAY, 9_990), np.full(BARS_PER_DAY, 10_010)
    day = draw_nxt_day(rng, ORDINARY, trades, volume, low, high, 10_000, 10_000)
    main = np.sum((day.at_s >= NXT_SPANS[1].start_s) & (day.at_s < NXT_SPANS[1].end_s))
    expected = MAIN_SHARE * 50 * (NXT_SPANS[1].end_s - NXT_SPANS[1].start_s) / 60
    assert abs(main - expected) < 0.05 * expected


_CODES = {"pre_market": "1", "regular": "2", "opening_auction": "3", "after_market": "3"}
_VENUES = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))


def test_the_simulator_s_sessions_are_the_venues_table_s() -> None:
    """On an ordinary day (a Friday of the 2026-09 regime), at every half minute and the
    second before it (the table's hours fall on half minutes), the simulator's Nextrade
    session (its records' MARKET_CLS_CODE), KRX's after-market and Nextrade's 종가매매 are
    those the venues' table gives the clock: the simulator reads the table."""
    midnight = datetime(2026, 11, 20, tzinfo=KST)
    for second in sorted({s + d for s in range(30, 86_400, 30) for d in (-1, 0)}):
        instant = midnight + timedelta(seconds=second)
        span = span_at(second)
        code = _CODES.get(_VENUES.session_at("NXT", instant), "")
        assert (span.market_code if span else "") == code, instant
        in_after = KRX_AFTER_SPAN.start_s <= second < KRX_AFTER_SPAN.end_s
        assert in_after == (_VENUES.session_at("KRX", instant) == "after_market"), instant
        closing = CLOSING_PRICE_SPAN.start_s <= second < CLOSING_PRICE_SPAN.end_s
        beside = _VENUES.beside_of_ns("NXT", int(instant.timestamp()) * 1_000_000_000)
        assert closing == ("off_hours_close" in beside), instant


def test_nextrade_s_after_market_trades_no_stock_under_a_measure_it_excludes() -> None:
    """A Nextrade stock under 투자경고 or 투자위험 trades in its main session and not from the
    after-market's orders (15:30) on, as Nextrade's rules say; with the switch the other way
    (``nxt_after_market_measures``) it trades there like any other."""
    day = date(2026, 11, 20)
    market = Market(11, TradingCalendar())
    listed = market.nxt_eligible(day)
    warned = sorted(
        s for s in listed if NXT_AFTER_MARKET_EXCLUDES & set(market.listings[s].measures)
    )
    assert warned, "the market lists a Nextrade stock under a measure"
    other = Market(11, TradingCalendar(), nxt_after_market_measures=True)
    for symbol in warned:
        drawn = market.nxt_day(symbol, day)
        assert len(drawn.at_s) > 0 and int(drawn.at_s.max()) < ORDINARY.nxt_after_from_s
        assert int(other.nxt_day(symbol, day).at_s.max()) >= ORDINARY.nxt_after_from_s
    plain = next(s for s in sorted(listed) if not market.listings[s].measures)
    assert int(market.nxt_day(plain, day).at_s.max()) >= ORDINARY.nxt_after_from_s
