"""KRX's tick grid and the mid-point rule: which trade prices are possible, and why.

Both venues quote stocks on KRX's grid (Nextrade follows KRX's price units). Since
2025-03-04 both also take mid-point orders, which trade at the average of the best bid and
ask with the fraction dropped: a price between two ticks (71,950 where the tick is 100) is
a real trade, not a hostile value (shared/reference/kis-market-2026-09.md §2). So a price
off the grid is classified, never refused (`price_kind`):

* ``on_grid``: a multiple of its tick;
* ``mid_point``: off the grid and within the best bid and ask the trade record quotes (or
  the book is unknown: either side 0);
* ``off_grid``: off the grid and outside that spread: still stored, counted and logged (the
  quoted spread may have moved with the trade itself).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from datetime import date
from typing import Literal

__all__ = [
    "KRX_TICK_SIZES",
    "MID_POINTS_FROM",
    "OFF_GRID",
    "PriceKind",
    "mid_point_of",
    "price_kind",
    "tick_size",
    "tick_sql",
]

PriceKind = Literal["on_grid", "mid_point", "off_grid"]
OFF_GRID: PriceKind = "off_grid"

# KRX's tick sizes for KOSPI and KOSDAQ stocks since 2023-01-25, as [from_price, tick].
KRX_TICK_SIZES: tuple[tuple[int, int], ...] = (
    (0, 1),
    (2_000, 5),
    (5_000, 10),
    (20_000, 50),
    (50_000, 100),
    (200_000, 500),
    (500_000, 1_000),
)
# The first day of mid-point orders on KRX (and Nextrade's first day).
MID_POINTS_FROM = date(2025, 3, 4)


def tick_size(price: int, bands: tuple[tuple[int, int], ...] = KRX_TICK_SIZES) -> int:
    """The tick for ``price`` in ``bands`` ([from_price, tick] ascending from 0); 1 if none."""
    index = bisect_right(bands, (price, float("inf"))) - 1
    return bands[index][1] if index >= 0 else 1


def mid_point_of(bid: int, ask: int) -> int:
    """The price a mid-point order trades at between ``bid`` and ``ask``: the fraction dropped."""
    return (bid + ask) // 2


def price_kind(
    price: int, bid1: int, ask1: int, bands: tuple[tuple[int, int], ...] = KRX_TICK_SIZES
) -> PriceKind:
    """What a trade at ``price`` is, given the best bid and ask its record quotes (0: unknown).

    ``bands`` empty: the grid is not known, every price is ``on_grid``.
    """
    if not bands or price % tick_size(price, bands) == 0:
        return "on_grid"
    if bid1 <= 0 or ask1 <= 0 or min(bid1, ask1) <= price <= max(bid1, ask1):
        return "mid_point"
    return OFF_GRID


def tick_sql(column: str, bands: tuple[tuple[int, int], ...] = KRX_TICK_SIZES) -> str:
    """`tick_size` of ``column`` as a SQL ``CASE`` expression (SQLite and PostgreSQL alike)."""
    steps = " ".join(
        f"when {column} < {upper} then {tick}"
        for (_, tick), (upper, _) in itertools.pairwise(bands)
    )
    return f"case {steps} else {bands[-1][1]} end"
