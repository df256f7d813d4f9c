"""Nextrade (NXT) in the simulator: its sessions, and its own trades on the names it lists.

Nextrade trades the names of its list (`Market.nxt_eligible`, less the faults' changes)
08:00-08:50 (pre-market), 09:00:30-15:20 (main) and 15:30-20:00 (after-market) KST, an
ordinary day's hours (the CSAT day's later ones are not simulated). Its trades are drawn
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
from harness.sim.price_units import price_limits, round_ticks, tick_size

if TYPE_CHECKING:
    from harness.sim.config import Faults
    from harness.sim.market import Market

__all__ = [
    "MAIN_SHARE",
    "NXT_SPANS",
    "OFF_HOURS_SHARE",
    "NxtSpan",
    "draw_nxt_minute",
    "span_at",
    "venue_trades",
]

MAIN_SHARE = 0.4  # of KRX's trades in the same minute
OFF_HOURS_SHARE = 0.05  # of the name's mean KRX trades a minute
_BAND_UNITS = 3  # outside KRX's hours, prices within this many price units of the reference
_KRX_OPEN_MINUTE = 9 * 60
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


def draw_nxt_minute(
    rng: np.random.Generator,
    minute: int,
    trades: np.ndarray,
    volume: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    prev_close: int,
    day_close: int,
) -> list[tuple[float, int, int]]:
    """Nextrade's trades in ``minute`` (minutes since 00:00 KST), in time order.

    Each is (seconds into the minute, price, quantity); none outside its sessions.
    ``trades``, ``volume``, ``low`` and ``high`` are KRX's 391 bars of the day.
    """
    first_s = minute * 60
    spans = [s for s in NXT_SPANS if s.start_s < first_s + 60 and first_s < s.end_s]
    if not spans:
        return []
    span = spans[0]
    from_s, to_s = max(0, span.start_s - first_s), min(60, span.end_s - first_s)
    index = minute - _KRX_OPEN_MINUTE
    if span.market_code == "2" and 0 <= index < BARS_PER_DAY:
        count = int(rng.binomial(int(trades[index]), MAIN_SHARE))
        floor, ceiling = int(low[index]), int(high[index])
        size = max(1, int(volume[index]) // max(1, int(trades[index])))
    else:
        count = int(rng.poisson(float(trades.mean()) * OFF_HOURS_SHARE))
        reference = prev_close if index < 0 else day_close
        band = _BAND_UNITS * tick_size(reference)
        floor, ceiling = max(tick_size(reference), reference - band), reference + band
        size = max(1, int(volume.sum()) // max(1, int(trades.sum())))
    if count == 0:
        return []
    prices = np.clip(round_ticks(rng.uniform(floor, ceiling, size=count)), floor, ceiling)
    quantities = rng.integers(1, 2 * size + 1, size=count)
    seconds = np.sort(rng.uniform(from_s, to_s, size=count))
    return list(zip(seconds.tolist(), prices.tolist(), quantities.tolist(), strict=True))


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
        trades = [(t.second, t.price, t.qty) for t in market.nxt_ticks(symbol, day, minute)]
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
