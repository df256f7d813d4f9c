"""``[phases]`` and ``[calendar]``: when each phase starts; corrections to the trading calendar."""

from __future__ import annotations

from datetime import date

from observer.tables import ClockTime, Strict

__all__ = ["CalendarSettings", "LateDay", "PhaseSettings"]


class PhaseSettings(Strict, frozen=True):
    """When each phase of a session day starts (KST)."""

    warmup: ClockTime = "08:00"
    track_a_only: ClockTime = "09:00"
    full_operation: ClockTime = "09:30"
    track_a_closing: ClockTime = "15:00"
    shutdown: ClockTime = "15:30"
    idle: ClockTime = "21:00"


class LateDay(Strict, frozen=True):
    """A session day with shifted hours (CSAT: 10:00-16:30; the year's first: 10:00-15:30)."""

    day: date
    minutes: int  # its open (warmup to full_operation), and its close unless close_minutes
    close_minutes: int | None = None  # its close (track_a_closing on): the year's first, 0


class CalendarSettings(Strict, frozen=True):
    """Corrections to exchange_calendars' XKRX."""

    extra_closed: tuple[date, ...] = (date(2026, 6, 3),)
    extra_open: tuple[date, ...] = ()
    late_days: tuple[LateDay, ...] = ()
