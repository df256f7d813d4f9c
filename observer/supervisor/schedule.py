"""When things happen: phase transitions and job runs, as pure functions of an instant."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from observer.config import CalendarSettings, PhaseSettings, ScheduleEntry
from observer.phases import KST, Phase, PhaseSchedule, phase_at, transitions
from observer.trading_calendar import TradingCalendar

__all__ = ["Timeline", "due_runs", "timeline_from"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKAHEAD_DAYS = 8  # every schedule repeats within a week


def _hhmm(text: str) -> time:
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

    def applies(self, entry: ScheduleEntry, day: date) -> bool:
        """True if ``entry`` runs on ``day``."""
        if entry.days == "daily":
            return True
        if entry.days == "sessions":
            return self.calendar.is_session(day)
        return _WEEKDAYS[day.weekday()] == entry.days

    def next_run(self, entry: ScheduleEntry, after: datetime) -> datetime:
        """The first time ``entry`` is due strictly after ``after``."""
        day = after.astimezone(KST).date()
        for offset in range(LOOKAHEAD_DAYS):
            candidate = day + timedelta(offset)
            at = datetime.combine(candidate, _hhmm(entry.at), tzinfo=KST)
            if at > after and self.applies(entry, candidate):
                return at
        return after + timedelta(days=LOOKAHEAD_DAYS)


def timeline_from(phases: PhaseSettings, calendar: CalendarSettings) -> Timeline:
    """The `Timeline` a configuration describes."""
    return Timeline(
        TradingCalendar(calendar.extra_closed, calendar.extra_open),
        PhaseSchedule(
            warmup=_hhmm(phases.warmup),
            track_a_only=_hhmm(phases.track_a_only),
            full_operation=_hhmm(phases.full_operation),
            track_a_closing=_hhmm(phases.track_a_closing),
            shutdown=_hhmm(phases.shutdown),
            idle=_hhmm(phases.idle),
            shifted_days={late.day: timedelta(minutes=late.minutes) for late in calendar.late_days},
        ),
    )


def due_runs(
    timeline: Timeline, entries: Iterable[ScheduleEntry], since: datetime, until: datetime
) -> list[tuple[datetime, ScheduleEntry]]:
    """The runs of ``entries`` due in ``(since, until]``, oldest first."""
    runs: list[tuple[datetime, ScheduleEntry]] = []
    for entry in entries:
        at = timeline.next_run(entry, since)
        while at <= until:
            runs.append((at, entry))
            at = timeline.next_run(entry, at)
    return sorted(runs, key=lambda run: run[0])
