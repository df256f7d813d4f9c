"""When Track A's cycles run: aligned to the clock, from Track A's start to the close.

A session day's KRX cycles start at every multiple of the interval (09:00, 09:10, ...) from
the ``track_a_only`` phase on and before ``shutdown``, plus, when configured, one at the
shutdown instant itself, whose answers are the day's closing prices. Given the venues' hours,
KRX's continuous sessions after that (its after-market, 16:00-20:00 since 2026-09-14) have KRX
cycles too, and Nextrade's cycles ask its prices in the hours KRX's cycles leave: every multiple
of the interval within its sessions and outside KRX's cycles' window (08:00-08:40 and
15:40-19:50 on an ordinary day), and, when configured, one at its close (20:00). Where both
venues' cycles would start at once (KRX's after-market), KRX's run half an interval later
(16:05, 16:15, ..., 19:55): one cycle at a time, each with its own id. Each cycle must finish
before the next is due, whichever venue's; the day's last has one interval. Days with shifted
hours (CSAT, the year's first session) shift every cycle with their phases and venues' hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bus.events import Venue
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import LOOKAHEAD_DAYS, Timeline
from observer.calendar.venues import CONTINUOUS, Venues

__all__ = ["Cycle", "current_or_next", "cycles_of"]


@dataclass(frozen=True, slots=True)
class Cycle:
    """One scheduled cycle: it starts at ``scheduled`` and must be done by ``deadline``."""

    scheduled: datetime
    deadline: datetime
    venue: Venue = "KRX"  # whose prices it asks: KRX's, or Nextrade's of the names it trades

    @property
    def cycle_id(self) -> str:
        """``YYYYMMDD-HHMM`` of the scheduled start, KST."""
        return self.scheduled.astimezone(KST).strftime("%Y%m%d-%H%M")

    @property
    def trade_date(self) -> date:
        """The session day (KST)."""
        return self.scheduled.astimezone(KST).date()


def cycles_of(
    timeline: Timeline,
    day: date,
    interval_min: int,
    closing: bool,
    venues: Venues | None = None,
    *,
    nextrade: bool = True,
) -> list[Cycle]:
    """The cycles of ``day`` in order (none on a day without a session).

    ``venues``: the venues' hours, for KRX's after-market cycles and, with ``nextrade``,
    Nextrade's (`Cycle.venue` "NXT").
    """
    if not timeline.calendar.is_session(day):
        return []
    starts = {phase: at for at, phase in timeline.schedule.starts(day)}
    begin, close = starts[Phase.TRACK_A_ONLY], starts[Phase.SHUTDOWN]
    step = timedelta(minutes=interval_min)
    times: list[tuple[datetime, Venue]] = [(at, "KRX") for at in _steps(begin, close, step)]
    if closing:
        times.append((close, "KRX"))
    if venues is not None:
        late = step / 2 if nextrade else timedelta(0)  # Nextrade's cycles keep the multiples
        for start, end, span in venues.spans("KRX", day):
            if span.session in CONTINUOUS and start >= close:
                times += [(at + late, "KRX") for at in _steps(start, end - late, step)]
    if venues is not None and nextrade:
        spans = venues.spans("NXT", day)
        for start, end, _ in spans:
            times += [(at, "NXT") for at in _steps(start, end, step) if not begin <= at <= close]
        if closing and spans and spans[-1][1] > close:
            times.append((spans[-1][1], "NXT"))
    times.sort()
    deadlines = [at for at, _ in times[1:]] + ([times[-1][0] + step] if times else [])
    return [Cycle(start, end, venue) for (start, venue), end in zip(times, deadlines, strict=True)]


def _steps(begin: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """The multiples of ``step`` (from midnight KST) in ``[begin, end)``."""
    midnight = datetime.combine(begin.astimezone(KST).date(), datetime.min.time(), tzinfo=KST)
    at = midnight + -((midnight - begin) // step) * step  # the first multiple at or after begin
    found = []
    while at < end:
        found.append(at)
        at += step
    return found


def current_or_next(
    timeline: Timeline,
    now: datetime,
    interval_min: int,
    closing: bool,
    venues: Venues | None = None,
    *,
    nextrade: bool = True,
) -> Cycle | None:
    """The cycle whose window holds ``now``, else the next one (within a week)."""
    day = now.astimezone(KST).date()
    for offset in range(LOOKAHEAD_DAYS):
        every = cycles_of(
            timeline, day + timedelta(offset), interval_min, closing, venues, nextrade=nextrade
        )
        for cycle in every:
            if now < cycle.deadline:
                return cycle
    return None
