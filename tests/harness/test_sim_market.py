"""The synthetic market is deterministic and internally consistent."""

from __future__ import annotations

import functools
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.market import BARS_PER_DAY, Market, bar_value, bars_value, tick_size
from harness.sim.paths import CLOSING_AUCTION_FROM
from observer.calendar.trading import TradingCalendar

DAY = date(2026, 11, 20)


@functools.cache
def market(seed: int = 7) -> Market:
    return Market(seed, TradingCalendar())


def test_listings_follow_the_seed_and_the_product_shape() -> None:
    m = market()
    stocks = [x for x in m.listings.values() if x.group == "ST"]
    etfs = [x for x in m.listings.values() if x.group == "EF"]
    assert (len(stocks), len(etfs)) == (2500, 1000)
    assert {x.market for x in stocks} == {"KOSPI", "KOSDAQ", "KONEX"}
    lettered = sum(not x.symbol.isdigit() for x in etfs)
    assert 100 < lettered < 260  # about 17%, like the KRX list
    assert len({x.name for x in m.listings.values()}) == len(m.listings)
    assert {k: len(v) for k, v in m.overseas.items()}["nas"] == 3813
    assert any(x.suspended for x in stocks) and any(x.administrative for x in stocks)
    again = Market(7, TradingCalendar())
    assert again.listings == m.listings
    assert Market(8, TradingCalendar()).listings != m.listings


def test_overseas_listings_are_unique_shaped_as_their_exchange_and_follow_the_seed() -> None:
    m = market()
    counts = {stem: len(rows) for stem, rows in m.overseas.items()}
    assert counts["nas"] == 3813 and counts["nys"] == 2453 and len(counts) == 11
    every = [x for rows in m.overseas.values() for x in rows]
    assert len({x.symbol for x in every}) == len(every)  # unique across the files
    for x in every:
        if x.currency == "USD":
            assert 1 <= len(x.symbol) <= 5 and x.symbol.isalpha() and x.symbol.isupper()
        else:
            assert len(x.symbol) == 6 and x.symbol.isdigit()
        assert x.security_type == "1" if x.stem in ("shi", "szi") else x.security_type in ("2", "3")
    etps = sum(x.security_type == "3" for x in m.overseas["nas"]) / counts["nas"]
    assert 0.07 < etps < 0.13  # about a tenth
    assert Market(7, TradingCalendar()).overseas == m.overseas
    assert Market(8, TradingCalendar()).overseas["nas"] != m.overseas["nas"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3499), st.integers(0, BARS_PER_DAY - 1))
def test_ticks_reproduce_their_bar(n: int, index: int) -> None:
    m = market()
    symbol = list(m.listings)[n]
    path = m.day_path(symbol, DAY)
    ticks = m.ticks(symbol, DAY, index)
    prices = [t.price for t in ticks]
    assert len(ticks) == path.trades[index]
    if CLOSING_AUCTION_FROM <= index < BARS_PER_DAY - 1:  # KRX's closing auction: no trade
        assert not ticks and path.volume[index] == 0
        assert path.close[index] == path.close[CLOSING_AUCTION_FROM - 1]
        return
    if index == BARS_PER_DAY - 1:  # its match: one trade, at 15:30:00, of the auction's orders
        assert [(t.second, t.price) for t in ticks] == [(0.0, path.day_close)]
    assert (prices[0], prices[-1]) == (path.open[index], path.close[index])
    assert (max(prices), min(prices)) == (path.high[index], path.low[index])
    assert sum(t.qty for t in ticks) == path.volume[index]
    # On the grid, or a mid-point: half a tick above a price of it, below the bar's high
    off = [p for p in prices if p % tick_size(p)]
    assert all((p - tick_size(p) // 2) % tick_size(p) == 0 for p in off)
    assert all(p < path.high[index] for p in off)
    seconds = [t.second for t in ticks]
    assert seconds == sorted(seconds) and seconds[0] >= 0 and seconds[-1] < 60


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3499), st.integers(-1, BARS_PER_DAY))
def test_the_value_of_the_first_bars_is_their_values_summed(n: int, count: int) -> None:
    path = market().day_path(list(market().listings)[n], DAY)
    assert bars_value(path, count) == sum(bar_value(path, i) for i in range(count))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3499))
def test_days_chain_close_to_close(n: int) -> None:
    m = market()
    symbol = list(m.listings)[n]
    previous = m.calendar.previous_session(DAY)
    path = m.day_path(symbol, DAY)
    assert path.prev_close == m.close(symbol, previous) == m.day_path(symbol, previous).day_close
    assert path.day_close == m.close(symbol, DAY)
    assert (path.low <= path.open).all() and (path.open <= path.high).all()
    assert (path.low <= path.close).all() and (path.close <= path.high).all()


def test_some_days_carry_events_that_make_triggers_fire() -> None:
    m = market()
    ratios = []
    for symbol in list(m.listings)[:400]:
        volume = m.day_path(symbol, DAY).volume
        ratios.append(volume[30:380].max() / max(1.0, float(volume[30:380].mean())))
    ratios.sort()
    assert ratios[len(ratios) // 2] < 5  # an ordinary day's busiest minute
    assert sum(r > 10 for r in ratios) >= 3  # surges exist, and are rare


def test_a_day_prints_mid_points_on_both_venues_and_the_switch_turns_them_off() -> None:
    """2 % of the trades between two ticks by default; none with ``mid_points=0``, nor before
    mid-point orders existed (2025-03-04); the grid's trades the same either way."""
    on, off = market(), Market(7, TradingCalendar(), mid_points=0.0)
    symbol = "005930"  # a busy name: its bars have trades between their extremes
    krx = [t.price for i in range(BARS_PER_DAY) for t in on.ticks(symbol, DAY, i)]
    plain = [t.price for i in range(BARS_PER_DAY) for t in off.ticks(symbol, DAY, i)]
    nxt = on.nxt_day(symbol, DAY).price.tolist()
    nxt_plain = off.nxt_day(symbol, DAY).price.tolist()
    for prices, grid in ((krx, plain), (nxt, nxt_plain)):
        between = sum(p % tick_size(p) != 0 for p in prices)
        assert 0.005 * len(prices) < between < 0.04 * len(prices), (between, len(prices))
        assert not any(p % tick_size(p) for p in grid)
        assert all(p == g or p - g == tick_size(g) // 2 for p, g in zip(prices, grid, strict=True))
    no_mid_points = date(2025, 2, 28)  # a day before mid-point orders existed
    assert not any(
        t.price % tick_size(t.price) for i in range(60) for t in on.ticks(symbol, no_mid_points, i)
    )
