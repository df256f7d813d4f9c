"""Minute bars recovered for gaps are published once: `BarLedger`.

It remembers every (symbol, venue, minute) already recovered, loaded from the database at
start-up, so a gap retried, overlapping another or resumed after a crash publishes only the
minutes nobody has published. The bars themselves come from `observer.kis.bars`.
"""

from __future__ import annotations

from collections.abc import Iterable

from bus.events import Bar

__all__ = ["BarLedger"]


class BarLedger:
    """The (symbol, venue, minute) triples already recovered: each is published once."""

    def __init__(self, stored: Iterable[tuple[str, str, int]] = ()) -> None:
        self._minutes: dict[tuple[str, str], set[int]] = {}
        for symbol, venue, minute_ns in stored:
            self._minutes.setdefault((symbol, venue), set()).add(minute_ns)

    def holds(self, symbol: str, minutes: Iterable[int], venue: str = "KRX") -> bool:
        """Whether every one of ``minutes`` (opening instants) has its bar published already."""
        held = self._minutes.get((symbol, venue), set())
        return all(minute in held for minute in minutes)

    def claim(self, symbol: str, bars: Iterable[Bar], venue: str = "KRX") -> list[Bar]:
        """The bars not published yet, in time order, now counted as published."""
        held = self._minutes.setdefault((symbol, venue), set())
        fresh = sorted((b for b in bars if b.minute_ns not in held), key=lambda b: b.minute_ns)
        held.update(b.minute_ns for b in fresh)
        return fresh
