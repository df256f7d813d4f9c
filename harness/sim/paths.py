"""Minute paths of one symbol, drawn for many sessions at once.

Each session keeps its own seeded generator and draws exactly what it always drew; only the
arithmetic runs over a (sessions x 391) block, so a batch gives, bar for bar, the paths the
sessions give one at a time (a test holds the two to it). A session alone costs ~0.6 ms of NumPy
overhead, in a batch a tenth of that: a year of daily bars for a thousand ETFs takes seconds.

KRX's closing auction takes orders from 15:20 and matches them at one price at 15:30: the bars
of 15:20-15:29 trade nothing (at the last price before it), and the 15:30 bar is the match, one
trade of their volume and its own at the day's close (`CLOSING_AUCTION_FROM`). A day that opens
late (`harness.sim.hours.DayHours.first`) trades nothing before its opening bar: those bars stand
at its opening price, their volume never traded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from harness.sim.listings import Listing
from harness.sim.price_units import round_ticks

__all__ = ["BARS_PER_DAY", "CLOSING_AUCTION_FROM", "Paths", "draw_paths"]

BARS_PER_DAY = 391  # 09:00 .. 15:30 inclusive
CLOSING_AUCTION_FROM = 380  # the bar of 15:20: KRX's closing auction, matched in the last
_MINUTES = np.arange(BARS_PER_DAY)
# The U-shaped intraday volume profile: busy at the open and toward the closing auction (its
# orders matched at 15:30 in one trade).
_PROFILE = 1.0 + 2.5 * (
    np.exp(-_MINUTES / 25.0) + np.exp(-np.abs(CLOSING_AUCTION_FROM - 1 - _MINUTES) / 25.0)
)


@dataclass(frozen=True, slots=True)
class Paths:
    """Sessions' bars as (sessions x 391) arrays (KRW, shares), in the order asked."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray


def draw_paths(
    listing: Listing,
    days: Sequence[date],
    prev_closes: Sequence[int],
    closes: Sequence[int],
    seed_of: Sequence[int],
    firsts: Sequence[int] | None = None,
) -> Paths:
    """The minute paths of ``days`` (each bridged from its previous close to its close).

    ``seed_of[i]`` seeds day ``i``'s generator: a U-shaped intraday volume profile and
    log-normal returns; on some days a volume surge, a trade-velocity burst or a volatility
    spike makes the triggers fire. ``firsts[i]``: day ``i``'s first bar that trades (0 if
    not given).
    """
    count = len(days)
    sigma = listing.volatility / math.sqrt(BARS_PER_DAY)
    volatility = np.full((count, BARS_PER_DAY), sigma)
    profile = np.tile(_PROFILE, (count, 1))
    trade_rate = np.ones((count, BARS_PER_DAY))
    day_open = np.empty(count)
    target = np.empty(count)
    steps = np.empty((count, BARS_PER_DAY))
    wiggle = np.empty((count, 2, BARS_PER_DAY))
    noise = np.empty((count, BARS_PER_DAY))
    day_volume = np.empty(count)
    for i in range(count):  # the draws, in each day's own order
        rng = np.random.default_rng(seed_of[i])
        event = rng.random()
        start = int(rng.integers(20, BARS_PER_DAY - 40))
        span = slice(start, start + int(rng.integers(10, 30)))
        if event < 0.04:  # volume surge
            profile[i, span] *= rng.uniform(5, 12)
        elif event < 0.07:  # trade-velocity burst: many small trades
            trade_rate[i, span] *= rng.uniform(8, 20)
        elif event < 0.09:  # volatility spike
            volatility[i, span] *= rng.uniform(3, 6)
        day_open[i] = math.log(prev_closes[i]) + rng.normal(0, listing.volatility * 0.3)
        target[i] = math.log(closes[i])
        # normal(0, scale) with an array scale is scale x standard normal, draw for draw,
        # at a sixth of the cost (NumPy broadcasts an array scale element by element).
        steps[i] = rng.standard_normal(BARS_PER_DAY) * volatility[i]
        wiggle[i] = np.abs(rng.standard_normal((2, BARS_PER_DAY)) * (volatility[i] * 0.6))
        noise[i] = rng.lognormal(0, 0.4, BARS_PER_DAY)
        day_volume[i] = listing.avg_volume * rng.lognormal(0, 0.35)
    walk = day_open[:, None] + np.cumsum(steps, axis=1)
    walk += (target - walk[:, -1])[:, None] * (_MINUTES + 1) / BARS_PER_DAY  # bridge to close
    closes_f = np.exp(walk)
    opens_f = np.concatenate(([[math.exp(x)] for x in day_open], closes_f[:, :-1]), axis=1)
    o, c = round_ticks(opens_f), round_ticks(closes_f)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    h = np.maximum(round_ticks(np.maximum(opens_f, closes_f) * np.exp(wiggle[:, 0])), top)
    low = np.minimum(round_ticks(np.minimum(opens_f, closes_f) * np.exp(-wiggle[:, 1])), bottom)
    weights = profile * noise
    share = day_volume[:, None] * weights / weights.sum(axis=1, keepdims=True)
    volume = np.maximum(1, np.round(share)).astype(np.int64)
    trades = np.clip(np.round(volume / listing.trade_size * trade_rate), 4, 400).astype(np.int64)
    trades = np.minimum(trades, volume)
    # A bar of fewer than four trades cannot show four prices: keep what its trades can.
    few = trades < 4
    h = np.asarray(np.where(few, top, h), dtype=np.int64)
    low = np.asarray(np.where(few, bottom, low), dtype=np.int64)
    o = np.asarray(np.where(trades == 1, c, o), dtype=np.int64)
    drawn = _closing_auction(Paths(o, h, low, c, volume, trades))
    return _late_open(drawn, firsts) if firsts is not None and any(firsts) else drawn


def _late_open(p: Paths, firsts: Sequence[int]) -> Paths:
    """``p`` with each day's bars before ``firsts[i]`` untraded, at that bar's open.

    Drawn as a whole day first, so that every bar from the opening on stays as drawn.
    """
    o, h, low, c = (a.copy() for a in (p.open, p.high, p.low, p.close))
    volume, trades = p.volume.copy(), p.trades.copy()
    for i, first in enumerate(firsts):
        volume[i, :first], trades[i, :first] = 0, 0
        for prices in (o, h, low, c):
            prices[i, :first] = p.open[i, first]
    return Paths(o, h, low, c, volume, trades)


def _closing_auction(p: Paths) -> Paths:
    """``p`` with KRX's closing auction: its bars empty, their volume the match's at the close.

    Drawn as continuous bars first, so that every other bar stays as drawn.
    """
    auction, match = slice(CLOSING_AUCTION_FROM, BARS_PER_DAY - 1), BARS_PER_DAY - 1
    before = p.close[:, CLOSING_AUCTION_FROM - 1 : CLOSING_AUCTION_FROM]
    o, h, low, c = (a.copy() for a in (p.open, p.high, p.low, p.close))
    volume, trades = p.volume.copy(), p.trades.copy()
    volume[:, match] = p.volume[:, CLOSING_AUCTION_FROM:].sum(axis=1)
    volume[:, auction], trades[:, auction], trades[:, match] = 0, 0, 1
    for prices in (o, h, low, c):
        prices[:, auction] = before
    o[:, match] = h[:, match] = low[:, match] = c[:, match]
    return Paths(o, h, low, c, volume, trades)
