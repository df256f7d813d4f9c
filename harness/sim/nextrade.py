"""Nextrade (NXT) in the simulator: its sessions, and its own trades on the names it lists.

Nextrade trades the names of its list (`Market.nxt_eligible`, less the faults' changes)
08:00-08:50 (pre-market), 09:00:30-15:20 (main) and 15:30-20:00 (after-market) KST, an
ordinary day's hours (the CSAT day's later ones are not simulated). The after-market takes
orders from 15:30 and opens with their single-price match at 15:40 (`AFTER_AUCTION`): what
would have traded in between prints at 15:40:00 as one trade, at the last of those prices.
Its trades are drawn
beside KRX's, never taken from them, so that KRX's feed, bars and snapshots stay what they
were: in the main session a minute trades about `MAIN_SHARE` as often as KRX's bar of that
minute, within that bar's low and high (the venues arbitrage each other); outside KRX's hours
a minute trades `OFF_HOURS_SHARE` of the name's mean KRX minute, within a few price units of
KRX's previous close (pre-market) or of the day's close (after-market).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np

from harness.sim.paths import BARS_PER_DAY
from harness.sim.price_units import mid_points, price_limits, round_ticks, tick_size

if TYPE_CHECKING:
    from harness.sim.config import Faults
    from harness.sim.market import Market

__all__ = [
    "AFTER_AUCTION",
    "MAIN_SHARE",
    "NXT_SPANS",
    "OFF_HOURS_SHARE",
    "NxtDay",
    "NxtSpan",
    "draw_nxt_day",
    "span_at",
    "venue_trades",
]

MAIN_SHARE = 0.4  # of KRX's trades in the same minute
OFF_HOURS_SHARE = 0.05  # of the name's mean KRX trades a minute
_BAND_UNITS = 3  # outside KRX's hours, prices within this many price units of the reference
_KRX_OPEN_MINUTE = 9 * 60
# The after-market's opening auction, seconds of the KST day [start, end): its match at end.
AFTER_AUCTION = (15 * 3600 + 30 * 60, 15 * 3600 + 40 * 60)
_KST = timezone(timedelta(hours=9))
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class NxtSpan:
    """One Nextrade session: seconds of the KST day [start, end), and its records' code.

    ``market_code`` is the MARKET_CLS_CODE of the 2026-09 layouts: "1" pre-market, "2" main,
    "3" after-market.
    """

    start_s: int
    end_s: int
    market_code: str


NXT_SPANS: tuple[NxtSpan, ...] = (
    NxtSpan(8 * 3600, 8 * 3600 + 50 * 60, "1"),
    NxtSpan(9 * 3600 + 30, 15 * 3600 + 20 * 60, "2"),
    NxtSpan(15 * 3600 + 30 * 60, 20 * 3600, "3"),
)


def span_at(second_of_day: float) -> NxtSpan | None:
    """The Nextrade session open at ``second_of_day`` (KST), or None."""
    for span in NXT_SPANS:
        if span.start_s <= second_of_day < span.end_s:
            return span
    return None


@dataclass(frozen=True, slots=True)
class NxtDay:
    """A name's Nextrade trades of one day, in time order (drawn whether or not it lists it).

    ``at_s``: seconds since 00:00 KST; ``price`` and ``qty`` the trades'.
    """

    at_s: np.ndarray
    price: np.ndarray
    qty: np.ndarray

    def minute(self, minute: int) -> list[tuple[float, int, int]]:
        """The trades of ``minute`` (since 00:00 KST): (seconds into it, price, quantity)."""
        first = minute * 60
        lo, hi = np.searchsorted(self.at_s, (first, first + 60))
        seconds = (self.at_s[lo:hi] - first).tolist()
        return list(zip(seconds, self.price[lo:hi].tolist(), self.qty[lo:hi].tolist(), strict=True))

    def auction_match(self) -> tuple[int, int] | None:
        """The after-market's opening match (price, quantity), if anything was matched."""
        at = int(np.searchsorted(self.at_s, AFTER_AUCTION[1]))
        if at == len(self.at_s) or self.at_s[at] != AFTER_AUCTION[1]:
            return None
        return int(self.price[at]), int(self.qty[at])

    def until(self, second_of_day: float) -> int:
        """How many trades were done by ``second_of_day`` (KST), inclusive."""
        return int(np.searchsorted(self.at_s, second_of_day, side="right"))


