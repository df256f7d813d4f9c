"""The demo's live view on an 80-column terminal, and its closing summary."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from harness.demo import (
    PROBE_MARGIN,
    RUSH_FACTOR,
    TARGET_WALL_S,
    DemoState,
    demo_clock,
    machine_slower,
    with_margin,
)
from harness.demo_view import render, summary_lines
from observer.calendar.phases import KST, PhaseSchedule

DAY = date(2026, 11, 20)


def _state() -> DemoState:
    begin = datetime(2026, 11, 20, 4, 55, tzinfo=KST)
    end = datetime(2026, 11, 20, 15, 40, tzinfo=KST)
    clock, _ = demo_clock(DAY, begin, end, 121, 242)
    phases = [(at, phase.value) for at, phase in PhaseSchedule().starts(DAY)]
    state = DemoState(clock, begin, end, phases, ["acct1", "acct2"])
    counters: dict[str, dict[str, float]] = {
        "track_a": {"cycle_size": 1057, "cycle_done": 812, "cycle_running": 1, "cycles": 8},
        "track_b": {
            "capacity_per_account": 41,
            "slots.acct1": 28,
            "registrations.acct1": 41,
            "slots.acct2": 27,
            "registrations.acct2": 39,
        },
        "gap_recovery": {"gaps_detected": 82, "queue_depth": 3, "gaps_recovered": 79},
    }
    state.status = {
        "phase": "full_operation",
        "programs": [
            {
                "name": name,
                "state": "running",
                "restarts": 0,
                "cpu_percent": 12.5,
                "rss_bytes": 80 << 20,
                "detail": "ready " + "x" * 80,
                "counters": counters.get(name, {}),
            }
            for name in ("writer", "master_file", "universe", "track_a", "track_b", "gap_recovery")
        ],
    }
    state.alerts = [(1_795_132_800_000_000_000, "warning", "track_a_missing", "m" * 200)]
    return state


def _screen(state: DemoState) -> list[str]:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    console.print(render(state))
    return console.export_text().splitlines()


def test_the_live_view_fits_80_columns_and_never_cuts_a_program_name() -> None:
    lines = _screen(_state())
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0] for line in lines if line.split()}
    assert {"track_a", "track_b", "gap_recovery", "master_file"} <= rows
    text = "\n".join(lines)
    assert "812 / 1,057 symbols, in progress" in text
    assert "acct1 28 symbols 41/41" in text and "acct2 27 symbols 39/41" in text
    assert "3 open, 79 recovered" in text
    assert "track_a_missing" in text and "full_operation" in text


def test_the_summary_names_the_figures_it_promises() -> None:
    summary: dict[str, Any] = {
        "date": "2026-11-20",
        "speed": 121,
        "idle_speed": 242,
        "after_speed": 303,
        "wall_s": 270.0,
        "phases": [{"at": "07:50", "phase": "warmup"}],
        "processes": {
            "writer": {"state": "running", "restarts": 0, "replaced": {"hung": 0, "crashed": 0}},
            "track_b": {"state": "running", "restarts": 2, "replaced": {"hung": 1, "crashed": 1}},
        },
        "replaced": {"hung": 1, "crashed": 1},
        "cpu_s": {"writer": 12.5, "simulator": 80.0},
        "load_average": [2.5, 1.75, 1.0],
        "cpus": 2,
        "universe": {
            "members": 1057,
            "based_on": "2026-11-19",
            "nxt": {"eligible": 690, "halted": 0, "unknown": 2},
        },
        "track_a": {
            "complete": 39,
            "cycles": 40,
            "snapshots": 42280,
            "overran": 1,
            "longest_s": 612.0,
            "rate_limit_errors": 5,
            "cut_off": [
                {
                    "cycle": "20261120-1030",
                    "venue": "KRX",
                    "succeeded": 900,
                    "unfinished": 114,
                    "rate_per_s": 180.5,
                }
            ],
            "by_venue": {
                "KRX": {"cycles": 40, "complete": 39, "members_max": 1014, "snapshots": 40456},
                "NXT": {"cycles": 5, "complete": 5, "members_max": 530, "snapshots": 2650},
            },
        },
        "rest": {"calls": 50000, "busiest_second": 300, "limit_per_second": 400, "egw00201": 5},
        "track_b": {
            "max_slots_used": 60,
            "registrations_peak": 82,
            "capacity": 82,
            "allocations": 400,
            "replacements": 200,
            "overflow": 10,
            "overflow_pct": 1.0,
            "ticks": 500000,
            "ticks_sent": 500100,
            "ticks_by_venue": {"KRX": [400000, 400050], "NXT": [100000, 100050]},
            "ticks_by_session": {"KRX regular": 499000, "KRX closing_auction": 1000},
            "symbols_streamed": 200,
        },
        "gaps": {
            "detected": 170,
            "recovered": 169,
            "unrecoverable": 1,
            "by_reason": {"disconnect": 164},
            "recovered_bars": 200,
            "queue_peak": 82,
            "short_success_pct": 100.0,
            "detect_to_recovered_p99_s": 60.0,
        },
        "reconciliation": {
            "watched_minutes": 36785,
            "completeness_pct": 99.7,
            "stream_pct": 99.4,
            "short": 98,
            "misses": 0,
            "unexplained": 0,
            "excess": 0,
            "calls": 2400,
            "minutes_by_session": {"KRX regular": 30000, "NXT after_market": 6785},
            "settled": True,
        },
        "listings": {"instruments": 21770, "new": 3, "changed": 1, "removed": 1, "reviews_held": 0},
        "events_committed": 600000,
        "healthy": True,
        "etf": {"listed": 1000, "collected": 998, "coverage_pct": 99.8, "stale": False},
    }
    text = "\n".join(summary_lines(summary))
    assert "ETFs: 1,000 listed, 998 collected for the day (99.8%)" in text
    assert "1,057 symbols (closes of 2026-11-19); Nextrade trades 690 of them, 2 not known" in text
    assert "writer: running, 0 restarts, 12.5 s CPU" in text
    assert "track_b: running, 2 restarts, replaced (1 hung, 1 crashed), 0 s CPU" in text
    assert "programs replaced after a hang or a crash: 1 hung, 1 crashed" in text
    assert "load average at the end 2.5 1.75 1 on 2 CPUs" in text
    assert "cycle 20261120-1030 (KRX) cut off: 900 answered, 114 unfinished at 180.5" in text
    assert "NXT: 5 of 5 cycles complete over up to 530 members, 2,650 snapshots" in text
    assert "5 rate-limit errors" in text
    assert "up to 60 symbols in 82 of 82 registrations" in text
    assert "by venue (stored/sent): KRX 400,000/400,050, NXT 100,000/100,050" in text
    assert "169 recovered, 1 unrecoverable" in text and "500,000 ticks stored" in text
    assert "by session: KRX closing_auction 1,000, KRX regular 499,000" in text
    assert (
        "reconciliation: 36,785 watched minutes, 99.7% complete (99.4% from the stream alone), "
        "98 short (0 found only here, 0 unexplained), 0 excess, 2,400 REST calls; by session: "
        "KRX regular 30,000, NXT after_market 6,785\n"
    ) in text
    assert text.endswith("events committed: 600,000; healthy")
    summary["reconciliation"]["settled"] = False
    assert "6,785; still running when the day ended" in "\n".join(summary_lines(summary))
    summary["healthy"] = False
    summary["problems"] = ["universe: 2 runs failed in a row (last: exit code 1); backoff"]
    assert "\n".join(summary_lines(summary)).endswith(
        "600,000; UNHEALTHY: universe: 2 runs failed in a row (last: exit code 1); backoff"
    )


def test_a_machine_twice_as_slow_gets_the_default_speeds_halved_and_given_speeds_as_given() -> None:
    """`machine_slower` divides the default speeds (the day in TARGET_WALL_S on the reference
    machine) by the factor: every part of the day twice as long; ``--speed`` is not touched."""
    begin = datetime(2026, 11, 20, 4, 55, tzinfo=KST)
    end = datetime(2026, 11, 20, 20, 30, tzinfo=KST)
    _, reference = demo_clock(DAY, begin, end, None, None)
    _, slower = demo_clock(DAY, begin, end, None, None, slower=2.0)
    assert reference["speed"] / 2 <= slower["speed"] <= reference["speed"] / 2 + 1
    speed = slower["speed"]
    assert (slower["idle_speed"], slower["after_speed"], slower["slower"]) == (
        speed * 1.25,
        speed * 2,
        2.0,
    )
    _, given = demo_clock(DAY, begin, end, 121, 242, slower=2.0)
    assert (given["speed"], given["idle_speed"]) == (121, 242)
    assert 1.0 <= machine_slower(rounds=1) < 50


def test_the_opening_rush_runs_slower_and_the_day_still_fits_its_wall_time() -> None:
    """09:00-09:40 runs at RUSH_FACTOR of the busy speed (its wall time longer by as much),
    the hours around it at the busy speed, and the whole default day in about TARGET_WALL_S."""
    begin = datetime(2026, 11, 20, 4, 55, tzinfo=KST)
    end = datetime(2026, 11, 20, 20, 30, tzinfo=KST)
    clock, speeds = demo_clock(DAY, begin, end, None, None)
    assert speeds["rush_speed"] == speeds["speed"] * RUSH_FACTOR

    def wall_s(hour: int, minute: int) -> float:
        instant = datetime(2026, 11, 20, hour, minute, tzinfo=KST)
        return clock.wall_ns_at(int(instant.timestamp()) * 10**9) / 1e9

    assert wall_s(9, 40) - wall_s(9, 0) == pytest.approx(2400 / speeds["rush_speed"], rel=1e-6)
    assert wall_s(9, 0) - wall_s(8, 20) == pytest.approx(2400 / speeds["speed"], rel=1e-6)
    assert wall_s(10, 20) - wall_s(9, 40) == pytest.approx(2400 / speeds["speed"], rel=1e-6)
    day_s = wall_s(20, 30) - wall_s(4, 55)
    assert TARGET_WALL_S * 0.97 <= day_s <= TARGET_WALL_S  # the speed rounded up
    started, late = demo_clock(DAY, datetime(2026, 11, 20, 9, 25, tzinfo=KST), end, None, None)
    assert started.speed == late["rush_speed"]  # a start inside the rush begins at its speed


@given(st.floats(0.1, 20.0), st.floats(0.1, 20.0))
def test_the_probe_s_margin_rises_with_the_shortfall_to_a_quarter(a: float, b: float) -> None:
    """`with_margin`: 1.0 at the reference's speed or faster, never below the probe's figure,
    at most a quarter above it, and rising with it (no step where a machine 1 % slower ran
    the day 26 % slower)."""
    low, high = sorted((a, b))
    assert with_margin(low) <= with_margin(high)
    for measured in (low, high):
        factor = with_margin(measured)
        if measured <= 1.0:
            assert factor == 1.0
        else:
            assert measured - 0.01 <= factor <= measured * PROBE_MARGIN + 0.01
    assert with_margin(1.01) <= 1.03 and with_margin(2.0) == 2.5
