"""Which stored ETF sessions are missing or still without a NAV, and from when to ask again.

Pure functions of the stored rows (symbol -> day -> newest row) and the calendar's sessions,
for the daily run (`workers.etf.daily`): a *hole* is a session of the backfill window
missing after an ETF's first stored one (`gap_start`: from when to ask the series); a
session is *pending* while its row has no final NAV (`pending_days`, `pending_start`); a day
is *filled* when every ETF that should have its row has one (`missing_on`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date

from bus.events import EtfDaily

__all__ = ["gap_start", "holes", "missing_on", "pending_days", "pending_start"]


def _span(stored: Collection[date], window: Sequence[date], listed_on: date | None) -> list[date]:
    """The window's sessions from the ETF's first stored one in it (and its listing)."""
    first = next((day for day in window if day in stored), None)
    if first is None:
        return []
    return [d for d in window if d >= first and (listed_on is None or d >= listed_on)]


def holes(
    stored: Collection[date], window: Sequence[date], listed_on: date | None = None
) -> list[date]:
    """The sessions of ``window`` (oldest first) missing after the first stored one."""
    return [day for day in _span(stored, window, listed_on) if day not in stored]


def gap_start(
    stored: Collection[date], window: Sequence[date], listed_on: date | None = None
) -> date | None:
    """The first hole, when the series should be asked from it on this run; else None.

    Asked while the stored run after the last hole is 0, 1, 2, 4, 8... sessions long: at
    once after an outage, again after a failed call, and rarely for a day KIS lacks.

    The coverage rule of `workers.etf.metrics.backfill_due` alone would let an outage of up to
    20 % of the window (50 sessions) stand, past the weekly repair's reach (20 sessions). A hole
    KIS cannot fill is asked again on the 1st, 2nd, 4th, 8th... session after it, not every run.
    """
    span = _span(stored, window, listed_on)
    missing = [day for day in span if day not in stored]
    if not missing:
        return None
    streak = sum(1 for day in span if day > missing[-1])
    return missing[0] if streak & (streak - 1) == 0 else None


def pending_start(stored: Mapping[date, EtfDaily], recent: Iterable[date]) -> date | None:
    """The first of the ``recent`` sessions whose stored row has no final NAV, or None."""
    return next((d for d in recent if d in stored and not stored[d].nav_final), None)


def pending_days(
    symbols: Iterable[str], history: Mapping[str, Mapping[date, EtfDaily]], days: Iterable[date]
) -> dict[date, list[str]]:
    """Per session of ``days``, the ETFs whose stored row has no final NAV (sorted)."""
    found: dict[date, list[str]] = {}
    for symbol in sorted(symbols):
        stored = history.get(symbol, {})
        for day in days:
            row = stored.get(day)
            if row is not None and not row.nav_final:
                found.setdefault(day, []).append(symbol)
    return found


def missing_on(
    day: date,
    symbols: Iterable[str],
    history: Mapping[str, Mapping[date, EtfDaily]],
    listed_on: Mapping[str, date | None],
) -> list[str]:
    """The ETFs that should have a row of ``day`` and have none (sorted).

    Those listed by then (when the list tells it), else those with a stored row before it:
    an ETF listed later never had the day.
    """
    found = []
    for symbol in sorted(symbols):
        stored = history.get(symbol, {})
        if day in stored:
            continue
        listed = listed_on.get(symbol)
        if (listed is not None and listed <= day) or any(d < day for d in stored):
            found.append(symbol)
    return found
