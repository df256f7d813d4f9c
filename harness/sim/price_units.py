"""KRX's price units (tick sizes) and rounding to them."""

from __future__ import annotations

from datetime import date

import numpy as np

__all__ = [
    "MID_POINTS_FROM",
    "mid_points",
    "price_limits",
    "round_tick",
    "round_ticks",
    "tick_size",
]

# Mid-point orders trade on KRX (and Nextrade, which opened that day) from 2025-03-04: at
# the average of the best bid and ask with the fraction dropped, between two ticks.
MID_POINTS_FROM = date(2025, 3, 4)


def tick_size(price: int) -> int:
    """KRX price unit for a stock at ``price`` KRW (2023 rules)."""
    for limit, unit in (
        (2000, 1),
        (5000, 5),
        (20000, 10),
        (50000, 50),
        (200000, 100),
        (500000, 500),
    ):
        if price < limit:
            return unit
    return 1000


def price_limits(prev_close: int) -> tuple[int, int]:
    """The day's (lower, upper) price limits: 30 % either side, down to the price unit."""
    return _limit(prev_close, 0.7), _limit(prev_close, 1.3)


def _limit(prev_close: int, factor: float) -> int:
    unit = tick_size(int(prev_close * factor))
    return int(prev_close * factor) // unit * unit


def round_tick(price: float) -> int:
    """``price`` rounded to its tick (half to even), never below one tick."""
    unit = tick_size(int(price))
    return max(unit, round(price / unit) * unit)


_TICK_LIMITS = np.array([2000, 5000, 20000, 50000, 200000, 500000])
_TICK_UNITS = np.array([1, 5, 10, 50, 100, 500, 1000])


def round_ticks(prices: np.ndarray) -> np.ndarray:
    """`round_tick` of every price, vectorised (the same half-to-even rounding)."""
    units = _TICK_UNITS[np.searchsorted(_TICK_LIMITS, prices.astype(np.int64), side="right")]
    rounded: np.ndarray = np.maximum(units, np.round(prices / units) * units).astype(np.int64)
    return rounded


def mid_points(
    prices: np.ndarray, ceiling: np.ndarray, drawn: np.ndarray, share: float
) -> np.ndarray:
    """``prices`` (on the grid), some printed as mid-points: half a tick above, fraction dropped.

    A price moves where its draw in ``drawn`` (uniform in [0, 1)) is below ``share``, its
    tick is 5 or more (a mid-point of a 1-won tick is on the grid) and the tick above it is
    within ``ceiling``: the trade stays inside the bar's (or the band's) high.
    """
    units = _TICK_UNITS[np.searchsorted(_TICK_LIMITS, prices, side="right")]
    moved = (drawn < share) & (units >= 5) & (prices + units <= ceiling)
    shifted: np.ndarray = np.where(moved, prices + units // 2, prices).astype(np.int64)
    return shifted
