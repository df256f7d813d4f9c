"""The opening half hour ranked, for the context sync (09:29:50) before Track B's first slot.

From Track A's snapshots of 09:00-09:30 each symbol's opening is summarised (`openings`:
open, high, low, last price, and the last snapshot's cumulative volume, never summed), the
universe's means taken (`baseline`), and each symbol ranked (`ranked`) by::

    0.4 x volume / mean volume + 0.3 x range / mean range + 0.3 x 100 x |close - open| / open

The best become the first slot candidates, as volume surges of strength
``min(volume ratio / 3, 1)`` that lapse like one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bus.events import PriceSnapshot

__all__ = ["Baseline", "Opening", "baseline", "openings", "ranked"]


@dataclass(frozen=True, slots=True)
class Opening:
    """One symbol's opening half hour."""

    symbol: str
    open: int
    high: int
    low: int
    close: int
    volume: int

    @property
    def volatility(self) -> float:
        """Range over open."""
        return (self.high - self.low) / self.open if self.open > 0 else 0.0

    @property
    def move(self) -> float:
        """|close - open| / open."""
        return abs(self.close - self.open) / self.open if self.open > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """The universe's opening: means of volume and of range over open."""

    avg_volume: float
    avg_volatility: float
    samples: int


def openings(snapshots: Iterable[PriceSnapshot]) -> list[Opening]:
    """Each symbol's opening from its snapshots (any order), by symbol."""
    by_symbol: dict[str, list[PriceSnapshot]] = {}
    for snapshot in snapshots:
        by_symbol.setdefault(snapshot.symbol, []).append(snapshot)
    found = []
    for symbol in sorted(by_symbol):
        seen = sorted(by_symbol[symbol], key=lambda s: s.observed_ns)
        first, last = seen[0], seen[-1]
        highs = [s.high for s in seen if s.high > 0] or [last.price]
        lows = [s.low for s in seen if s.low > 0] or [last.price]
        opened = first.open or first.price
        found.append(Opening(symbol, opened, max(highs), min(lows), last.price, last.volume))
    return found


def baseline(found: list[Opening]) -> Baseline:
    """The means the composite compares with."""
    if not found:
        return Baseline(0.0, 0.0, 0)
    volatilities = [o.volatility for o in found if o.open > 0]
    return Baseline(
        sum(o.volume for o in found) / len(found),
        sum(volatilities) / len(volatilities) if volatilities else 0.0,
        len(found),
    )


def ranked(found: list[Opening], base: Baseline) -> list[tuple[Opening, float, float]]:
    """(opening, composite score, volume ratio), best first (ties by code)."""
    scored = []
    for o in found:
        volume_ratio = o.volume / base.avg_volume if base.avg_volume > 0 else 0.0
        range_ratio = o.volatility / base.avg_volatility if base.avg_volatility > 0 else 0.0
        score = 0.4 * volume_ratio + 0.3 * range_ratio + 0.3 * 100 * o.move
        scored.append((o, score, volume_ratio))
    return sorted(scored, key=lambda item: (-item[1], item[0].symbol))
