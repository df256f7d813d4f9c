"""When the supervisor's jobs run, as pure functions of an instant and the day's timeline.

The timeline itself (calendar, phase times, the next phase change) is `observer.calendar.timeline`,
shared with the workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from observer.calendar.phases import KST
from observer.calendar.timeline import LOOKAHEAD_DAYS, Timeline, hhmm
from observer.supervisor.settings import ScheduleEntry

__all__ = ["applies", "due_at", "due_runs", "missed_run", "next_run"]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def applies(timeline: Timeline, entry: ScheduleEntry, day: date) -> bool:
    """True if ``entry`` runs on ``day``."""
    if entry.days == "daily":
        return True
    if entry.days == "sessions":
        return timeline.calendar.is_session(day)
    return _WEEKDAYS[day.weekday()] == entry.days


def due_at(timeline: Timeline, entry: ScheduleEntry, day: date) -> datetime:
    """When ``entry`` is due on ``day``: its time, moved as the session is on a late day.

    A session's entries (``sessions``, a weekday) from its warm-up on keep their place
    beside its hours: on a day closing an hour late, the ETF job due 40 minutes after the
    close runs 40 minutes after that day's close, not during its last cycles (an entry
    after the close moves as the close does: not at all on the year's first session). Earlier ones
    (the master files at 06:00 and the universe after them, 06:10) and ``daily`` entries keep
    their time.
    """
    time_of_day = hhmm(entry.at)
    at = datetime.combine(day, time_of_day, tzinfo=KST)
    if entry.days == "daily" or time_of_day < timeline.schedule.warmup:
        return at
    return at + timeline.schedule.shift(day, time_of_day)


def next_run(timeline: Timeline, entry: ScheduleEntry, after: datetime) -> datetime:
    """The first time ``entry`` is due strictly after ``after``."""
    day = after.astimezone(KST).date()
    for offset in range(-1, LOOKAHEAD_DAYS):  # -1: a late day's entry moved past midnight
        candidate = day + timedelta(offset)
        at = due_at(timeline, entry, candidate)
        if at > after and applies(timeline, entry, candidate):
            return at
    return after + timedelta(days=LOOKAHEAD_DAYS)


def due_runs(
    timeline: Timeline, entries: Iterable[ScheduleEntry], since: datetime, until: datetime
) -> list[tuple[datetime, ScheduleEntry]]:
    """The runs of ``entries`` due in ``(since, until]``, oldest first."""
    runs: list[tuple[datetime, ScheduleEntry]] = []
    for entry in entries:
        at = next_run(timeline, entry, since)
        while at <= until:
            runs.append((at, entry))
            at = next_run(timeline, entry, at)
    return sorted(runs, key=lambda run: run[0])


def missed_run(
    timeline: Timeline,
    entries: Iterable[ScheduleEntry],
    now: datetime,
    window: timedelta,
    handled: datetime | None,
) -> tuple[datetime, ScheduleEntry] | None:
    """The latest run of ``entries`` due in the ``window`` up to ``now`` and after ``handled``.

    A supervisor that starts runs it once: the run of a job that came due while none ran,
    and was not run since (``handled``: the last due run a supervisor dealt with, None
    without a record). Only the latest: a later entry of the same job takes the place of an
    earlier one, and a run due longer than ``window`` ago is left to the next entry.
    """
    since = now - window if handled is None else max(now - window, handled)
    runs = due_runs(timeline, entries, since, now)
    return runs[-1] if runs else None
