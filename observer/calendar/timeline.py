"""The day's timeline of one configuration: its trading calendar and phase times.

The supervisor follows it (phase changes, and the job schedule in
`observer.supervisor.schedule`), and the workers read it (Track A's cycles, Track B's start),
all as pure functions of the instant they are given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from observer.calendar.phases import KST, Phase, PhaseSchedule, phase_at, transitions
from observer.calendar.settings import CalendarSettings, PhaseSettings
from observer.calendar.trading import TradingCalendar

__all__ = ["LOOKAHEAD_DAYS", "Timeline", "hhmm", "timeline_from"]

LOOKAHEAD_DAYS = 8  # every schedule repeats within a week


def hhmm(text: str) -> time:
    """The time of day a configuration writes ``"HH:MM"``."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class Timeline:
    """The calendar and phase times of one configuration."""

    calendar: TradingCalendar
    schedule: PhaseSchedule

    def phase_at(self, instant: datetime) -> Phase:
        """The phase in force at ``instant``."""
        return phase_at(self.calendar, self.schedule, instant)

    def next_transition(self, after: datetime) -> datetime:
        """The first phase start strictly after ``after`` (within the look-ahead)."""
        day = after.astimezone(KST).date()
        for offset in range(LOOKAHEAD_DAYS):
            for start, _ in transitions(self.calendar, self.schedule, day + timedelta(offset)):
                if start > after:
                    return start
        return after + timedelta(days=LOOKAHEAD_DAYS)


def timeline_from(phases: PhaseSettings, calendar: CalendarSettings) -> Timeline:
    """The `Timeline` a configuration describes."""
    return Timeline(
        TradingCalendar(calendar.extra_closed, calendar.extra_open),
        PhaseSchedule(
            warmup=hhmm(phases.warmup),
            track_a_only=hhmm(phases.track_a_only),
            full_operation=hhmm(phases.full_operation),
            track_a_closing=hhmm(phases.track_a_closing),
            shutdown=hhmm(phases.shutdown),
            idle=hhmm(phases.idle),
            shifted_days={late.day: timedelta(minutes=late.minutes) for late in calendar.late_days},
            close_shifted_days={
                late.day: timedelta(minutes=late.close_minutes)
                for late in calendar.late_days
                if late.close_minutes is not None
            },
        ),
    )
