"""KRX trading sessions as pure functions of the dates they are given.

exchange_calendars' XKRX knows the regular holidays; ``extra_closed`` adds the days it misses
(e.g. 2026-06-03, the local-election holiday) and ``extra_open`` removes days it closes by
mistake. The regular session is 09:00-15:30 KST.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from datetime import date, timedelta

import exchange_calendars

from observer.errors import ConfigError

__all__ = ["DEFAULT_EXTRA_CLOSED", "TradingCalendar"]

DEFAULT_EXTRA_CLOSED = frozenset({date(2026, 6, 3)})


@functools.cache
def _xkrx_sessions() -> tuple[frozenset[date], date, date]:
    """XKRX sessions as plain dates, read once (pandas stays out of every later call)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library's own pandas deprecation notices
        calendar = exchange_calendars.get_calendar("XKRX")
        sessions = frozenset(ts.date() for ts in calendar.sessions)
    return sessions, min(sessions), max(sessions)


class TradingCalendar:
    """KRX sessions: XKRX, corrected by configured extra closed and open days."""

    def __init__(
        self,
        extra_closed: Iterable[date] = DEFAULT_EXTRA_CLOSED,
        extra_open: Iterable[date] = (),
    ) -> None:
        self.extra_closed = frozenset(extra_closed)
        self.extra_open = frozenset(extra_open)

    def is_session(self, day: date) -> bool:
        """True if KRX trades on ``day``."""
        if day in self.extra_closed:
            return False
        if day in self.extra_open:
            return True
        sessions, first, last = _xkrx_sessions()
        if not first <= day <= last:
            raise ConfigError(f"{day} is outside the XKRX calendar's range; upgrade it")
        return day in sessions

    def previous_session(self, day: date) -> date:
        """The last session strictly before ``day``."""
        candidate = day - timedelta(days=1)
        while not self.is_session(candidate):
            candidate -= timedelta(days=1)
        return candidate

    def next_session(self, day: date) -> date:
        """The first session strictly after ``day``."""
        candidate = day + timedelta(days=1)
        while not self.is_session(candidate):
            candidate += timedelta(days=1)
        return candidate

    def sessions_before(self, day: date, count: int) -> list[date]:
        """The ``count`` sessions before ``day``, oldest first."""
        sessions: list[date] = []
        while len(sessions) < count:
            day = self.previous_session(day)
            sessions.append(day)
        return sessions[::-1]
