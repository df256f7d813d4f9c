"""Which session an ETF command may read, decided before the job signals READY.

Kept apart from `workers.etf.jobs` (KIS, KRX and the database: over a second to load): the
commands check their ``--date`` and the phase against these first, so that a refused run
exits 2 before READY, which the supervisor takes for a usage error (a ``ctl run`` refused,
nothing retried) rather than a failed run retried into FATAL.
"""

from __future__ import annotations

from datetime import date, datetime

from observer.calendar.phases import Phase
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings

__all__ = ["calendar_of", "judgeable", "target_session"]

_SESSION_OPEN = {Phase.TRACK_A_ONLY, Phase.FULL_OPERATION, Phase.TRACK_A_CLOSING}


def calendar_of(settings: Settings) -> TradingCalendar:
    """The sessions the ETF jobs count: XKRX with the configured corrections."""
    return TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)


def target_session(settings: Settings, now_kst: datetime) -> date | None:
    """The last completed session at ``now_kst``; None while a session is under way."""
    timeline = timeline_from(settings.phases, settings.calendar)
    today = now_kst.date()
    phase = timeline.phase_at(now_kst)
    if phase in _SESSION_OPEN:
        return None
    if timeline.calendar.is_session(today) and (phase is Phase.SHUTDOWN or now_kst.hour >= 12):
        return today
    return timeline.calendar.previous_session(today)


def judgeable(settings: Settings, now_kst: datetime, day: date) -> str | None:
    """Why the health of ``day`` cannot be judged at ``now_kst`` (None: it can).

    A day without a session never has rows: judged, it read as a missed session, and the
    check raised an ``etf_stale`` that no later run could end. A later day has no rows yet.
    """
    today = now_kst.date()
    if day > today:
        return f"{day} is in the future (today is {today})"
    if not calendar_of(settings).is_session(day):
        previous = calendar_of(settings).previous_session(day)
        return f"{day} is not a KRX session (the one before it: {previous})"
    return None
