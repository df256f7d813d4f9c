"""The simulator's hours of a day, read from the observer's dated table (`observer.calendar`).

KRX's regular session is 391 minute bars, 09:00 to its 15:30 match (`harness.sim.paths`). On a
day that opens late and closes on time (``[calendar] late_days``: the year's first session,
10:00-15:30) the bars before its opening trade nothing (`KrxDay.first`), and the morning's
auction and status records move with the opening. Nextrade keeps its day's
own sessions (`observer.calendar.settings.NXT_HOURS`: that day no pre-market, its main session
from 10:00:30). A day whose close moves too (the CSAT day, 10:00-16:30) would move the whole
evening: the simulator draws it at an ordinary day's hours, and a day it runs live must be one
it trades as the table says (`KrxDay.as_table`: the demo refuses another).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from bus.events import TradingSession, Venue
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from

__all__ = ["OPEN_MINUTE", "KrxDay", "krx_day", "spans"]

OPEN_MINUTE = 9 * 60  # bar 0: KRX's ordinary opening, minutes of the KST day
_CLOSE_MINUTE = 15 * 60 + 30  # the last bar: KRX's closing match
_TABLE = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))


@dataclass(frozen=True, slots=True)
class KrxDay:
    """KRX's regular session on one day, as the bars have it.

    ``first``: the first bar that trades (its regular session's opening, minutes after 09:00:
    its morning's auction moves as far, `harness.sim.market.DayPath.morning`). ``as_table``:
    whether the simulator's day is the table's (not where the close moves: drawn at ordinary
    hours).
    """

    first: int
    as_table: bool = True


@functools.cache
def krx_day(day: date) -> KrxDay:
    """KRX's regular session on ``day``, as the simulator trades it."""
    found = {session: (start, end) for start, end, session in spans("KRX", day)}
    opens, closes = found["regular"][0], found["closing_auction"][1]
    if _minute(closes) != _CLOSE_MINUTE:
        return KrxDay(0, as_table=False)
    return KrxDay(_minute(opens) - OPEN_MINUTE)


def spans(venue: Venue, day: date) -> list[tuple[datetime, datetime, TradingSession]]:
    """``venue``'s sessions on ``day`` (KST start, end, session) as the table has them.

    Whether ``day`` is a session is the simulator's calendar's to say, not asked here.
    """
    return [(start, end, span.session) for start, end, span in _TABLE.hours[venue].on(day)]


def _minute(at: datetime) -> int:
    return at.hour * 60 + at.minute
