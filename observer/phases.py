"""The day's operation phases as pure functions of the instant they are given.

On a KRX session day (KST): IDLE until 08:00, WARMUP until 09:00, TRACK_A_ONLY until 09:30,
FULL_OPERATION until 15:00, TRACK_A_CLOSING until 15:30, SHUTDOWN until 21:00, then IDLE.
Non-trading days are IDLE all day. Special-hours days (the first session of the year and the
CSAT day open an hour late) shift every intraday time by their configured offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum

from observer.trading_calendar import TradingCalendar

__all__ = ["KST", "Phase", "PhaseSchedule", "phase_at", "transitions"]

KST = timezone(timedelta(hours=9))


class Phase(StrEnum):
    """What the system does now."""

    IDLE = "idle"  # nothing runs but scheduled jobs
    WARMUP = "warmup"  # token renewal, WebSocket pre-connect, health check
    TRACK_A_ONLY = "track_a_only"  # REST snapshots; Track B waits for context
    FULL_OPERATION = "full_operation"  # Track A and Track B
    TRACK_A_CLOSING = "track_a_closing"  # Track B released; Track A to the close
    SHUTDOWN = "shutdown"  # after the close: flush, reports; backup at its end


@dataclass(frozen=True, slots=True)
class PhaseSchedule:
    """When each phase starts on a session day (KST), and the days with shifted hours."""

    warmup: time = time(8, 0)
    track_a_only: time = time(9, 0)
    full_operation: time = time(9, 30)
    track_a_closing: time = time(15, 0)
    shutdown: time = time(15, 30)
    idle: time = time(21, 0)
    shifted_days: dict[date, timedelta] = field(default_factory=dict)  # e.g. CSAT: +1 h

    def starts(self, day: date) -> list[tuple[datetime, Phase]]:
        """Each phase's start on session ``day``, in order, shifted if the day is special."""
        shift = self.shifted_days.get(day, timedelta(0))
        pairs = [
            (self.warmup, Phase.WARMUP),
            (self.track_a_only, Phase.TRACK_A_ONLY),
            (self.full_operation, Phase.FULL_OPERATION),
            (self.track_a_closing, Phase.TRACK_A_CLOSING),
            (self.shutdown, Phase.SHUTDOWN),
            (self.idle, Phase.IDLE),
        ]
        return [(datetime.combine(day, at, tzinfo=KST) + shift, phase) for at, phase in pairs]


def phase_at(calendar: TradingCalendar, schedule: PhaseSchedule, instant: datetime) -> Phase:
    """The phase in force at ``instant`` (any time zone)."""
    local = instant.astimezone(KST)
    if not calendar.is_session(local.date()):
        return Phase.IDLE
    current = Phase.IDLE
    for start, phase in schedule.starts(local.date()):
        if local >= start:
            current = phase
    return current


def transitions(
    calendar: TradingCalendar, schedule: PhaseSchedule, day: date
) -> list[tuple[datetime, Phase]]:
    """The phase changes of ``day`` (none on a non-trading day)."""
    return schedule.starts(day) if calendar.is_session(day) else []
