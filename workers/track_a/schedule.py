"""When Track A's cycles run: aligned to the clock, from Track A's start to the close.

A session day's cycles start at every multiple of the interval (09:00, 09:10, ...) from the
``track_a_only`` phase on and before ``shutdown``, plus, when configured, one at the
shutdown instant itself, whose answers are the day's closing prices. Each cycle must finish
before the next is due; the closing cycle has one interval. Days with shifted hours (CSAT,
the year's first session) shift every cycle with their phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import LOOKAHEAD_DAYS, Timeline

__all__ = ["Cycle", "current_or_next", "cycles_of"]


@dataclass(frozen=True, slots=True)
class Cycle:
    """One scheduled cycle: it starts at ``scheduled`` and must be done by ``deadline``."""

    scheduled: datetime
    deadline: datetime

    @property
    def cycle_id(self) -> str:
        """``YYYYMMDD-HHMM`` of the scheduled start, KST."""
        return self.scheduled.astimezone(KST).strftime("%Y%m%d-%H%M")

    @property
    def trade_date(self) -> date:
        """The session day (KST)."""
        return self.scheduled.astimezone(KST).date()


def cycles_of(timeline: Timeline, day: date, interval_min: int, closing: bool) -> list[Cycle]:
    """The cycles of ``day`` in order (none on a day without a session)."""
    if not timeline.calendar.is_session(day):
        return []
    starts = {phase: at for at, phase in timeline.schedule.starts(day)}
    begin, close = starts[Phase.TRACK_A_ONLY], starts[Phase.SHUTDOWN]
    step = timedelta(minutes=interval_min)
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=KST)
    at = midnight + -((midnight - begin) // step) * step  # the first multiple at or after begin
    times = []
    while at < close:
        times.append(at)
        at += step
    if closing:
        times.append(close)
    deadlines = [*times[1:], times[-1] + step] if times else []
    return [Cycle(start, end) for start, end in zip(times, deadlines, strict=True)]


def current_or_next(
    timeline: Timeline, now: datetime, interval_min: int, closing: bool
) -> Cycle | None:
    """The cycle whose window holds ``now``, else the next one (within a week)."""
    day = now.astimezone(KST).date()
    for offset in range(LOOKAHEAD_DAYS):
        for cycle in cycles_of(timeline, day + timedelta(offset), interval_min, closing):
            if now < cycle.deadline:
                return cycle
    return None
