"""Track A's missing-universe alert comes by the cycle's end at the latest.

A cycle waits for the universe until its deadline (the next cycle's start) and then runs
empty. With ``universe_alert_s`` longer than a cycle (900 s against 10-minute cycles, set to
cut noise) the alert was due after the wait had already given up: every cycle of the day ran
empty, and nothing said so.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from bus.events import Alert
from observer.clock import ManualClock
from observer.phases import KST
from tests.test_track_a_unrun_cycles import track_a_alone
from workers.track_a.schedule import Cycle

NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)


def test_a_universe_alert_due_after_the_cycle_comes_at_its_end(tmp_path: Path) -> None:
    start = int(NINE.timestamp()) * 1_000_000_000
    track_a, sent, _ = track_a_alone(tmp_path, start, {"universe_alert_s": 900.0})
    clock = track_a.clock
    assert isinstance(clock, ManualClock)
    cycle = Cycle(NINE, NINE + timedelta(minutes=10))

    async def wait_for_the_universe() -> list[tuple[str, str]]:
        waiting = asyncio.ensure_future(track_a._universe(cycle))
        while not waiting.done():  # the worker's polls, in clock time
            await asyncio.sleep(0)
            clock.advance(1.0)
        return waiting.result()

    try:
        assert asyncio.run(wait_for_the_universe()) == []  # the cycle ran empty
    finally:
        track_a._engine.dispose()
    [alert] = [e for e in sent if isinstance(e, Alert)]
    assert (alert.code, alert.severity) == ("track_a_no_universe", "critical")
    assert alert.context == {"cycle_id": "20261120-0900"}
    assert clock.now_ns() <= int(cycle.deadline.timestamp() + 3) * 1_000_000_000
