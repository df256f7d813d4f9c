"""KRX trading sessions as pure functions of the dates they are given.

exchange_calendars' XKRX knows the regular holidays; ``extra_closed`` adds the days it misses
(e.g. 2026-06-03, the local-election holiday) and ``extra_open`` removes days it closes by
mistake. The regular session is 09:00-15:30 KST. Building XKRX takes 2-8 s and every process
needs it, so the sessions are cached in an owner-only file per library version and day
(`_xkrx_sessions`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterable
from datetime import date, timedelta
from importlib.metadata import version
from itertools import pairwise
from pathlib import Path

from observer.errors import ConfigError
from observer.process.private_files import write_private

__all__ = ["DEFAULT_EXTRA_CLOSED", "TradingCalendar"]

log = logging.getLogger(__name__)

DEFAULT_EXTRA_CLOSED = frozenset({date(2026, 6, 3)})


def _cache_file() -> Path:
    base = os.environ.get("OBSERVER_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    folder = Path(base) / "observer" if base else Path.home() / ".cache" / "observer"
    # The library's range runs from 20 years before its *today* to a year after: the real
    # date (not the product clock) decides which file is current.
    return folder / f"xkrx-{version('exchange_calendars')}-{date.today().isoformat()}.txt"


def _cached(path: Path) -> list[date] | None:
    """The sessions in ``path`` if it is ours and whole, else None.

    Whole: strictly increasing, from at least 19 years ago to at least 300 days ahead (the
    library's range is 20 years back and one ahead), so a torn file is rebuilt.
    """
    try:
        if path.stat().st_uid != os.getuid():
            return None
        days = [date.fromisoformat(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("the calendar cache %s does not read (%s): built again", path, exc)
        return None
    today = date.today()
    whole = (
        len(days) > 1
        and days[0] <= today - timedelta(days=19 * 365)
        and days[-1] >= today + timedelta(days=300)
        and all(a < b for a, b in pairwise(days))
    )
    if not whole:
        log.warning("the calendar cache %s is not whole: built again", path)
        return None
    return days


@functools.cache
def _xkrx_sessions() -> tuple[frozenset[date], date, date]:
    """XKRX sessions as plain dates: from the cache file, else built once and cached.

    The file is under ``$OBSERVER_CACHE_DIR/observer``, else ``$XDG_CACHE_HOME/observer``,
    else ``~/.cache/observer``, written atomically and durably. One that is not whole (torn,
    foreign) is built again and replaced, logged: it holds nothing the library cannot give
    again, so it raises no alert.
    """
    path = _cache_file()
    days = _cached(path)
    if days is None:
        import exchange_calendars  # pandas: only when the cache misses

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the library's own pandas deprecation notices
            calendar = exchange_calendars.get_calendar("XKRX")
            days = [ts.date() for ts in calendar.sessions]
        with contextlib.suppress(OSError):  # no cache: the next process builds it again
            write_private(path, "\n".join(d.isoformat() for d in days).encode())
    sessions = frozenset(days)
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
