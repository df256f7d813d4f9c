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

import msgspec

from bus.events import Alert
from observer.clock import ManualClock
from observer.config import Settings
from observer.db.migrate import upgrade
from observer.phases import KST
from tests.test_track_b_resume import Sent
from workers.track_a.schedule import Cycle
from workers.track_a.worker import TrackA

NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)


def test_a_universe_alert_due_after_the_cycle_comes_at_its_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    settings = msgspec.convert(
        {
            "database": {"url": url},
            "paths": {"data_dir": str(tmp_path)},
            "kis": {"accounts": [{"alias": "acct1"}]},
            "track_a": {"universe_alert_s": 900.0},
        },
        Settings,
    )
    clock = ManualClock(int(NINE.timestamp()) * 1_000_000_000)
    sent = Sent()
    track_a = TrackA(settings, clock, sent, None, asyncio.Event())  # type: ignore[arg-type]
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
