"""An ETF's day in the simulator: units, multiple, NAV and net assets, one story for all.

KIS (FHPST02400000, FHPST02440200, FHKST121600C0) and the KRX portal (MDCSTAT04601,
MDCSTAT04301) read the same figures from here, so the two sources agree as they do live: units
change on some sessions by whole creation units, the multiple follows the name (레버리지 2, 인버스
-1), NAV is the close over one plus the day's premium and can be withheld until
``Faults.etf_nav_late_until``, and both KIS calls count the same constituents (`holdings`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time

import numpy as np

from harness.sim.market import Market, _seed

__all__ = [
    "CU_UNITS",
    "EtfDay",
    "Holding",
    "etf_day",
    "holding_count",
    "holdings",
    "multiple",
    "multiple_label",
    "nav_published",
    "units",
]

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


@dataclass(frozen=True, slots=True)
class Holding:
    """One line of an ETF's constituents: code, name, weight (percent) and value (KRW)."""

    code: str
    name: str
    weight_pct: float
    value_krw: int


_CASH = (("KRD010010001", "원화예금"), ("CASH00000001", "설정현금액"))
_FUTURES = ("KR4101V30005", "코스피200 F 202612")


def holdings(market: Market, symbol: str, net_assets_krw: int) -> list[Holding]:
    """The ETF's lines: its stocks, two cash lines, and futures for a multiple other than 1.

    As in KRX's PDF (ref-KRX §1.5): the cash lines are the KRW deposit and the creation cash,
    the futures line is negative for inverse ETFs, and the weights do not sum to exactly 100.

    Leveraged and inverse ETFs hold half their assets in stocks (short for inverse) and the
    rest of the exposure in futures.
    """
    mult = multiple(market.listings[symbol].name)
    scale = 0.985 if mult == 1 else 0.5  # the rest is cash (and futures exposure)
    sign = 1 if mult > 0 else -1
    weights = [(s, market.listings[s].name, w * scale * sign) for s, w in market.components(symbol)]
    weights += [(_CASH[0][0], _CASH[0][1], 100 - 100 * scale - 0.37), (*_CASH[1], 0.0)]
    if mult != 1:  # futures carry the exposure beyond the stocks'
        weights.append((*_FUTURES, (mult - sign) * 100.0))
    return [
        Holding(code, name, round(w, 2), int(net_assets_krw * round(w, 2) / 100))
        for code, name, w in weights
    ]


def holding_count(market: Market, symbol: str) -> int:
    """How many lines `holdings` gives (what FHPST02400000's ``etf_cnfg_issu_cnt`` says)."""
    return (
        len(market.components(symbol)) + len(_CASH) + (multiple(market.listings[symbol].name) != 1)
    )
