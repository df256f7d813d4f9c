"""The day's operation phases as pure functions of the instant they are given.

On a KRX session day (KST): IDLE until 07:50, WARMUP until 09:00, TRACK_A_ONLY until 09:30,
FULL_OPERATION until 15:00, TRACK_A_CLOSING until 15:30, SHUTDOWN until 21:00, then IDLE;
non-trading days are IDLE all day. Special-hours days shift the open's phases (warmup to
full_operation) and the close's (track_a_closing on) by their configured offsets: the CSAT day
moves both an hour (10:00-16:30), the year's first session only its open (10:00-15:30).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from itertools import pairwise

from observer.calendar.trading import TradingCalendar

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

    warmup: time = time(7, 50)
    track_a_only: time = time(9, 0)
    full_operation: time = time(9, 30)
    track_a_closing: time = time(15, 0)
    shutdown: time = time(15, 30)
    idle: time = time(21, 0)
    # A late day's shift of its open (warmup, track_a_only, full_operation), e.g. CSAT: +1 h;
    # also of its close (track_a_closing, shutdown, idle) unless close_shifted_days has it.
    shifted_days: dict[date, timedelta] = field(default_factory=dict)
    # A late day whose close moves otherwise than its open: the year's first session, 0.
    close_shifted_days: dict[date, timedelta] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a late day whose shifts would reorder its phases or leave its day."""
        for day in self.shifted_days.keys() | self.close_shifted_days.keys():
            starts = [at for at, _ in self.starts(day)]
            if any(a >= b for a, b in pairwise(starts)) or {s.date() for s in starts} != {day}:
                at = ", ".join(f"{p.value} {s:%H:%M}" for s, p in self.starts(day))
                raise ValueError(
                    f"calendar.late_days: {day} shifted would start its phases out of order "
                    f"or outside the day ({at}): its open must stay before its close"
                )

    def starts(self, day: date) -> list[tuple[datetime, Phase]]:
        """Each phase's start on session ``day``, in order, shifted if the day is special."""
        pairs = [
            (self.warmup, Phase.WARMUP),
            (self.track_a_only, Phase.TRACK_A_ONLY),
            (self.full_operation, Phase.FULL_OPERATION),
            (self.track_a_closing, Phase.TRACK_A_CLOSING),
            (self.shutdown, Phase.SHUTDOWN),
            (self.idle, Phase.IDLE),
        ]
        return [
            (datetime.combine(day, at, tzinfo=KST) + self.shift(day, at), phase)
            for at, phase in pairs
        ]

    def shift(self, day: date, at: time) -> timedelta:
        """How far ``day``'s hours move the time of day ``at``.

        As its open before ``track_a_closing``, as its close from then on: a job due after
        the close moves with the close.
        """
        opens = self.shifted_days.get(day, timedelta(0))
        return opens if at < self.track_a_closing else self.close_shifted_days.get(day, opens)

    def close_shifts(self) -> dict[date, timedelta]:
        """Each late day's shift of its close: what is due after a session moves by it."""
        days = self.shifted_days.keys() | self.close_shifted_days.keys()
        return {day: self.shift(day, self.track_a_closing) for day in days}


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
