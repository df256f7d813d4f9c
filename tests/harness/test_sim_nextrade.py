"""The simulator's Nextrade day: its trades drawn at once for a day, within its sessions and
bounds, and the same trades whichever way they are read (a minute's feed, a quote's prefix)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.nextrade import AFTER_AUCTION, MAIN_SHARE, NXT_SPANS, draw_nxt_day, span_at
from harness.sim.paths import BARS_PER_DAY
from harness.sim.price_units import tick_size

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
    day = draw_nxt_day(rng, trades, volume, low, high, level, day_close)
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
    matched = day.auction_match()
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
    day = draw_nxt_day(rng, trades, volume, low, high, 10_000, 10_000)
    main = np.sum((day.at_s >= NXT_SPANS[1].start_s) & (day.at_s < NXT_SPANS[1].end_s))
    expected = MAIN_SHARE * 50 * (NXT_SPANS[1].end_s - NXT_SPANS[1].start_s) / 60
    assert abs(main - expected) < 0.05 * expected
