"""The operation timeline on tables of instants (seed 004), for normal, holiday and late days."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from observer.calendar.clock import ManualClock, now_utc
from observer.calendar.phases import KST, Phase, PhaseSchedule, phase_at, transitions
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.config.load import load_settings
from observer.errors import ConfigError
from tests.support import ROOT

CALENDAR = TradingCalendar()
FIRST = date(2027, 1, 4)  # the year's first session: it opens an hour late, closes as usual
SCHEDULE = PhaseSchedule(
    shifted_days={date(2026, 11, 19): timedelta(hours=1), FIRST: timedelta(hours=1)},  # CSAT
    close_shifted_days={FIRST: timedelta(0)},
)


def at(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), tzinfo=KST)


NORMAL = date(2026, 11, 20)


@pytest.mark.parametrize(
    ("instant", "phase"),
    [
        (at(NORMAL, 5, 0), Phase.IDLE),
        (at(NORMAL, 7, 49, 59), Phase.IDLE),
        (at(NORMAL, 7, 50), Phase.WARMUP),
        (at(NORMAL, 9, 0), Phase.TRACK_A_ONLY),
        (at(NORMAL, 9, 29, 59), Phase.TRACK_A_ONLY),
        (at(NORMAL, 9, 30), Phase.FULL_OPERATION),
        (at(NORMAL, 14, 59, 59), Phase.FULL_OPERATION),
        (at(NORMAL, 15, 0), Phase.TRACK_A_CLOSING),
        (at(NORMAL, 15, 30), Phase.SHUTDOWN),
        (at(NORMAL, 20, 59, 59), Phase.SHUTDOWN),
        (at(NORMAL, 21, 0), Phase.IDLE),
        (datetime(2026, 11, 20, 0, 30, tzinfo=KST).astimezone(KST), Phase.IDLE),
        (datetime.fromisoformat("2026-11-20T01:00:00+00:00"), Phase.FULL_OPERATION),  # 10:00 KST
    ],
)
def test_a_normal_session_day(instant: datetime, phase: Phase) -> None:
    assert phase_at(CALENDAR, SCHEDULE, instant) is phase


@pytest.mark.parametrize("day", [date(2026, 11, 21), date(2026, 12, 25), date(2026, 6, 3)])
def test_non_trading_days_are_idle_all_day(day: date) -> None:
    assert all(phase_at(CALENDAR, SCHEDULE, at(day, h, 0)) is Phase.IDLE for h in range(24))
    assert transitions(CALENDAR, SCHEDULE, day) == []


def test_a_late_opening_day_shifts_every_phase() -> None:
    csat = date(2026, 11, 19)
    assert phase_at(CALENDAR, SCHEDULE, at(csat, 9, 30)) is Phase.WARMUP
    assert phase_at(CALENDAR, SCHEDULE, at(csat, 10, 0)) is Phase.TRACK_A_ONLY
    assert phase_at(CALENDAR, SCHEDULE, at(csat, 16, 15)) is Phase.TRACK_A_CLOSING
    assert [t.strftime("%H:%M") for t, _ in transitions(CALENDAR, SCHEDULE, csat)] == [
        "08:50",
        "10:00",
        "10:30",
        "16:00",
        "16:30",
        "22:00",
    ]


def test_transitions_of_a_normal_day_are_in_order() -> None:
    phases = [p for _, p in transitions(CALENDAR, SCHEDULE, NORMAL)]
    assert phases == [
        Phase.WARMUP,
        Phase.TRACK_A_ONLY,
        Phase.FULL_OPERATION,
        Phase.TRACK_A_CLOSING,
        Phase.SHUTDOWN,
        Phase.IDLE,
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (
            NORMAL,
            [
                ("07:50", "warmup"),
                ("09:00", "track_a_only"),
                ("09:30", "full_operation"),
                ("15:00", "track_a_closing"),
                ("15:30", "shutdown"),
                ("21:00", "idle"),
            ],
        ),
        (date(2026, 12, 25), []),  # Christmas: idle all day
        (
            date(2026, 11, 19),
            [
                ("08:50", "warmup"),
                ("10:00", "track_a_only"),
                ("10:30", "full_operation"),
                ("16:00", "track_a_closing"),
                ("16:30", "shutdown"),
                ("22:00", "idle"),
            ],
        ),  # CSAT: one hour late
        (
            FIRST,
            [
                ("08:50", "warmup"),
                ("10:00", "track_a_only"),
                ("10:30", "full_operation"),
                ("15:00", "track_a_closing"),
                ("15:30", "shutdown"),
                ("21:00", "idle"),
            ],
        ),  # the year's first session: its open an hour late, its close as usual
    ],
)
def test_a_day_on_the_manual_clock(day: date, expected: list[tuple[str, str]]) -> None:
    clock = ManualClock(int(at(day, 0, 0).timestamp()) * 10**9)
    seen: list[tuple[str, str]] = []
    phase = phase_at(CALENDAR, SCHEDULE, now_utc(clock))
    for _ in range(24 * 60):
        clock.advance(60)
        now = phase_at(CALENDAR, SCHEDULE, now_utc(clock))
        if now is not phase:
            seen.append((now_utc(clock).astimezone(KST).strftime("%H:%M"), now.value))
            phase = now
    assert seen == expected


def test_the_shipped_first_session_of_the_year_closes_at_the_usual_time() -> None:
    """KRX opens the year's first session at 10:00 and closes it at 15:30 (the CSAT day
    shifts both): the shipped late day moved the close to 16:30 too."""
    shipped = load_settings(ROOT / "config" / "observer.toml")
    timeline = timeline_from(shipped.phases, shipped.calendar)
    assert transitions(timeline.calendar, timeline.schedule, FIRST) == transitions(
        CALENDAR, SCHEDULE, FIRST
    )
    assert timeline.phase_at(at(FIRST, 15, 45)) is Phase.SHUTDOWN
    # A time of day moves as the open before the close's phases, then as the close.
    shifts = [timeline.schedule.shift(FIRST, time(h, 10)) for h in (8, 14, 16)]
    assert shifts == [timedelta(hours=1), timedelta(hours=1), timedelta(0)]


@pytest.mark.parametrize(
    ("late", "shown"),
    [
        # The open pushed past the close (its phases at 12:00 here): full_operation at 12:10.
        ("minutes = 160, close_minutes = 0", "full_operation 12:10, track_a_closing 12:00"),
        # The close pushed past midnight.
        ("minutes = 0, close_minutes = 200", "idle 00:20"),
    ],
)
def test_a_late_day_whose_open_passes_its_close_is_refused(
    tmp_path: Path, late: str, shown: str
) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(
        '[phases]\ntrack_a_closing = "12:00"\n'
        f"[calendar]\nlate_days = [{{ day = 2026-11-19, {late} }}]\n"
    )
    with pytest.raises(ConfigError, match=r"calendar\.late_days: 2026-11-19") as caught:
        load_settings(config)
    assert shown in str(caught.value)


def test_a_late_day_with_minutes_alone_shifts_its_close_too(tmp_path: Path) -> None:
    config = tmp_path / "observer.toml"
    config.write_text("[calendar]\nlate_days = [{ day = 2026-11-19, minutes = 60 }]\n")
    settings = load_settings(config)
    timeline = timeline_from(settings.phases, settings.calendar)
    csat = [t.strftime("%H:%M") for t, _ in timeline.schedule.starts(date(2026, 11, 19))]
    assert csat == ["08:50", "10:00", "10:30", "16:00", "16:30", "22:00"]
