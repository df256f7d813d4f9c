"""Track A's universe: its missing-universe alert, and its cycles through a database outage.

A cycle waits for the universe until its deadline (the next cycle's start) and then runs
empty. With ``universe_alert_s`` longer than a cycle (900 s against 10-minute cycles, set to
cut noise) the alert was due after the wait had already given up: every cycle of the day ran
empty, and nothing said so.

A database that failed the universe's read (a PostgreSQL restart, a failover) ended Track A:
the cycles of the outage and of the supervisor's restart backoff were never asked, and a
price not asked for at its time is lost for good. The members read before run the cycle.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.db.migrate import upgrade
from observer.db.readers import pool_stats, reader_engine
from tests.samples import SAMPLES
from tests.support import database_down, wait_until
from tests.track_a.test_track_a_unrun_cycles import (
    SYMBOLS,
    Sent,
    at,
    store_universe,
    summaries,
    track_a_alone,
)
from tests.track_a.test_track_a_unrun_cycles import track_a as track_a_with_universe
from workers.track_a.schedule import Cycle
from workers.track_a.worker import TrackA

NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
S = 1_000_000_000


def test_a_universe_alert_due_after_the_cycle_comes_at_its_end(tmp_path: Path) -> None:
    start = int(NINE.timestamp()) * 1_000_000_000
    track_a, sent, _ = track_a_alone(tmp_path, start, {"universe_alert_s": 900.0})
    clock = track_a.clock
    assert isinstance(clock, ManualClock)
    cycle = Cycle(NINE, NINE + timedelta(minutes=10))
    try:
        assert wait_for_the_universe(track_a, cycle) == []  # the cycle ran empty
    finally:
        track_a._engine.dispose()
    [alert] = [e for e in sent if isinstance(e, Alert)]
    assert (alert.code, alert.severity) == ("track_a_no_universe", "critical")
    assert alert.context == {"cycle_id": "20261120-0900"}
    assert clock.now_ns() <= int(cycle.deadline.timestamp() + 3) * 1_000_000_000
    assert "is the universe job failing?" in alert.message


def wait_for_the_universe(track_a: TrackA, cycle: Cycle) -> list[tuple[str, str]]:
    """The cycle's members as Track A waits for them, its clock advanced a second a turn."""
    clock = track_a.clock
    assert isinstance(clock, ManualClock)

    async def waiting() -> list[tuple[str, str]]:
        members = asyncio.ensure_future(track_a._universe(cycle))
        while not members.done():  # the worker's polls, in clock time
            await asyncio.sleep(0)
            clock.advance(1.0)
        return members.result()

    return asyncio.run(waiting())


def track_a_on_postgres(tmp_path: Path, url: str) -> tuple[TrackA, Sent]:
    """A Track A at 09:00 reading ``url``, the day's universe stored there (its reader pool
    waits 1 s for a connection)."""
    track_a, sent, _ = track_a_alone(tmp_path, int(NINE.timestamp()) * 1_000_000_000)
    upgrade(url)
    store_universe(url).engine.dispose()
    track_a._engine.dispose()
    track_a._engine = reader_engine(track_a.settings.database, "track_a", url=url, timeout_s=1)
    # its first connection open, so an outage ends it (`database_down`)
    wait_until(lambda: pool_stats(track_a._engine).get("pool_available", 0), 30, "the pool open")
    return track_a, sent


def test_a_database_outage_runs_the_cycle_on_the_members_read_before(
    tmp_path: Path, pg_url: str
) -> None:
    track_a, sent = track_a_on_postgres(tmp_path, pg_url)
    try:
        nine = wait_for_the_universe(track_a, Cycle(NINE, NINE + timedelta(minutes=10)))
        assert [symbol for symbol, _ in nine] == SYMBOLS
        ten_past = Cycle(NINE + timedelta(minutes=10), NINE + timedelta(minutes=20))
        with database_down(pg_url):
            assert wait_for_the_universe(track_a, ten_past) == nine
    finally:
        track_a._engine.dispose()
    assert track_a.tally.counters()["database_reads_failed"] == 1
    assert not [e for e in sent if isinstance(e, Alert)]  # the cycle runs: nothing to say


def test_a_database_down_before_the_first_read_is_named_by_the_alert(
    tmp_path: Path, pg_url: str
) -> None:
    """Nothing read before: the cycle waits for the database as for a universe not in yet."""
    track_a, sent = track_a_on_postgres(tmp_path, pg_url)
    short = Cycle(NINE, NINE + timedelta(seconds=6))  # three polls of a second's wait each
    try:
        with database_down(pg_url):
            assert wait_for_the_universe(track_a, short) == []
    finally:
        track_a._engine.dispose()
    [alert] = [e for e in sent if isinstance(e, Alert)]
    assert alert.code == "track_a_no_universe"
    assert "Track A cannot run (the database does not answer (StoreError: no reader" in (
        alert.message
    )
    assert track_a.tally.database_reads_failed >= 2


def test_a_start_during_a_database_outage_resumes_nothing_blind_and_closes_it_after(
    tmp_path: Path,
) -> None:
    """Track A started at 09:01:05 while the database fails its start-up reads (what earlier
    runs stored) goes on: the 09:00 cycle, which an earlier run began, is not resumed blind,
    and once the database answers it is summarised as cut off after its deadline, not
    before. The failed reads ended each start, until the supervisor parked Track A."""
    track_a, sent, store = track_a_with_universe(tmp_path, at(9, 1) + 5 * S)
    began = msgspec.structs.replace(
        SAMPLES[0], cycle_id="20261120-0900", symbol=SYMBOLS[0], observed_ns=at(9, 0) + S
    )
    store.apply([decode_parts(encode_frame([Envelope("track_a", 1, at(9, 0) + S, began)]))])
    store.engine.dispose()
    clock = track_a.clock
    assert isinstance(clock, ManualClock)
    answering = track_a._engine
    track_a._engine = reader_engine(track_a.settings.database, "track_a", url=unreachable())
    try:
        track_a._earlier_run_stored()
        assert track_a._behind  # looked at again at a catch-up
        asyncio.run(track_a._cycle(Cycle(NINE, NINE + timedelta(minutes=10)), [], resume=True))
        assert track_a.tally.database_reads_failed == 1 and not sent  # nothing asked blind
        track_a._engine.dispose()
        track_a._engine = answering  # the database answers again
        track_a._read_again_at = 0.0  # (the wall pause after a failed read, not waited here)
        track_a._catch_up()
        assert track_a._behind and not sent  # the 09:00 cycle is not over yet
        clock.advance(9 * 60)  # 09:10:05
        track_a._catch_up()
        assert not track_a._behind
    finally:
        track_a._engine.dispose()
    assert summaries(sent) == {"20261120-0900": (12, 1, 11)}  # cut off, the one carried


def unreachable() -> str:
    return "sqlite:////nonexistent-folder/observer.db"
