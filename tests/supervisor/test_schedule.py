"""Job times and phase transitions as pure functions, on tables of instants."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from observer.calendar.phases import KST, Phase
from observer.calendar.settings import CalendarSettings, LateDay, PhaseSettings
from observer.calendar.timeline import timeline_from
from observer.config.load import load_settings
from observer.supervisor.schedule import applies, due_at, due_runs, missed_run, next_run
from observer.supervisor.settings import ScheduleEntry

LATE_DAYS = (
    LateDay(day=date(2026, 11, 19), minutes=60),  # opens and closes an hour late
    LateDay(day=date(2027, 1, 4), minutes=60, close_minutes=0),  # opens late, closes on time
)
TIMELINE = timeline_from(PhaseSettings(), CalendarSettings(late_days=LATE_DAYS))


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


@pytest.mark.parametrize(
    ("entry", "after", "expected"),
    [  # 2026-11-19 opens an hour late: a session's entries from 08:00 move, daily ones do not
        (ScheduleEntry(at="16:10"), at("2026-11-19", "16:09"), at("2026-11-19", "17:10")),
        (
            ScheduleEntry(at="16:40", days="thu"),
            at("2026-11-19", "12:00"),
            at("2026-11-19", "17:40"),
        ),
        (
            ScheduleEntry(at="06:00", days="daily"),
            at("2026-11-19", "05:00"),
            at("2026-11-19", "06:00"),
        ),
        (ScheduleEntry(at="05:00"), at("2026-11-19", "04:00"), at("2026-11-19", "05:00")),
        # moved past midnight: due on the next day's clock, once
        (ScheduleEntry(at="23:30"), at("2026-11-19", "23:50"), at("2026-11-20", "00:30")),
        (ScheduleEntry(at="23:30"), at("2026-11-20", "00:30"), at("2026-11-20", "23:30")),
        # the year's first session: an entry after its (unshifted) close keeps its time
        (ScheduleEntry(at="16:10"), at("2027-01-04", "16:09"), at("2027-01-04", "16:10")),
        (ScheduleEntry(at="08:30"), at("2027-01-04", "08:00"), at("2027-01-04", "09:30")),
    ],
)
def test_a_late_day_moves_its_sessions_entries(
    entry: ScheduleEntry, after: datetime, expected: datetime
) -> None:
    assert next_run(TIMELINE, entry, after) == expected


def test_every_shipped_job_runs_in_the_same_phase_on_a_late_day() -> None:
    settings = load_settings()
    timeline = timeline_from(settings.phases, settings.calendar)
    assert len(settings.calendar.late_days) >= 2  # both kinds: CSAT, the year's first session
    for late in (d.day for d in settings.calendar.late_days):
        normal = timeline.calendar.previous_session(late)
        assert timeline.calendar.is_session(late)
        for name, program in settings.programs.items():
            for entry in program.schedule:
                if applies(timeline, entry, late) and applies(timeline, entry, normal):
                    days = (normal, late)
                    phases = [timeline.phase_at(due_at(timeline, entry, d)) for d in days]
                    assert phases[0] == phases[1], (late, name, entry.at, phases)


def test_due_runs_are_those_in_the_half_open_window() -> None:
    entries = [ScheduleEntry(at="05:00"), ScheduleEntry(at="06:00", args=("--check",))]
    runs = due_runs(TIMELINE, entries, at("2026-11-20", "05:00"), at("2026-11-23", "05:30"))
    assert [(t, e.args) for t, e in runs] == [
        (at("2026-11-20", "06:00"), ("--check",)),
        (at("2026-11-23", "05:00"), ()),
    ]


BACKUP = ScheduleEntry(at="21:00")
TWICE = (ScheduleEntry(at="09:00", days="daily"), ScheduleEntry(at="15:00", days="daily"))
SIX_HOURS = timedelta(hours=6)


@pytest.mark.parametrize(
    ("entries", "now", "handled", "expected"),
    [
        # The supervisor restarted at 21:00:30: the 21:00 backup is run, with or without a record.
        ((BACKUP,), at("2026-11-20", "21:00:30"), None, at("2026-11-20", "21:00")),
        (
            (BACKUP,),
            at("2026-11-20", "21:00:30"),
            at("2026-11-19", "21:00"),
            at("2026-11-20", "21:00"),
        ),
        ((BACKUP,), at("2026-11-20", "21:00"), None, at("2026-11-20", "21:00")),  # due at the start
        ((BACKUP,), at("2026-11-20", "21:00:30"), at("2026-11-20", "21:00"), None),  # it ran
        ((BACKUP,), at("2026-11-20", "20:59"), None, None),  # not due yet
        ((BACKUP,), at("2026-11-21", "03:01"), None, None),  # more than six hours ago
        ((BACKUP,), at("2026-11-21", "02:59"), None, at("2026-11-20", "21:00")),  # past midnight
        ((BACKUP,), at("2026-11-23", "12:00"), None, None),  # no session since Friday's
        # A later entry of the same job takes the place of the earlier one: one run, not two.
        (TWICE, at("2026-11-20", "15:30"), None, at("2026-11-20", "15:00")),
        (TWICE, at("2026-11-20", "15:30"), at("2026-11-20", "15:00"), None),
        (TWICE, at("2026-11-20", "10:00"), at("2026-11-20", "09:00"), None),
        # A record ahead of the clock (it went back): nothing is run again.
        ((BACKUP,), at("2026-11-20", "21:00:30"), at("2026-11-20", "21:30"), None),
    ],
)
def test_missed_run_is_the_latest_due_in_the_window_and_not_handled(
    entries: tuple[ScheduleEntry, ...],
    now: datetime,
    handled: datetime | None,
    expected: datetime | None,
) -> None:
    run = missed_run(TIMELINE, entries, now, SIX_HOURS, handled)
    assert (run[0] if run else None) == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (at("2026-11-20", "07:00"), (at("2026-11-20", "07:50"), Phase.WARMUP)),
        (at("2026-11-20", "09:30"), (at("2026-11-20", "15:00"), Phase.TRACK_A_CLOSING)),
        (at("2026-11-20", "21:00"), (at("2026-11-23", "07:50"), Phase.WARMUP)),  # over a weekend
        (at("2026-11-19", "08:30"), (at("2026-11-19", "08:50"), Phase.WARMUP)),  # CSAT: +1 h
    ],
)
def test_next_transition(after: datetime, expected: tuple[datetime, Phase]) -> None:
    when = TIMELINE.next_transition(after)
    assert when == expected[0]
    assert TIMELINE.phase_at(when) is expected[1]
