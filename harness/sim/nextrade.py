"""Nextrade (NXT) in the simulator, its sessions and trades; KRX's after-market, drawn alike.

Nextrade trades the names of its list (`Market.nxt_eligible`, less the faults' changes)
08:00-08:50 (pre-market), 09:00:30-15:20 (main) and 15:30-20:00 (after-market) KST on an
ordinary day; a day of other hours as the venues' table has it (`harness.sim.hours.DayHours`:
the CSAT day's an hour later, the times below moving with it). The after-market takes orders
from 15:30 and opens with their single-price match at 15:40 (`harness.sim.hours.AFTER_AUCTION`):
what would have traded in between prints at 15:40:00 as one trade, at the last of those
prices. Its trades are drawn beside KRX's, never taken from them, so that KRX's feed, bars
and snapshots stay what they were: in the main session a minute trades about `MAIN_SHARE` as
often as KRX's bar of that minute, within that bar's low and high (the venues arbitrage each
other); outside KRX's regular session a minute trades `OFF_HOURS_SHARE` of the name's mean
KRX minute, within a few price units of KRX's previous close (pre-market) or of the day's
close (after-market).

KRX's own after-market (from `KRX_AFTER_MARKET_FROM`, 2026-09-14: 16:00-20:00 KST,
continuous, stocks only, `harness.sim.hours.KRX_AFTER_SPAN`) is drawn as Nextrade's
off-hours minutes are, from a generator of its own: a minute trades `OFF_HOURS_SHARE` of the
name's mean KRX minute, within a few price units of the day's close (and the ±30 % band of
the previous close), the mid-point share too (`draw_krx_after_day`). Its trades reach KRX's
feed and the combined one with the session code "3" (`krx_after_trades`, `venue_trades`).
Before that date KRX had no trade after its 15:30 match (a 16:00-18:00 single-price session
instead, which the simulator does not print).

Nextrade's 종가매매 (`harness.sim.hours.CLOSING_PRICE_SPAN`, 15:30-16:00) matches orders at
KRX's closing price, a market beside the after-market's auction and first minutes: a minute
trades `OFF_HOURS_SHARE` of the name's mean KRX minute, every trade at the day's close, never
folded into the auction's match (`draw_closing_price_day`, `merged`). Its records' session
code is `SimConfig.nxt_closing_price_code` ("5"; UNCONFIRMED at KIS).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np

from harness.sim.hours import NXT_SPANS, DayHours, NxtSpan
from harness.sim.paths import BARS_PER_DAY
from harness.sim.price_units import mid_points, price_limits, round_ticks, tick_size
from observer.calendar.settings import KRX_AFTER_MARKET_FROM

if TYPE_CHECKING:
    from harness.sim.config import Faults
    from harness.sim.market import Market

__all__ = [
    "KRX_AFTER_MARKET_FROM",
    "MAIN_SHARE",
    "NXT_AFTER_MARKET_EXCLUDES",
    "NXT_ETFS_FROM",
    "OFF_HOURS_SHARE",
    "DayTrades",
    "NxtDay",
    "draw_closing_price_day",
    "draw_krx_after_day",
    "draw_nxt_day",
    "krx_after_trades",
    "krx_regular_trades",
    "krx_trades",
    "merged",
    "span_at",
    "venue_trades",
]

MAIN_SHARE = 0.4  # of KRX's trades in the same minute
OFF_HOURS_SHARE = 0.05  # of the name's mean KRX trades a minute
_BAND_UNITS = 3  # off KRX's regular hours, prices within this many price units of the reference
_KST = timezone(timedelta(hours=9))
_NS = 1_000_000_000

# The market measures whose stocks Nextrade's after-market does not trade (the notice's
# 투자경고 and 관리종목, kis-market-2026-09.md §3; 투자위험, the step after 경고).
NXT_AFTER_MARKET_EXCLUDES = frozenset({"warning", "risk", "administrative"})
# Nextrade's first day of ETFs: "from November 2026" (reported, kis-market-2026-09.md §3; the
# day is UNCONFIRMED), here that month's first session.
NXT_ETFS_FROM = date(2026, 11, 2)


def span_at(second_of_day: float, day_spans: tuple[NxtSpan, ...] = NXT_SPANS) -> NxtSpan | None:
    """The Nextrade session open at ``second_of_day`` (KST) among ``day_spans``, or None."""
    for span in day_spans:
        if span.start_s <= second_of_day < span.end_s:
            return span
    return None


@dataclass(frozen=True, slots=True)
class DayTrades:
    """A name's trades of one day on one venue, in time order.

    Nextrade's (drawn whether or not it lists the name), or KRX's after-market's.
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

    def auction_match(self, match_s: int) -> tuple[int, int] | None:
        """The after-market's opening match at ``match_s`` (price, quantity), if one was made."""
        at = int(np.searchsorted(self.at_s, match_s))
        if at == len(self.at_s) or self.at_s[at] != match_s:
            return None
        return int(self.price[at]), int(self.qty[at])

    def before(self, second_of_day: float) -> DayTrades:
        """The trades before ``second_of_day`` (KST)."""
        end = int(np.searchsorted(self.at_s, second_of_day))
        return DayTrades(self.at_s[:end], self.price[:end], self.qty[:end])

    def until(self, second_of_day: float) -> int:
        """How many trades were done by ``second_of_day`` (KST), inclusive."""
        return int(np.searchsorted(self.at_s, second_of_day, side="right"))

    def totals(self, count: int) -> tuple[int, int, int, int]:
        """The first ``count`` trades (at least one) summed up: volume, value, high, low."""
        prices, quantities = self.price[:count], self.qty[:count]
        return (
            int(quantities.sum()),
            int((prices * quantities).sum()),
            int(prices.max()),
            int(prices.min()),
        )