def _minute_spans() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each minute of 08:00-20:00: its minute of the day, session code, open seconds in it."""
    minutes, codes, starts, ends = [], [], [], []
    for minute in range(NXT_SPANS[0].start_s // 60, -(-NXT_SPANS[-1].end_s // 60)):
        first = minute * 60
        for span in NXT_SPANS:
            if span.start_s < first + 60 and first < span.end_s:
                minutes.append(minute)
                codes.append(span.market_code)
                starts.append(max(0, span.start_s - first))
                ends.append(min(60, span.end_s - first))
                break
    return np.array(minutes), np.array(codes), np.array(starts, float), np.array(ends, float)


_MINUTES, _CODES, _FROM_S, _TO_S = _minute_spans()


def draw_nxt_day(
    rng: np.random.Generator,
    trades: np.ndarray,
    volume: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    prev_close: int,
    day_close: int,
    mid_point_share: float = 0.0,
) -> NxtDay:
    """Nextrade's trades of a day, every session's at once (one generator, vectorised).

    ``trades``, ``volume``, ``low`` and ``high`` are KRX's 391 bars of the day. A main-session
    minute trades binomially `MAIN_SHARE` of KRX's bar's trades within its low and high, at
    KRX's mean size; a minute outside KRX's hours a Poisson `OFF_HOURS_SHARE` of the name's
    mean minute within `_BAND_UNITS` price units of the previous close (before 09:00) or the
    day's close (after), at the day's mean size. ``mid_point_share`` of them print at a
    mid-point (`mid_points`).
    """
    index = _MINUTES - _KRX_OPEN_MINUTE
    main = (_CODES == "2") & (index >= 0) & (index < BARS_PER_DAY)
    bar = np.clip(index, 0, BARS_PER_DAY - 1)
    krx_trades = trades.astype(np.int64)[bar]
    counts = np.where(main, 0, rng.poisson(float(trades.mean()) * OFF_HOURS_SHARE, len(bar)))
    counts[main] = rng.binomial(krx_trades[main], MAIN_SHARE)
    reference = np.where(index < 0, prev_close, day_close)
    units = np.array([tick_size(int(r)) for r in (prev_close, day_close)])[(index >= 0) * 1]
    floor = np.where(
        main, low.astype(np.int64)[bar], np.maximum(units, reference - _BAND_UNITS * units)
    )
    ceiling = np.where(main, high.astype(np.int64)[bar], reference + _BAND_UNITS * units)
    day_size = max(1, int(volume.sum()) // max(1, int(trades.sum())))
    size = np.where(
        main, np.maximum(1, volume.astype(np.int64)[bar] // np.maximum(1, krx_trades)), day_size
    )
    each = np.repeat(np.arange(len(bar)), counts)
    prices = np.clip(
        round_ticks(rng.uniform(floor[each], ceiling[each])), floor[each], ceiling[each]
    )
    quantities = rng.integers(1, 2 * size[each] + 1)
    at_s = _MINUTES[each] * 60 + rng.uniform(_FROM_S[each], _TO_S[each])
    if mid_point_share:  # drawn after the rest: the grid's trades stay as they were
        prices = mid_points(prices, ceiling[each], rng.random(len(prices)), mid_point_share)
    order = np.argsort(at_s, kind="stable")
    return _auctioned(
        NxtDay(at_s[order], prices[order].astype(np.int64), quantities[order].astype(np.int64))
    )


def _auctioned(day: NxtDay) -> NxtDay:
    """``day`` with its after-market auction's trades folded into their match at its end.

    Drawn as continuous trades first, so that every other trade of the day stays as drawn.
    """
    start, end = AFTER_AUCTION
    inside = (day.at_s >= start) & (day.at_s < end)
    if not inside.any():
        return day
    outside = ~inside
    at = int(np.searchsorted(day.at_s[outside], end))
    return NxtDay(
        np.insert(day.at_s[outside], at, float(end)),
        np.insert(day.price[outside], at, day.price[inside][-1]),
        np.insert(day.qty[outside], at, day.qty[inside].sum()),
    )


def venue_trades(
    market: Market, faults: Faults, symbol: str, day: date, minute: int, combined: bool
) -> list[tuple[float, int, int]]:
    """The trades of ``symbol`` in ``minute`` (since 00:00 KST) on Nextrade, in time order.

    None on a day Nextrade does not list the name or halts it (`Faults.nxt`). ``combined``:
    KRX's trades of the minute too, as KRX's own feed has them (none while halted or in a
    quiet minute, at the upper limit while locked): the combined feed's and bars' trades.
    """
    listing = market.listings[symbol]
    eligible, halted = faults.nxt.standing(symbol, market.nxt_eligible(day), listing.suspended)
    trades: list[tuple[float, int, int]] = []
    if eligible and not halted:
        trades = market.nxt_day(symbol, day).minute(minute)
    index = minute - _KRX_OPEN_MINUTE
    if not combined or not 0 <= index < BARS_PER_DAY:
        return trades
    bar = datetime(day.year, day.month, day.day, 9, tzinfo=_KST) + timedelta(minutes=index)
    if f"{bar:%H%M}" in faults.no_trades.get(symbol, set()):
        return trades
    upper = price_limits(market.day_path(symbol, day).prev_close)[1]
    opened = int(bar.timestamp()) * _NS
    for tick in market.ticks(symbol, day, index):
        at_ns = opened + int(tick.second * _NS)
        if faults.halted(symbol, at_ns):
            continue
        trades.append(
            (tick.second, upper if faults.locked(symbol, at_ns) else tick.price, tick.qty)
        )
    trades.sort(key=_second)
    return trades


def _second(trade: tuple[float, int, int]) -> float:
    return trade[0]
