"""An ETF's day in the simulator: units, multiple, NAV and net assets, one story for all.

KIS (FHPST02400000, FHPST02440200, FHKST121600C0) and the KRX portal (MDCSTAT04601,
MDCSTAT04301) read the same figures from here, so the two sources agree as they do live:

* units change on some sessions by whole creation units (creations and redemptions), so
  net assets move with more than the price;
* the tracking multiple follows the name (레버리지 2, 인버스 -1), as KRX labels it;
* NAV is the close over one plus the day's premium (a few basis points either way);
* the newest NAV can be withheld until a configured time (``Faults.etf_nav_late_until``):
  both sources then answer it as not yet published.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time

import numpy as np

from harness.sim.market import Market, _seed

__all__ = ["CU_UNITS", "EtfDay", "etf_day", "multiple", "multiple_label", "nav_published", "units"]

CU_UNITS = 50_000  # units per creation unit (the most common CU_QTY at KRX)


def multiple(name: str) -> int:
    """The tracking multiple an ETF's name implies: 2 (레버리지), -1 (인버스), else 1."""
    if "레버리지" in name:
        return 2
    if "인버스" in name:
        return -2 if "2X" in name else -1
    return 1


def multiple_label(name: str) -> str:
    """KRX's ``IDX_CALC_INST_NM2`` label for the multiple."""
    return {1: "일반", 2: "2X 레버리지", -1: "1X 인버스", -2: "2X 인버스"}[multiple(name)]


@functools.lru_cache(maxsize=4096)
def _unit_walk(market: Market, symbol: str) -> np.ndarray:
    """Units on every session: a seeded walk of whole creation units, never below one CU."""
    rng = np.random.default_rng(_seed(market.seed, symbol, "units"))
    days = len(market.sessions)
    moves = rng.choice([-2, -1, 0, 0, 0, 0, 1, 2], size=days) * CU_UNITS
    walk = market.listings[symbol].listed_shares + np.cumsum(moves)
    return np.asarray(np.maximum(walk, CU_UNITS), dtype=np.int64)


def units(market: Market, symbol: str, day: date) -> int:
    """Listed units of ETF ``symbol`` on session ``day``."""
    return int(_unit_walk(market, symbol)[market._index(day)])


def nav_published(late_until: str | None, day: date, now: datetime) -> bool:
    """Whether ``day``'s NAV is out at ``now`` (KST): always, unless it is today's and late."""
    if late_until is None or day != now.date():
        return True
    return now.time() >= time.fromisoformat(late_until)


@dataclass(frozen=True, slots=True)
class EtfDay:
    """One ETF on one session: what both sources report (NAV None: not published yet)."""

    close: int
    nav: float | None
    premium: float  # close / nav - 1
    units: int

    @property
    def net_assets_krw(self) -> int:
        """Units times NAV, in KRW (0 while the NAV is not published, as KRX shows it)."""
        return int(self.units * self.nav) if self.nav is not None else 0


def etf_day(market: Market, symbol: str, day: date, close: int, published: bool) -> EtfDay:
    """``symbol`` on ``day`` with ``close`` (the session's price so far, or its close)."""
    premium = market.etf_premium(symbol, day)
    nav = close / (1 + premium) if published else None
    return EtfDay(close, nav, premium, units(market, symbol, day))
