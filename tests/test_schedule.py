"""Job times and phase transitions as pure functions, on tables of instants."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from observer.config import CalendarSettings, LateDay, PhaseSettings, ScheduleEntry
from observer.phases import KST, Phase
from observer.supervisor.schedule import due_runs, next_run
from observer.timeline import timeline_from

TIMELINE = timeline_from(
    PhaseSettings(), CalendarSettings(late_days=(LateDay(day=date(2026, 11, 19), minutes=60),))
)


def at(day: str, hhmm: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(hhmm), tzinfo=KST)


@pytest.mark.parametrize(
    ("entry", "after", "expected"),
    [
        (ScheduleEntry(at="05:00"), at("2026-11-20", "04:59"), at("2026-11-20", "05:00")),
        # Friday to Monday; over Christmas; over the 2026-06-03 election XKRX misses
        (ScheduleEntry(at="05:00"), at("2026-11-20", "05:00"), at("2026-11-23", "05:00")),
        (ScheduleEntry(at="05:00"), at("2026-12-24", "06:00"), at("2026-12-28", "05:00")),
        (ScheduleEntry(at="05:00"), at("2026-06-02", "06:00"), at("2026-06-04", "05:00")),
        (
            ScheduleEntry(at="03:00", days="sun"),
            at("2026-11-20", "12:00"),
            at("2026-11-22", "03:00"),
        ),
        (
            ScheduleEntry(at="21:00", days="daily"),
            at("2026-11-21", "21:00"),
            at("2026-11-22", "21:00"),
        ),
    ],
)
def test_next_run(entry: ScheduleEntry, after: datetime, expected: datetime) -> None:
    assert next_run(TIMELINE, entry, after) == expected


def test_due_runs_are_those_in_the_half_open_window() -> None:
    entries = [ScheduleEntry(at="05:00"), ScheduleEntry(at="06:00", args=("--check",))]
    runs = due_runs(TIMELINE, entries, at("2026-11-20", "05:00"), at("2026-11-23", "05:30"))
    assert [(t, e.args) for t, e in runs] == [
        (at("2026-11-20", "06:00"), ("--check",)),
        (at("2026-11-23", "05:00"), ()),
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (at("2026-11-20", "07:00"), (at("2026-11-20", "08:00"), Phase.WARMUP)),
        (at("2026-11-20", "09:30"), (at("2026-11-20", "15:00"), Phase.TRACK_A_CLOSING)),
        (at("2026-11-20", "21:00"), (at("2026-11-23", "08:00"), Phase.WARMUP)),  # over a weekend
        (at("2026-11-19", "08:30"), (at("2026-11-19", "09:00"), Phase.WARMUP)),  # CSAT: +1 h
    ],
)
def test_next_transition(after: datetime, expected: tuple[datetime, Phase]) -> None:
    when = TIMELINE.next_transition(after)
    assert when == expected[0]
    assert TIMELINE.phase_at(when) is expected[1]