NxtDay = DayTrades  # Nextrade's day: its first use, the name kept


@dataclass(frozen=True, slots=True)
class _Grid:
    """The minutes sessions open, as parallel arrays.

    Each minute's minute of the day, session code, and the seconds of it [from, to) open.
    """

    minute: np.ndarray
    code: np.ndarray
    from_s: np.ndarray
    to_s: np.ndarray


def _grid(spans: tuple[NxtSpan, ...]) -> _Grid:
    """Each minute from the first span's start to the last one's end that a span opens."""
    minutes, codes, starts, ends = [], [], [], []
    for minute in range(spans[0].start_s // 60, -(-spans[-1].end_s // 60)):
        first = minute * 60
        for span in spans:
            if span.start_s < first + 60 and first < span.end_s:
                minutes.append(minute)
                codes.append(span.market_code)
                starts.append(max(0, span.start_s - first))
                ends.append(min(60, span.end_s - first))
                break
    return _Grid(np.array(minutes), np.array(codes), np.array(starts, float), np.array(ends, float))


@functools.cache
def _grid_of(day_spans: tuple[NxtSpan, ...]) -> _Grid:
    return _grid(day_spans)


def draw_nxt_day(
    rng: np.random.Generator,
    hours: DayHours,
    trades: np.ndarray,
    volume: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    prev_close: int,
    day_close: int,
    mid_point_share: float = 0.0,
) -> DayTrades:
    """Nextrade's trades of a day, every session's at once (one generator, vectorised).

    In its sessions of that day (``hours.nxt``), its after-market's auction folded into its
    match (``hours.nxt_auction``). ``trades``, ``volume``, ``low`` and ``high`` are KRX's 391
    bars of the day (from ``hours.open_minute``). A main-session minute trades binomially
    `MAIN_SHARE` of KRX's bar's trades within its low and high, at KRX's mean size; a minute
    outside KRX's hours a Poisson `OFF_HOURS_SHARE` of the name's mean minute within
    `_BAND_UNITS` price units of the previous close (before 09:00) or the day's close (after),
    at the day's mean size. ``mid_point_share`` of them print at a mid-point (`mid_points`).
    """
    grid = _grid_of(hours.nxt)
    index = grid.minute - hours.open_minute
    main = (grid.code == "2") & (index >= 0) & (index < BARS_PER_DAY)
    bar = np.clip(index, 0, BARS_PER_DAY - 1)
    krx_trades = trades.astype(np.int64)[bar]
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
    off_hours = float(trades.mean()) * OFF_HOURS_SHARE
    drawn = _draw(rng, grid, main, krx_trades, floor, ceiling, size, off_hours, mid_point_share)
    return _auctioned(drawn, hours.nxt_auction)


def draw_krx_after_day(
    rng: np.random.Generator,
    span: NxtSpan,
    mean_trades: float,
    day_size: int,
    prev_close: int,
    day_close: int,
    mid_point_share: float = 0.0,
) -> DayTrades:
    """KRX's after-market trades of a day (in ``span``), as Nextrade's off-hours minutes.

    A minute trades a Poisson `OFF_HOURS_SHARE` of ``mean_trades`` (the name's mean KRX
    minute) within `_BAND_UNITS` price units of ``day_close`` and the day's price limits (30 %
    either side of ``prev_close``), each trade 1 to twice ``day_size`` (the day's mean) shares;
    ``mid_point_share`` of them print at a mid-point.
    """
    grid = _grid_of((span,))
    minutes = len(grid.minute)
    unit = tick_size(day_close)
    lower, upper = price_limits(prev_close)
    floor = np.full(minutes, max(lower, unit, day_close - _BAND_UNITS * unit), np.int64)
    ceiling = np.full(minutes, min(upper, day_close + _BAND_UNITS * unit), np.int64)
    size = np.full(minutes, max(1, day_size), np.int64)
    main = np.zeros(minutes, bool)
    off_hours = mean_trades * OFF_HOURS_SHARE
    none = np.zeros(minutes, np.int64)
    return _draw(rng, grid, main, none, floor, ceiling, size, off_hours, mid_point_share)


def draw_closing_price_day(
    rng: np.random.Generator, span: NxtSpan, mean_trades: float, day_size: int, day_close: int
) -> DayTrades:
    """Nextrade's 종가매매 trades of a day (in ``span``), every one at ``day_close``.

    A minute trades a Poisson `OFF_HOURS_SHARE` of ``mean_trades`` (the name's mean KRX
    minute), each trade 1 to twice ``day_size`` (the day's mean) shares.
    """
    grid = _grid_of((span,))
    minutes = len(grid.minute)
    close = np.full(minutes, day_close, np.int64)
    size = np.full(minutes, max(1, day_size), np.int64)
    none = np.zeros(minutes, np.int64)
    off_hours = mean_trades * OFF_HOURS_SHARE
    return _draw(rng, grid, np.zeros(minutes, bool), none, close, close, size, off_hours, 0.0)


def merged(day: DayTrades, beside: DayTrades) -> DayTrades:
    """The trades of ``day`` and ``beside`` in one time order (``day``'s first at a tie)."""
    at_s = np.concatenate((day.at_s, beside.at_s))
    order = np.argsort(at_s, kind="stable")
    return DayTrades(
        at_s[order],
        np.concatenate((day.price, beside.price))[order],
        np.concatenate((day.qty, beside.qty))[order],
    )


def _draw(
    rng: np.random.Generator,
    grid: _Grid,
    main: np.ndarray,
    krx_trades: np.ndarray,
    floor: np.ndarray,
    ceiling: np.ndarray,
    size: np.ndarray,
    off_hours: float,
    mid_point_share: float,
) -> DayTrades:
    """The trades of ``grid``'s minutes, drawn at once.

    Per minute: KRX's trades (``main`` minutes trade binomially `MAIN_SHARE` of them, the
    others a Poisson ``off_hours``), the price bounds, and the mean size (each trade 1 to
    twice it).
    """
    counts = np.where(main, 0, rng.poisson(off_hours, len(main)))
    counts[main] = rng.binomial(krx_trades[main], MAIN_SHARE)
    each = np.repeat(np.arange(len(main)), counts)
    prices = np.clip(
        round_ticks(rng.uniform(floor[each], ceiling[each])), floor[each], ceiling[each]
    )
    quantities = rng.integers(1, 2 * size[each] + 1)
    at_s = grid.minute[each] * 60 + rng.uniform(grid.from_s[each], grid.to_s[each])
    if mid_point_share:  # drawn after the rest: the grid's trades stay as they were
        prices = mid_points(prices, ceiling[each], rng.random(len(prices)), mid_point_share)
    order = np.argsort(at_s, kind="stable")
    return DayTrades(
        at_s[order], prices[order].astype(np.int64), quantities[order].astype(np.int64)
    )


def _auctioned(day: DayTrades, auction: tuple[int, int]) -> DayTrades:
    """``day`` with its after-market auction's trades folded into their match at its end.

    ``auction``: its [start, end) in seconds of the day. Drawn as continuous trades first, so
    that every other trade of the day stays as drawn.
    """
    start, end = auction
    inside = (day.at_s >= start) & (day.at_s < end)
    if not inside.any():
        return day
    outside = ~inside
    at = int(np.searchsorted(day.at_s[outside], end))
    return DayTrades(
        np.insert(day.at_s[outside], at, float(end)),
        np.insert(day.price[outside], at, day.price[inside][-1]),
        np.insert(day.qty[outside], at, day.qty[inside].sum()),
    )


def venue_trades(
    market: Market,
    faults: Faults,
    symbol: str,
    day: date,
    minute: int,
    combined: bool,
    krx_after_market: bool = True,
) -> list[tuple[float, int, int]]:
    """The trades of ``symbol`` in ``minute`` (since 00:00 KST) on Nextrade, in time order.

    None on a day Nextrade does not list the name or halts it (`Faults.nxt`). ``combined``:
    KRX's trades of the minute too, as KRX's own feed has them (none while halted or in a
    quiet minute, at the upper limit while locked): the combined feed's and bars' trades;
    its after-market's (`krx_after_trades`) unless ``krx_after_market`` is False.
    """
    listing = market.listings[symbol]
    eligible, halted = faults.nxt.standing(symbol, market.nxt_eligible(day), listing.suspended)
    trades: list[tuple[float, int, int]] = []
    if eligible and not halted:
        trades = market.nxt_day(symbol, day).minute(minute)
    if not combined:
        return trades
    trades = [*trades, *krx_trades(market, faults, symbol, day, minute, krx_after_market)]
    trades.sort(key=_second)
    return trades


def krx_trades(
    market: Market,
    faults: Faults,
    symbol: str,
    day: date,
    minute: int,
    krx_after_market: bool = True,
) -> list[tuple[float, int, int]]:
    """KRX's trades of ``symbol`` in ``minute`` (since 00:00 KST), as KRX's feed has them.

    Its regular session's (`krx_regular_trades`), else its after-market's (`krx_after_trades`)
    unless ``krx_after_market`` is False. (seconds into the minute, price, quantity) each.
    """
    index = market.hours(day).bar(minute)
    if 0 <= index < BARS_PER_DAY:
        regular = krx_regular_trades(market, faults, symbol, day, index)
        return [(second, price, qty) for second, price, qty, _ in regular]
    return krx_after_trades(market, faults, symbol, day, minute) if krx_after_market else []


def krx_regular_trades(
    market: Market, faults: Faults, symbol: str, day: date, index: int
) -> list[tuple[float, int, int, int]]:
    """KRX's regular-session trades of ``symbol`` in bar ``index`` (`DayPath.bar_start`).

    As KRX's feed has them (`Market.ticks`): none in a quiet minute (`Faults.no_trades`) or
    while halted, at the upper price limit while locked. (seconds into the minute, price,
    quantity, its place among the bar's ticks) each, in time order: the place is what a
    withheld record (`TickLoss.withholds`) and an unsent trade (`SimConfig.volume_chain`) are
    told by.
    """
    bar = market.day_path(symbol, day).bar_start(index)
    if f"{bar:%H%M}" in faults.no_trades.get(symbol, set()):
        return []
    ticks = market.ticks(symbol, day, index)
    if symbol not in faults.halts and symbol not in faults.limit_locks:
        return [(tick.second, tick.price, tick.qty, nth) for nth, tick in enumerate(ticks)]
    upper = price_limits(market.day_path(symbol, day).prev_close)[1]
    opened = int(bar.timestamp()) * _NS  # as `harness.sim.realtime.trade_ns`
    trades = []
    for nth, tick in enumerate(ticks):
        at_ns = opened + int(tick.second * _NS)
        if faults.halted(symbol, at_ns):
            continue
        price = upper if faults.locked(symbol, at_ns) else tick.price
        trades.append((tick.second, price, tick.qty, nth))
    return trades


def krx_after_trades(
    market: Market, faults: Faults, symbol: str, day: date, minute: int
) -> list[tuple[float, int, int]]:
    """KRX's after-market trades of ``symbol`` in ``minute`` (since 00:00 KST), in time order.

    As KRX's feed has them (`Market.krx_after_day`): none on a day or for a name without the
    after-market, none in a quiet minute (`Faults.no_trades`) or while halted, at the upper
    price limit while locked. (seconds into the minute, price, quantity) each.
    """
    span = market.hours(day).krx_after
    if not span.start_s <= minute * 60 < span.end_s:
        return []
    evening = market.krx_after_day(symbol, day)
    trades = evening.minute(minute) if evening is not None else []
    if not trades:
        return trades
    bar = datetime(day.year, day.month, day.day, tzinfo=_KST) + timedelta(minutes=minute)
    if f"{bar:%H%M}" in faults.no_trades.get(symbol, set()):
        return []
    if symbol not in faults.halts and symbol not in faults.limit_locks:
        return trades
    upper = price_limits(market.daily_bar(symbol, day).prev_close)[1]
    opened = int(bar.timestamp()) * _NS
    kept = []
    for second, price, qty in trades:
        at_ns = opened + int(second * _NS)
        if not faults.halted(symbol, at_ns):
            kept.append((second, upper if faults.locked(symbol, at_ns) else price, qty))
    return kept


def _second(trade: tuple[float, int, int]) -> float:
    return trade[0]
