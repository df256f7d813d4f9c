"""The simulator's market: listings and prices, all a deterministic function of a seed.

The largest real KRX names come first, under their real codes and names and near their real
prices (`harness.sim.listings`). Every session of every symbol has one seeded path of 391
one-minute bars (09:00-15:30 KST on an ordinary day, 10:00-16:30 on the CSAT day:
`harness.sim.hours.DayHours`, `harness.sim.paths`); daily bars aggregate them, consecutive
days chain close to open, and ticks reproduce each bar exactly: REST snapshots, minute bars, daily
charts and real-time trades all tell the same story. From 2026-09-14 a stock also trades on
KRX's after-market, 16:00-20:00 (17:00-20:00 on the CSAT day; `Market.krx_after_day`, drawn
as Nextrade's off-hours minutes are: `harness.sim.nextrade`); `quote_at` follows its trades,
its day's close stays the regular session's match. Before that date KRX has no trade after
its close.
"""

from __future__ import annotations

import functools
import hashlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import numpy as np

from harness.sim.hours import ORDINARY, DayHours, day_hours
from harness.sim.listings import Listing, Overseas, draw_listings, draw_overseas
from harness.sim.nextrade import (
    KRX_AFTER_MARKET_FROM,
    NXT_AFTER_MARKET_EXCLUDES,
    NXT_ETFS_FROM,
    DayTrades,
    draw_closing_price_day,
    draw_krx_after_day,
    draw_nxt_day,
    merged,
)
from harness.sim.paths import BARS_PER_DAY, Paths, draw_paths
from harness.sim.price_units import (
    MID_POINTS_FROM,
    mid_points,
    round_tick,
    round_ticks,
    tick_size,
)
from observer.calendar.trading import TradingCalendar
from observer.errors import ConfigError

__all__ = [
    "BARS_PER_DAY",
    "NXT_VIS_FROM",
    "DayBar",
    "DayPath",
    "Listing",
    "Market",
    "Overseas",
    "Quote",
    "Tick",
    "bar_value",
    "bars_value",
    "quote_at",
    "tick_size",
]

NXT_SHARE = 0.28  # of the KOSPI and KOSDAQ stocks, as Nextrade's 700 of some 2,500
# Of the ETFs, those Nextrade trades from `NXT_ETFS_FROM`: the largest first (the press of
# 2026-02 expected the liquid index and theme ETFs first; how many is not known here).
NXT_ETF_SHARE = 0.1
# Of a day's trades, those at a mid-point between two ticks (both venues, from 2025-03-04).
MID_POINT_SHARE = 0.02

KST = timezone(timedelta(hours=9))
_BLOCK = 25  # sessions whose daily bars are drawn together (`Market.daily_bar`)
_ANCHOR = date(2025, 1, 2)  # paths chain from here; earlier days are not served
_REVERSION = 0.985  # a real listing's daily log distance from its level decays by this factor
# A venue's VIs: one stock in ten a day, two minutes each, starting in a minute of KRX's regular
# day from 10:00 (or of KRX's after-market, `Market.vi_window`)
_VI_ONE_IN, _VI_MINUTES = 10, 2
_VI_DAY_FROM, _VI_DAY_MINUTES = time(10), 300
# Nextrade's static VIs, from the notice of 2026-09-14 (kis-market-2026-09.md §3): none before
NXT_VIS_FROM = date(2026, 9, 14)


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade: seconds into its minute, price, quantity."""

    second: float
    price: int
    qty: int


@dataclass(frozen=True, slots=True)
class DayPath:
    """One symbol's session: 391 bars as parallel arrays (KRW, shares)."""

    day: date
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray  # trades per minute
    prev_close: int
    # Running figures after each bar (volume, `bar_value`, high, low): a quote at any instant
    # reads them instead of summing its bars again (Track A asks 440 times a wall second).
    volume_to: np.ndarray
    value_to: np.ndarray
    high_to: np.ndarray
    low_to: np.ndarray
    hours: DayHours = ORDINARY  # its day's: bar 0's minute, the first bar that trades

    @property
    def first(self) -> int:
        """The first bar that trades (`harness.sim.hours.DayHours.first`)."""
        return self.hours.first

    @property
    def day_open(self) -> int:
        """The session's opening price."""
        return int(self.open[0])

    @property
    def day_close(self) -> int:
        """The session's closing price."""
        return int(self.close[-1])

    def bar_start(self, index: int) -> datetime:
        """The KST start of bar ``index``."""
        midnight = datetime(self.day.year, self.day.month, self.day.day, tzinfo=KST)
        return midnight + timedelta(minutes=self.hours.open_minute + index)


