"""ETF figures from stored daily rows: premium windows, the 52-week range, the AUM check.

Pure functions of the rows and sessions they are given (the caller reads ``etf_daily`` and
the calendar), tested against independent computations. A premium window of W sessions is
None below ``ceil(0.8 W)`` sessions with a premium (`premium_windows`); the 52-week range is
``(d0 - 364 days, d0]`` with its basis (`range_52w`); a backfill is judged by the coverage
of its window, never by "a row is stored" (`backfill_due`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

__all__ = [
    "MIN_COVERAGE",
    "WINDOWS",
    "Range52w",
    "Window",
    "aum_check_pct",
    "backfill_due",
    "chart_start",
    "premium_windows",
    "range_52w",
]

WINDOWS = (20, 60, 120, 250)  # sessions
MIN_COVERAGE = 0.8  # of a window's sessions that must have a premium
_CENT = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Window:
    """One premium window: signed and absolute means (percent), and the sessions counted."""

    sessions: int  # W
    n: int
    mean: Decimal | None
    mean_abs: Decimal | None


def premium_windows(
    premiums: Mapping[date, Decimal],
    sessions: Sequence[date],
    windows: Iterable[int] = WINDOWS,
    min_coverage: float = MIN_COVERAGE,
) -> dict[int, Window]:
    """The premium windows ending at ``sessions[-1]`` (d0).

    ``premiums`` maps a session to that day's premium (percent; days without one are
    absent); ``sessions`` lists the sessions up to d0, oldest first, at least as many as the
    largest window when the history is that long. Days in ``premiums`` that are not among
    the window's sessions (holidays, days after d0) are ignored.
    """
    result = {}
    for size in windows:
        span = sessions[-size:] if size else []
        values = [premiums[day] for day in span if day in premiums]
        n = len(values)
        if n and n >= math.ceil(min_coverage * size):
            mean = (sum(values, Decimal(0)) / n).quantize(_CENT)
            mean_abs = (sum((abs(v) for v in values), Decimal(0)) / n).quantize(_CENT)
            result[size] = Window(size, n, mean, mean_abs)
        else:
            result[size] = Window(size, n, None, None)
    return result


@dataclass(frozen=True, slots=True)
class Range52w:
    """The highest high and lowest low of 52 weeks, their dates, and what they were read from."""

    high: int
    high_date: date
    low: int
    low_date: date
    # "high_low"; "close" when some day lacked its high or low; "partial" when fewer than
    # MIN_COVERAGE of the span's sessions had a price (not a 52-week figure).
    basis: str
    close_days: int = 0  # days in the span whose close stood in for a missing high or low
    sessions: int = 0  # sessions of the span with a price
    expected: int = 0  # sessions of the span (since the listing, when known)


def range_52w(
    days: Mapping[date, tuple[int | None, int | None, int | None]],
    d0: date,
    sessions: Collection[date],
    listed_on: date | None = None,
    min_coverage: float = MIN_COVERAGE,
) -> Range52w | None:
    """Over the days in ``(d0 - 364 days, d0]``: ``days`` maps a day to (high, low, close).

    ``sessions``: the trading calendar's sessions, at least those of the span; those before
    ``listed_on`` (when known) are not expected. The earliest day wins a tie. None when no
    day in the span has a price; basis ``partial`` when fewer than ``min_coverage`` of the
    expected sessions have one.
    """
    start = d0 - timedelta(days=364)
    best_high: tuple[int, date] | None = None
    best_low: tuple[int, date] | None = None
    close_days = seen = 0
    calendar = set(sessions)
    for day in sorted(days):
        if not start <= day <= d0:
            continue
        high, low, close = days[day]
        if high is None or low is None:
            close_days += 1
        high = high if high is not None else close
        low = low if low is not None else close
        seen += day in calendar and (high is not None or low is not None)
        if high is not None and (best_high is None or high > best_high[0]):
            best_high = (high, day)
        if low is not None and (best_low is None or low < best_low[0]):
            best_low = (low, day)
    if best_high is None or best_low is None:
        return None
    first = start if listed_on is None else max(start, listed_on)
    expected = sum(first <= day <= d0 for day in calendar)
    if seen < math.ceil(min_coverage * expected):
        basis = "partial"
    else:
        basis = "close" if close_days else "high_low"
    return Range52w(
        best_high[0], best_high[1], best_low[0], best_low[1], basis, close_days, seen, expected
    )


def backfill_due(
    stored: Collection[date],
    window: Sequence[date],
    listed_on: date | None = None,
    min_coverage: float = MIN_COVERAGE,
) -> bool:
    """Whether an ETF's history should be asked for (FHPST02440200) over ``window``.

    ``window``: the backfill's sessions before d0, oldest first; ``stored``: the ETF's
    stored days; ``listed_on``: its listing day, when known (no session before it can have
    a row). Due when the stored sessions cover less than ``min_coverage`` of the window's
    since the listing, and the streak (stored sessions ending at the window's last one,
    unbroken) is 0 or a power of two long: a history call that keeps failing, or KIS
    lacking the history, is asked again on the 1st, 2nd, 4th, 8th... session of the streak,
    at most ``2 + log2(len(window))`` times (9 for 250 sessions), not on every run; by then
    the streak covers the window itself.
    """
    span = [day for day in window if listed_on is None or day >= listed_on]
    have = sum(day in stored for day in span)
    if have >= math.ceil(min_coverage * len(span)):
        return False
    streak = 0
    for day in reversed(span):
        if day not in stored:
            break
        streak += 1
    return streak & (streak - 1) == 0


def chart_start(
    history: Mapping[date, tuple[int | None, int | None]], d0: date, backfill: date | None
) -> date | None:
    """The first day whose daily high and low should be fetched (FHKST03010100), or None.

    ``history`` maps the stored days before ``d0`` to (high, low). An ETF being backfilled
    from ``backfill`` needs the 52 weeks before ``d0`` (those of them the backfill covers);
    otherwise the earliest stored day of the span that lacks its high or low (rows from
    the NAV series have neither). Days not stored at all are not asked for: the chart
    cannot give them a NAV.
    """
    start = d0 - timedelta(days=364)
    if backfill is not None:
        return max(start, backfill)
    lacking = [d for d, (high, low) in history.items() if start <= d < d0 and None in (high, low)]
    return min(lacking) if lacking else None


def aum_check_pct(
    net_assets_krw: int | None, units: int | None, nav: Decimal | None
) -> Decimal | None:
    """How far net assets are from listed units x NAV, in percent (None: cannot tell)."""
    if not net_assets_krw or not units or nav is None or nav <= 0:
        return None
    implied = Decimal(units) * nav
    return (abs(Decimal(net_assets_krw) - implied) / implied * 100).quantize(_CENT)
