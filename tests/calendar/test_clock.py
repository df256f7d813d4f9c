"""Clocks: simulated time is the same in every process given the same spec."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from observer.calendar.clock import ManualClock, SimulatedClock, clock_from_spec, now_utc
from observer.errors import ConfigError
from tests.support import ROOT

NS = 10**9


def test_a_spec_round_trips_and_agrees_across_processes() -> None:
    clock = clock_from_spec("2026-11-20T08:55:00+09:00@60x")
    assert isinstance(clock, SimulatedClock)
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from observer.calendar.clock import clock_from_spec as c; "
            "print(c(sys.argv[1]).now_ns())",
            clock.spec,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    theirs = int(child.stdout)
    ours = clock.now_ns()
    # Both read the same function of the wall clock; the child ran at most seconds earlier,
    # i.e. at most seconds*60 of simulated time.
    assert 0 <= ours - theirs < 60 * 60 * NS
    assert now_utc(clock).year == 2026


def test_simulated_time_runs_at_its_speed() -> None:
    anchor = time.time_ns()
    clock = SimulatedClock(start_ns=0, speed=100.0, anchor_ns=anchor - NS)  # one wall second ago
    assert 100 * NS <= clock.now_ns() < 200 * NS


def test_manual_clock_wakes_sleepers_only_when_advanced() -> None:
    async def scenario() -> list[str]:
        clock = ManualClock(start_ns=0)
        woke: list[str] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append(name)

        tasks = [asyncio.create_task(sleeper("a", 5)), asyncio.create_task(sleeper("b", 10))]
        await asyncio.sleep(0)
        clock.advance(4)
        await asyncio.sleep(0)
        assert woke == []
        clock.advance(1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woke == ["a"]
        clock.advance(5)
        await asyncio.gather(*tasks)
        return woke

    assert asyncio.run(scenario()) == ["a", "b"]


@pytest.mark.parametrize("spec", ["tomorrow", "2026-11-20T08:55:00@60x", "sim:1:0:2"])
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        clock_from_spec(spec)


def test_a_piecewise_clock_changes_speed_at_its_simulated_instants() -> None:
    anchor = time.time_ns() - 3 * NS  # three wall seconds ago
    # 100x for the first 100 simulated seconds (one wall second), then 10x, then 1000x at 120 s.
    clock = SimulatedClock(0, 100.0, anchor, ((100 * NS, 10.0), (120 * NS, 1000.0)))
    assert clock.wall_ns_at(100 * NS) == anchor + NS
    assert clock.wall_ns_at(120 * NS) == anchor + 3 * NS
    assert clock.wall_ns_at(50 * NS) == anchor + NS // 2
    # Now is just past the second change: 120 s plus at most a few wall seconds at 1000x.
    assert 120 * NS <= clock.now_ns() < 120 * NS + 5_000 * NS
    assert clock.speed_now() == 1000.0
    again = clock_from_spec(clock.spec)
    assert isinstance(again, SimulatedClock)
    assert again.changes == clock.changes and again.wall_ns_at(110 * NS) == anchor + 2 * NS


def test_a_sleep_across_a_speed_change_wakes_at_the_simulated_instant() -> None:
    now = time.time_ns()
    # At 1000x until 10 simulated seconds from now, then 10x: a 10.5 s sleep is 10 ms + 50 ms.
    clock = SimulatedClock(0, 1000.0, now, ((10 * NS, 10.0),))

    async def nap() -> int:
        await clock.sleep(10.5)
        return clock.now_ns()

    woke = asyncio.run(nap())
    assert woke >= int(10.5 * NS)
    assert time.time_ns() - now >= 55 * 10**6  # it did not sleep 10.5 s at the first speed


@pytest.mark.parametrize("spec", ["sim:0:10:0:5@0", "sim:10:10:0:5@20"])
def test_bad_speed_changes_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        clock_from_spec(spec)