class Market:
    """Listings and prices for a seed.

    Parameters
    ----------
    seed:
        Everything (codes, names, prices, events) follows from it.
    calendar:
        Which days are sessions.
    stocks, etfs:
        How many domestic stocks and ETFs to list, the real ones among them: the real stocks
        and ETFs come first (as many as fit), synthetic ones with codes and names of their own
        fill the rest.
    mid_points:
        The share of each venue's trades (from `MID_POINTS_FROM`) printed at a mid-point,
        half a tick above a price of the grid; 0: every trade on the grid (the belief before
        mid-point orders).
    krx_after_market:
        Whether stocks trade on KRX's after-market (16:00-20:00, from 2026-09-14:
        `krx_after_day`); False: no KRX trade after 15:30 on any day (the belief before it).
        A server also asks `SimConfig.krx_after_market`: it serves the after-market when
        both say so.
    etfs_after_market:
        Whether ETFs trade on KRX's after-market too; False, as KRX's rules say (its
        after-market excludes ETFs and ETNs: kis-market-2026-09.md §1, CONFIRMED-2nd), True
        the other way (`observer kis check` reads it off an ETF's bars).
    nxt_closing_price:
        Whether Nextrade's 종가매매 trades (15:30-16:00, at KRX's close: `nxt_closing_day`);
        False: none (the belief before).
    nxt_etfs:
        Whether Nextrade trades ETFs from `NXT_ETFS_FROM` (`nxt_eligible`); False: stocks
        alone on every day (the belief before).
    krx_after_market_vis:
        Whether KRX's VIs happen in its after-market too (UNCONFIRMED at KIS: KIS's notices
        name the session's band, not its VIs), `vi_window`; False: within its regular day
        alone.
    nxt_after_market_measures:
        Whether Nextrade's after-market trades stocks under the measures it excludes
        (`NXT_AFTER_MARKET_EXCLUDES`: 투자경고, ...); False, as its rules say
        (kis-market-2026-09.md §3), True the other way.
    krx_after_market_measures:
        Whether KRX's after-market trades stocks under those measures; True, as the observer
        believes (no rule of KRX's names any: UNCONFIRMED), False the other way (it excludes
        Nextrade's: `trades_krx_after`).
    """

    def __init__(
        self,
        seed: int,
        calendar: TradingCalendar,
        *,
        stocks: int = 2500,
        etfs: int = 1000,
        mid_points: float = MID_POINT_SHARE,
        krx_after_market: bool = True,
        nxt_closing_price: bool = True,
        nxt_etfs: bool = True,
        krx_after_market_vis: bool = True,
        late_days: bool = True,
        etfs_after_market: bool = False,
        nxt_after_market_measures: bool = False,
        krx_after_market_measures: bool = True,
    ) -> None:
        self.seed = seed
        self.nxt_after_market_measures = nxt_after_market_measures
        self.krx_after_market_measures = krx_after_market_measures
        self.etfs_after_market = etfs_after_market
        self.calendar = calendar
        self.mid_points = mid_points
        self.krx_after_market = krx_after_market
        self.nxt_closing_price = nxt_closing_price
        self.nxt_etfs = nxt_etfs
        self.krx_after_market_vis = krx_after_market_vis
        self.late_days = late_days
        rng = np.random.default_rng(_seed(seed, "listings"))
        self.listings = draw_listings(rng, stocks=stocks, etfs=etfs)
        self._overseas_from = rng.bit_generator.state  # where `overseas` goes on drawing

    @functools.cached_property
    def overseas(self) -> dict[str, list[Overseas]]:
        """The overseas listings by master-file stem, drawn on first use.

        From the listings' generator where the domestic draws left it, so they are the same
        as if drawn with them; 18,000 of them were most of a market's construction, which
        every test module building one at import paid as the tests were collected.
        """
        rng = np.random.default_rng()
        rng.bit_generator.state = self._overseas_from
        return draw_overseas(rng)

    def hours(self, day: date) -> DayHours:
        """``day``'s hours on both venues: the table's (`harness.sim.hours.day_hours`).

        An ordinary day's with ``late_days`` off (the other way: a market that kept its hours).
        """
        return day_hours(day) if self.late_days else ORDINARY

    def nxt_eligible(self, day: date) -> frozenset[str]:
        """The names Nextrade trades on ``day``: its quarter's selection.

        Nextrade selects each quarter, effective from its first day: the index members and
        the largest other names, about 700 of some 2,500 KOSPI and KOSDAQ stocks in 2026
        (`NXT_SHARE` of them here, the largest by listed value at the previous quarter's last
        close, administrative issues out). From `NXT_ETFS_FROM` (with ``nxt_etfs``) the
        largest `NXT_ETF_SHARE` of the ETFs too, ranked at the last close before they
        joined or before the quarter, the later. Its ad-hoc changes are the faults'
        (`Faults.nxt`).
        """
        quarter = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        etfs = self.nxt_etfs and day >= NXT_ETFS_FROM
        return self._nxt_list(quarter, etfs)

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Market lives as long as the server
    def _nxt_list(self, quarter: date, etfs: bool) -> frozenset[str]:
        """The quarter's list, with its ETFs or not: made once (asked for every record)."""
        stocks = self._nxt_selection(max(self.calendar.previous_session(quarter), _ANCHOR), "ST")
        if not etfs:
            return stocks
        since = max(quarter, NXT_ETFS_FROM)
        return stocks | self._nxt_selection(self.calendar.previous_session(since), "EF")

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one Market lives as long as the server
    def _nxt_selection(self, ranked_on: date, group: str) -> frozenset[str]:
        names = [
            x
            for x in self.listings.values()
            if x.group == group and x.market in ("KOSPI", "KOSDAQ") and not x.administrative
        ]
        names.sort(key=lambda x: (-self.close(x.symbol, ranked_on) * x.listed_shares, x.symbol))
        share = NXT_SHARE if group == "ST" else NXT_ETF_SHARE
        return frozenset(x.symbol for x in names[: round(len(names) * share)])

    # ------------------------------------------------------------------ prices

    @functools.cached_property
    def sessions(self) -> list[date]:
        """Every session from the anchor to the calendar's end, oldest first."""
        days = [_ANCHOR]
        while True:
            try:
                days.append(self.calendar.next_session(days[-1]))
            except ConfigError:
                return days

    @functools.cached_property
    def _session_index(self) -> dict[date, int]:
        return {day: n for n, day in enumerate(self.sessions)}

    @functools.lru_cache(maxsize=10_000)  # noqa: B019 - one Market lives as long as the server
    def _closes(self, symbol: str) -> np.ndarray:
        """Daily closes (float KRW) of every session: a seeded log-normal walk.

        A real listing's walk reverts to its level (a shock's half-life is about 46 sessions,
        the spread about 6 daily sigmas), so 005930 stays within its real range for years.
        """
        listing = self.listings[symbol]
        rng = np.random.default_rng(_seed(self.seed, symbol, "daily"))
        if listing.known:  # an AR(1) walk around its level: it stays in its real range
            distance, walk = 0.0, np.empty(len(self.sessions))
            for n, shock in enumerate(rng.normal(0.0, listing.volatility, size=len(walk))):
                distance = _REVERSION * distance + float(shock)
                walk[n] = distance
            return listing.start_price * np.exp(walk)
        returns = rng.normal(0.0002, listing.volatility, size=len(self.sessions))
        return listing.start_price * np.exp(np.cumsum(returns))

    def close(self, symbol: str, day: date) -> int:
        """The official close of ``symbol`` on session ``day`` (cheap: no minute path)."""
        return round_tick(float(self._closes(symbol)[self._index(day)]))

    def _index(self, day: date) -> int:
        try:
            return self._session_index[day]
        except KeyError:
            raise KeyError(f"{day} is not a session the simulator serves") from None

    def day_path(self, symbol: str, day: date) -> DayPath:
        """The session ``day`` of ``symbol`` (KeyError: unknown symbol or not a session)."""
        return self._path(symbol, day)

    @functools.lru_cache(maxsize=20_000)  # noqa: B019 - one Market lives as long as the server
    def _path(self, symbol: str, day: date) -> DayPath:
        return self._paths(symbol, (day,))[0]

    def _paths(self, symbol: str, days: Sequence[date]) -> list[DayPath]:
        """The sessions ``days`` of ``symbol``, drawn as one batch (`harness.sim.paths`)."""
        prev, p = self._draw(symbol, days)
        volume_to = np.cumsum(p.volume, axis=1)
        value_to = np.cumsum(p.volume * ((p.open + p.high + p.low + p.close) // 4), axis=1)
        high_to = np.maximum.accumulate(p.high, axis=1)
        low_to = np.minimum.accumulate(p.low, axis=1)
        return [
            DayPath(
                day,
                p.open[i],
                p.high[i],
                p.low[i],
                p.close[i],
                p.volume[i],
                p.trades[i],
                prev[i],
                volume_to[i],
                value_to[i],
                high_to[i],
                low_to[i],
                self.hours(day),
            )
            for i, day in enumerate(days)
        ]

    def _draw(self, symbol: str, days: Sequence[date]) -> tuple[list[int], Paths]:
        listing = self.listings[symbol]
        indexes = [self._index(day) for day in days]
        prev = [
            self.close(symbol, self.sessions[n - 1]) if n else listing.start_price for n in indexes
        ]
        closes = [self.close(symbol, day) for day in days]
        seeds = [_seed(self.seed, symbol, day.isoformat()) for day in days]
        firsts = [self.hours(day).first for day in days]
        return prev, draw_paths(listing, days, prev, closes, seeds, firsts)

    def daily_bar(self, symbol: str, day: date) -> DayBar:
        """Session ``day`` of ``symbol`` summed up, as its path has it (KeyError: unknown).

        Bars come in blocks of sessions drawn together and kept (a few integers each): a
        year of daily bars costs a fraction of a year of paths, and nothing after that.
        """
        index = self._index(day)
        return self._bar_block(symbol, index // _BLOCK)[index % _BLOCK]

    @functools.lru_cache(maxsize=50_000)  # noqa: B019 - one Market lives as long as the server
    def _bar_block(self, symbol: str, block: int) -> tuple[DayBar, ...]:
        prev, p = self._draw(symbol, self.sessions[block * _BLOCK : (block + 1) * _BLOCK])
        typical = (p.open + p.high + p.low + p.close) // 4  # as `bars_value` has it
        columns = (
            p.open[:, 0],
            p.high.max(axis=1),
            p.low.min(axis=1),
            p.close[:, -1],
            p.volume.sum(axis=1),
            (p.volume * typical).sum(axis=1),
            prev,
            p.trades.sum(axis=1),
        )
        rows = zip(*(np.asarray(c).tolist() for c in columns), strict=True)
        return tuple(DayBar(*row) for row in rows)

    def etf_premium(self, symbol: str, day: date) -> float:
        """An ETF's price over its NAV on session ``day``, minus one (a few basis points)."""
        return float(self._premiums(symbol)[self._index(day)])

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one Market lives as long as the server
    def _premiums(self, symbol: str) -> np.ndarray:
        """Every session's premium of ``symbol``, drawn at once (a generator a day: 30 us)."""
        rng = np.random.default_rng(_seed(self.seed, symbol, "premium"))
        return rng.normal(0, 0.002, size=len(self.sessions))

    @functools.lru_cache(maxsize=2_000)  # noqa: B019 - one Market lives as long as the server
    def components(self, symbol: str) -> tuple[tuple[str, float], ...]:
        """An ETF's constituents and their weights in percent (summing to 100)."""
        rng = np.random.default_rng(_seed(self.seed, symbol, "components"))
        stocks = [s for s, x in self.listings.items() if x.group == "ST" and x.market == "KOSPI"]
        chosen = rng.choice(
            len(stocks), size=min(len(stocks), int(rng.integers(10, 50))), replace=False
        )
        weights = rng.dirichlet(np.ones(len(chosen))) * 100
        return tuple((stocks[int(i)], float(w)) for i, w in zip(chosen, weights, strict=True))

    def overseas_quote(self, exchange: str, symbol: str, day: date) -> tuple[float, float, int]:
        """(last, previous close, volume) of an overseas symbol on ``day``, in its currency."""
        rng = np.random.default_rng(_seed(self.seed, exchange, symbol))
        level = float(rng.lognormal(math.log(40), 1.0))
        previous = level * math.exp(
            float(
                np.random.default_rng(
                    _seed(self.seed, exchange, symbol, (day - timedelta(days=1)).isoformat())
                ).normal(0, 0.02)
            )
        )
        today = np.random.default_rng(_seed(self.seed, exchange, symbol, day.isoformat()))
        return (
            previous * math.exp(float(today.normal(0, 0.02))),
            previous,
            int(today.lognormal(math.log(500_000), 1.0)),
        )

    # The stream asks for the running minute every push (20 times a wall second) and the
    # busiest names trade 400 times a minute: each minute's ticks are drawn once.
    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Market lives as long as the server
    def ticks(self, symbol: str, day: date, index: int) -> tuple[Tick, ...]:
        """The trades of bar ``index``: they open, touch the high and low, and close it."""
        path = self._path(symbol, day)
        count = int(path.trades[index])
        o, h, low, c = (int(a[index]) for a in (path.open, path.high, path.low, path.close))
        volume = int(path.volume[index])
        rng = np.random.default_rng(_seed(self.seed, symbol, day.isoformat(), index))
        if count == 0:  # KRX's closing auction before its match
            return ()
        if count == 1:
            return (Tick(0.0, c, volume),)
        prices = rng.uniform(low, h, size=count)
        prices[0], prices[-1] = o, c
        if count >= 4:
            at_high, at_low = rng.choice(count - 2, size=2, replace=False) + 1
            prices[int(at_high)], prices[int(at_low)] = h, low
        shares = rng.multinomial(volume - count, np.ones(count) / count) + 1
        seconds = np.sort(rng.uniform(0, 60, size=count))
        seconds[0] = 0.0
        rounded = np.clip(round_ticks(prices), low, h)  # vectorised: 20 us a tick one by one
        if self.mid_points and day >= MID_POINTS_FROM and count >= 4:
            drawn = rng.random(count)  # drawn last: the grid's trades stay as they were
            fixed = [0, count - 1, int(at_high), int(at_low)]  # the bar's open, close, extremes
            drawn[fixed] = 1.0
            rounded = mid_points(rounded, np.full(count, h), drawn, self.mid_points)
        return tuple(
            Tick(s, p, q)
            for s, p, q in zip(seconds.tolist(), rounded.tolist(), shares.tolist(), strict=True)
        )

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Market lives as long as the server
    def nxt_day(self, symbol: str, day: date) -> DayTrades:
        """Nextrade's trades of ``symbol`` on ``day``, 08:00-20:00 KST (`harness.sim.nextrade`).

        Drawn whether or not Nextrade lists it (the caller asks that); some 5,000 trades of
        a day, kept for the Nextrade names' quotes, bars and feeds. Its 종가매매 trades
        (`nxt_closing_day`) among them. An ETF's end before the after-market's orders (15:30):
        Nextrade's after-market takes no ETF (kis-market-2026-09.md §3), nor its 종가매매 here;
        nor a stock under a measure it excludes (unless ``nxt_after_market_measures``).
        """
        path = self._path(symbol, day)
        rng = np.random.default_rng(_seed(self.seed, "nxt", symbol, day.isoformat()))
        share = self.mid_points if day >= MID_POINTS_FROM else 0.0
        drawn = draw_nxt_day(
            rng,
            self.hours(day),
            *(path.trades, path.volume, path.low, path.high, path.prev_close, path.day_close),
            mid_point_share=share,
        )
        listing = self.listings[symbol]
        excluded = not self.nxt_after_market_measures and bool(
            NXT_AFTER_MARKET_EXCLUDES.intersection(listing.measures)
        )
        if listing.group != "ST" or excluded:
            return drawn.before(self.hours(day).nxt_after_from_s)
        closing = self.nxt_closing_day(symbol, day)
        return drawn if closing is None else merged(drawn, closing)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Market lives as long as the server
    def nxt_closing_day(self, symbol: str, day: date) -> DayTrades | None:
        """Nextrade's 종가매매 trades of ``symbol`` on ``day`` (15:30-16:00), at KRX's close.

        None with ``nxt_closing_price`` off or for an ETF. From a generator of its own: the
        rest of Nextrade's day stays as it was (`harness.sim.nextrade.draw_closing_price_day`).
        """
        if not self.nxt_closing_price or self.listings[symbol].group != "ST":
            return None
        path = self._path(symbol, day)
        rng = np.random.default_rng(_seed(self.seed, "nxt_closing", symbol, day.isoformat()))
        day_size = int(path.volume.sum()) // max(1, int(path.trades.sum()))
        span = self.hours(day).closing_price
        return draw_closing_price_day(
            rng, span, float(path.trades.mean()), day_size, path.day_close
        )

    def nxt_ticks(self, symbol: str, day: date, minute: int) -> tuple[Tick, ...]:
        """Nextrade's trades of ``symbol`` in ``minute`` (minutes since 00:00 KST) of ``day``."""
        return tuple(Tick(s, p, q) for s, p, q in self.nxt_day(symbol, day).minute(minute))

    def krx_after_day(self, symbol: str, day: date) -> DayTrades | None:
        """KRX's after-market trades of ``symbol`` on session ``day``, 16:00-20:00 KST.

        None for an ETF (but with ``etfs_after_market``), on a day before
        `KRX_AFTER_MARKET_FROM` (2026-09-14) and with ``krx_after_market`` off. Drawn as
        Nextrade's off-hours minutes (`harness.sim.nextrade.draw_krx_after_day`) off the
        day's bar, from a generator of its own: KRX's bars and Nextrade's day stay as they
        were. KeyError: not a session.
        """
        return self._krx_after_day(symbol, day) if self.trades_krx_after(symbol, day) else None

    def trades_krx_after(self, symbol: str, day: date) -> bool:
        """Whether ``symbol`` trades on KRX's after-market on ``day`` (`krx_after_day`)."""
        traded = ("ST", "EF") if self.etfs_after_market else ("ST",)
        listing = self.listings[symbol]
        excluded = not self.krx_after_market_measures and bool(
            NXT_AFTER_MARKET_EXCLUDES.intersection(listing.measures)
        )
        return (
            self.krx_after_market
            and day >= KRX_AFTER_MARKET_FROM
            and listing.group in traded
            and not excluded
        )

    def vi_window(
        self, symbol: str, day: date, venue: str = "KRX"
    ) -> tuple[datetime, datetime] | None:
        """The symbol's VI of ``day`` on ``venue`` (start, end), if it has one.

        One stock in ten a day on each venue, at a minute its code and the day pick, from
        10:00 to 14:59 KST (an hour later where KRX's day moves: `DayHours.shift`). On KRX,
        for a stock that trades its after-market that day (`trades_krx_after`) with
        ``krx_after_market_vis``, the after-market's minutes count too: as many VIs as its
        238 minutes weigh against the day's 300 move to a minute from 16:00 to 19:57 (the
        others stay where they were). Nextrade's (a stock it trades that
        day: the caller's to know) are drawn apart from KRX's: its static VI's trigger is its
        own price, not KRX's. None before `NXT_VIS_FROM`.
        """
        if venue == "NXT" and day < NXT_VIS_FROM:
            return None
        mark = zlib.crc32(f"{'NX' if venue == 'NXT' else ''}{symbol}{day.isoformat()}".encode())
        if mark % _VI_ONE_IN:
            return None
        evening = (
            venue == "KRX" and self.krx_after_market_vis and self.trades_krx_after(symbol, day)
        )
        hours = self.hours(day)
        drawn, day_minutes = mark // _VI_ONE_IN, _VI_DAY_MINUTES
        from_ = datetime.combine(day, _VI_DAY_FROM, KST) + timedelta(minutes=hours.shift)
        start = from_ + timedelta(minutes=drawn % day_minutes)
        # Moved to the after-market as often as its minutes weigh beside the regular day's
        after = hours.krx_after
        evening_minutes = (after.end_s - after.start_s) // 60 - _VI_MINUTES
        later = drawn // day_minutes % (day_minutes + evening_minutes) - day_minutes
        if evening and later >= 0:
            opens = datetime.combine(day, time(), KST) + timedelta(seconds=after.start_s)
            start = opens + timedelta(minutes=later)
        return start, start + timedelta(minutes=_VI_MINUTES)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one Market lives as long as the server
    def _krx_after_day(self, symbol: str, day: date) -> DayTrades:
        bar = self.daily_bar(symbol, day)
        rng = np.random.default_rng(_seed(self.seed, "krx_after", symbol, day.isoformat()))
        return draw_krx_after_day(
            rng,
            self.hours(day).krx_after,
            bar.trades / BARS_PER_DAY,
            bar.volume // max(1, bar.trades),
            bar.prev_close,
            bar.close,
            mid_point_share=self.mid_points,
        )

    def krx_after_bar(self, symbol: str, day: date) -> tuple[int, int, int, int] | None:
        """KRX's after-market of ``symbol`` on ``day`` summed up: volume, value, high, low.

        None without one (`krx_after_day`) or a trade in it; kept (a past day's daily row):
        asked for a day of a daily chart, so a chart's days are not drawn again (the evening's
        trades are cached for the last 1,024 symbol-days only).
        """
        return self._krx_after_bar(symbol, day) if self.trades_krx_after(symbol, day) else None

    @functools.lru_cache(maxsize=50_000)  # noqa: B019 - one Market lives as long as the server
    def _krx_after_bar(self, symbol: str, day: date) -> tuple[int, int, int, int] | None:
        evening = self._krx_after_day(symbol, day)
        return evening.totals(len(evening.at_s)) if len(evening.at_s) else None


@dataclass(frozen=True, slots=True)
class DayBar:
    """A session's daily bar: what its 391 minute bars add up to (KRW, shares).

    KRX's after-market (`Market.krx_after_bar`) is not in it.
    """

    open: int
    high: int
    low: int
    close: int
    volume: int
    value: int  # `bars_value` of the whole day
    prev_close: int
    trades: int = 0  # how many trades its bars hold


@dataclass(frozen=True, slots=True)
class Quote:
    """A symbol's state at an instant of its session (what inquire-price reports)."""

    price: int
    open: int
    high: int
    low: int
    volume: int  # shares since the open
    value: int  # KRW since the open
    prev_close: int
    last_trade: datetime | None  # KST; None before the first trade


def bar_value(path: DayPath, index: int) -> int:
    """A bar's traded value: its volume at its typical price (ticks carry the exact split)."""
    typical = (path.open[index] + path.high[index] + path.low[index] + path.close[index]) // 4
    return int(path.volume[index] * typical)


def bars_value(path: DayPath, count: int) -> int:
    """The traded value of the first ``count`` bars: `bar_value` summed."""
    return int(path.value_to[min(count, BARS_PER_DAY) - 1]) if count > 0 else 0


def quote_at(market: Market, symbol: str, now: datetime, *, after_market: bool = True) -> Quote:
    """The quote of ``symbol`` at ``now`` (KST); before the open it is the previous close.

    From 16:00 it follows KRX's after-market trades done by ``now`` (`Market.krx_after_day`:
    its price, high and low, volume, value, last trade), unless ``after_market`` is False.
    The market's, without faults: its volume counts the trades a halt or a quiet minute keeps
    from happening too (the server's quotes and feeds count the exchange's trades:
    `harness.sim.tape.volume_to`).
    """
    quote = _regular_quote(market, symbol, now)
    if not after_market or now.hour * 3600 < market.hours(now.date()).krx_after.start_s:
        return quote
    evening = market.krx_after_day(symbol, now.date())
    second = now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6
    done = evening.until(second) if evening is not None else 0
    if evening is None or not done:
        return quote
    volume, value, high, low = evening.totals(done)
    midnight = datetime(now.year, now.month, now.day, tzinfo=KST)
    return Quote(
        int(evening.price[done - 1]),
        quote.open,
        max(quote.high, high),
        min(quote.low, low) if quote.low else low,
        quote.volume + volume,
        quote.value + value,
        quote.prev_close,
        midnight + timedelta(seconds=int(evening.at_s[done - 1])),
    )


def _regular_quote(market: Market, symbol: str, now: datetime) -> Quote:
    """`quote_at` of KRX's regular session alone (to its 15:30 match)."""
    day = now.date()
    path = market.day_path(symbol, day)
    minute = path.hours.bar(now.hour * 60 + now.minute)
    if minute < path.first:  # before the opening's match
        close = path.prev_close
        return Quote(close, 0, 0, 0, 0, 0, close, None)
    full = min(minute, BARS_PER_DAY)
    if full <= path.first:  # no bar traded yet: the opening's runs
        full = 0
    volume = int(path.volume_to[full - 1]) if full else 0
    value = bars_value(path, full)
    prices_high = [int(path.high_to[full - 1])] if full else []
    prices_low = [int(path.low_to[full - 1])] if full else []
    price = int(path.close[full - 1]) if full else path.prev_close
    last = path.bar_start(full - 1) + timedelta(seconds=59) if full else None
    if minute < BARS_PER_DAY:
        second = now.second + now.microsecond / 1e6
        for tick in market.ticks(symbol, day, minute):
            if tick.second > second:
                break
            volume += tick.qty
            value += tick.qty * tick.price
            prices_high.append(tick.price)
            prices_low.append(tick.price)
            price = tick.price
            last = path.bar_start(minute) + timedelta(seconds=int(tick.second))
    if not prices_high:
        return Quote(path.prev_close, 0, 0, 0, 0, 0, path.prev_close, None)
    return Quote(
        price,
        path.day_open,
        max(prices_high),
        min(prices_low),
        volume,
        value,
        path.prev_close,
        last,
    )
