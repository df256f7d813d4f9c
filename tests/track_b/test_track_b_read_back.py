"""Track A's snapshots the feed lost are read back from the database, an interval later;
Track B's reads during the day that the database fails leave its sessions open.

The feed is lossy by contract, and Track B read the database only at its start: a surge
whose snapshot the feed dropped (a writer restarting, a subscriber behind its high-water
mark) never fired, and the symbol was never streamed.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy.exc import OperationalError

from bus.events import Alert, AlertResolved, PriceSnapshot
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.db import models as m
from observer.db.migrate import upgrade
from observer.db.outages import ReadRetries
from observer.db.readers import pool_stats, reader_engine
from observer.db.slot_queries import AsOf
from observer.process.heartbeat import FAILING_S
from observer.process.retry import Backoff
from tests.support import database_down, wait_until
from tests.track_a.test_track_a_unrun_cycles import SYMBOLS as UNIVERSE
from tests.track_a.test_track_a_unrun_cycles import store_universe
from tests.track_b.test_track_b_resume import (
    _PROFILE,
    NINE,
    REFS,
    SYMBOLS,
    Feed,
    S,
    Streams,
    at,
    burst,
    caps_held_since_nine_thirty,
    follow,
    hhmmss,
    snapshot,
    snapshot_rows,
    store,
    the_day_to_one,
    track_b,
)
from workers.track_b import context_sync
from workers.track_b.context_sync import LateSync
from workers.track_b.read_back import GRACE_S, ReadBack
from workers.track_b.sessions import Stretch
from workers.track_b.slots import Room, SlotBook
from workers.track_b.triggers import Reference, TriggerEngine, profile_share

LOST = SYMBOLS[160]  # surging in 12:50-13:00; its 13:00 snapshot never comes by the feed


def thirteen_hundred() -> list[PriceSnapshot]:
    """The 13:00 cycle, each symbol at its pace of the morning, LOST at 4x since 12:50."""
    cycle = NINE + timedelta(hours=4)
    shots = []
    for i, s in enumerate(SYMBOLS):
        observed = int(cycle.timestamp()) * S + S + i * S // 5
        minutes = (observed - at("09:00")) / S / 60
        pace = 0.5 + (i * 37 % 200) / 100  # as in `the_day_to_one`
        volume = pace * 1_000_000 * profile_share(_PROFILE, minutes)
        if s == LOST:
            volume += burst(230.0, minutes)
        shots.append(snapshot(s, observed, int(volume), high=10_005))
    return shots


def test_a_surge_the_feed_lost_fires_from_the_database_an_interval_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tb, _, url = track_b(tmp_path, at("13:00"))
    cycle = thirteen_hundred()
    store(url, m.PriceSnapshotRow, snapshot_rows([*the_day_to_one(), *cycle]))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    context = tb._sync(NINE + timedelta(minutes=30), engine, Room(41))
    book = caps_held_since_nine_thirty(engine)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    delivered = [s for s in cycle if s.symbol != LOST]
    follow(tb, engine, book, streams, context, at("13:10:30"), monkeypatch, feed=delivered)
    placed = [(hhmmss(when), d.action) for when, d in streams.applied if d.candidate.symbol == LOST]
    assert placed == [("13:10:00", "replace")]  # the first reading, one interval in
    assert engine.live[LOST]["volume_surge"].fired_ns == cycle[160].observed_ns
    assert tb.counters["snapshots_read_back"] == 1  # the 199 the feed brought are not


def test_a_reading_takes_only_what_the_feed_should_have_brought_by_now(tmp_path: Path) -> None:
    """Snapshots younger than the grace may still be on their way: left to the feed (or the
    next reading); the cycle under way at a reading is read again at the next one."""
    tb, _, url = track_b(tmp_path, at("13:00"))
    cycle = thirteen_hundred()
    store(url, m.PriceSnapshotRow, snapshot_rows(cycle))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    read_back = ReadBack(tb._engine, clock, 600.0)
    assert read_back.since_cycle == "20261120-1250"  # the cycle under way at the start
    clock.advance(GRACE_S + 20)  # 13:01:20: those observed by 13:00:20 are old enough
    now = clock.now_ns()
    taken = read_back.take(read_back.read(now), engine, tb.guard, now)
    assert taken == 1 + 19 * 5  # 13:00:01 .. 13:00:20, five a second
    assert read_back.since_cycle == "20261120-1300"
    clock.advance(600)
    now = clock.now_ns()
    assert read_back.take(read_back.read(now), engine, tb.guard, now) == len(cycle) - taken
    assert read_back.take(read_back.read(now), engine, tb.guard, now) == 0  # seen: once
    assert read_back.read_back == len(cycle)


def test_a_cycle_with_a_snapshot_still_on_its_way_is_read_again(tmp_path: Path) -> None:
    """Under a fast clock the wall grace spans cycles: a snapshot of the 12:50 cycle still
    within it while the 13:00 cycle has come is taken at the next reading, not skipped."""
    tb, _, url = track_b(tmp_path, at("13:00"))
    late = snapshot(SYMBOLS[5], at("13:00:30"), 500_000)
    late = msgspec.structs.replace(late, cycle_id="20261120-1250")
    first = thirteen_hundred()[0]  # 13:00:01, of the 13:00 cycle
    store(url, m.PriceSnapshotRow, snapshot_rows([late, first]))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    read_back = ReadBack(tb._engine, clock, 600.0)
    clock.advance(75)  # 13:01:15: the 13:00:01 one is overdue, the 13:00:30 one not yet
    now = clock.now_ns()
    assert read_back.take(read_back.read(now), engine, tb.guard, now) == 1
    assert read_back.newest_cycle == "20261120-1300"
    assert read_back.since_cycle == "20261120-1250"  # where the late one waits
    clock.advance(600)
    now = clock.now_ns()
    assert read_back.take(read_back.read(now), engine, tb.guard, now) == 1
    assert engine.seen(late) and read_back.since_cycle == "20261120-1300"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_reading_the_database_refuses_is_counted_and_tried_an_interval_later(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """A repair that fails leaves Track B following the day: counted for the operator's rule
    (`ObserverSnapshotReadingsFailing`) and read again an interval later. On PostgreSQL a
    reader pool's timeout is a `StoreError`, which used to end Track B's loop."""
    tb, _, url = track_b(tmp_path, at("13:00"))
    cycle = thirteen_hundred()
    outage: AbstractContextManager[None]
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
        upgrade(url)
        outage = database_down(url)  # connections refused: the pool times out
    else:
        url, stored = unreachable(tmp_path), url
        moved = Path(url.removeprefix("sqlite:///"))
        outage = nullcontext()
    reader = reader_engine(tb.settings.database, "track_b", url=url, timeout_s=1)
    if backend == "postgresql":
        # The pool's first connection open before the outage, which ends it: one still
        # opening as connections are refused can pass the check unseen, and live through it.
        wait_until(lambda: pool_stats(reader).get("pool_available", 0) >= 1, 30, "the pool open")
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    read_back = ReadBack(reader, clock, 600.0)
    try:
        clock.advance(600)
        with outage:
            asyncio.run(tb._read_back(read_back, engine, clock.now_ns()))
        assert tb.counters["snapshot_readings_failed"] == 1
        assert not read_back.due(clock.now_ns())  # the next try is an interval on
        if backend == "sqlite":
            moved.parent.mkdir()
            shutil.copy(stored.removeprefix("sqlite:///"), moved)
        store(url, m.PriceSnapshotRow, snapshot_rows(cycle))

        def read_an_interval_later() -> bool:
            clock.advance(600)
            asyncio.run(tb._read_back(read_back, engine, clock.now_ns()))
            return "snapshots_read_back" in tb.counters

        # (a reader pool that failed to connect waits a moment before it tries again)
        wait_until(read_an_interval_later, 60, "a reading once the database is back")
        assert tb.counters["snapshots_read_back"] == len(cycle)
    finally:
        reader.dispose()


def test_the_nine_thirty_reads_the_database_fails_leave_the_sessions_open(
    tmp_path: Path,
) -> None:
    """At 09:29:50 the sessions are open: a context sync or a read of the slots an earlier
    run held that the database fails does not end the day (the slots fill by market cap);
    it ended Track B, and its restarts met the same database. The sync's is alerted; the
    slots' is tried again while the streams go on (`LateTakeOver`), and alerted at the
    session's end if it never went through."""
    tb, sent, _ = track_b(tmp_path, at("09:29:50"))
    tb._engine.dispose()
    tb._engine = reader_engine(tb.settings.database, "track_b", url=unreachable(tmp_path))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    book = SlotBook(["acct1"], 41)
    try:
        assert tb._sync_or_degrade(NINE + timedelta(minutes=30), engine, Room(41)) is None
        streams = Streams(["acct1"], lambda s, n: 0.0)
        as_of = AsOf(7, at("09:25"))
        resumed = tb._resume(NINE.date(), engine, book, streams, as_of, [])  # type: ignore[arg-type]
        assert asyncio.run(resumed) == []
        assert tb.late_takeover is not None  # tried again during the streaming
        assert (tb.late_takeover.as_of, tb.late_takeover.alerts) == (as_of, False)
        assert tb.pending.read() == [as_of]  # for a successor, should this run end first
    finally:
        tb._engine.dispose()
    said = [(e.code, e.message.split(" (")[0]) for e in sent if isinstance(e, Alert)]
    assert said == [("track_b_degraded", "context sync could not read Track A's snapshots")]
    # The first trigger ends the degraded start, not the slots a restart could not take back.
    tb.notices.over("track_b_degraded", "triggers fire: the slots follow them")
    resolved = [e.code for e in sent if isinstance(e, AlertResolved)]
    assert resolved == ["track_b_degraded"]


MOVERS = SYMBOLS[100:103]  # trading 5x their usual pace in the opening


def opening() -> list[PriceSnapshot]:
    """Track A's 09:00-09:20 cycles of the first 120 symbols, MOVERS at 5x."""
    shots = []
    for k in range(3):
        cycle = NINE + timedelta(minutes=10 * k)
        for i, s in enumerate(SYMBOLS[:120]):
            observed = int(cycle.timestamp()) * S + S + i * S // 5
            minutes = (observed - at("09:00")) / S / 60
            pace = 5.0 if s in MOVERS else 1.0
            shots.append(
                snapshot(s, observed, int(pace * 1_000_000 * profile_share(_PROFILE, minutes)))
            )
    return shots


def test_a_context_sync_the_database_failed_goes_through_late_and_places_the_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails the 09:29:50 sync and answers from 09:31: the sync is tried
    again, its read beside the evaluations (the first waits the pool's timeout, then
    fails), and places the opening's movers once a read goes through (they stand until
    09:34:50, as the scheduled sync's would); the warning is resolved. Before, the slots
    stayed with the market caps until a trigger fired, the morning's context lost."""
    tb, sent, url = track_b(tmp_path, at("09:29:50"), slots=3)
    store(url, m.PriceSnapshotRow, snapshot_rows(opening()))
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    answering = tb._engine
    tb._engine = reader_engine(tb.settings.database, "track_b", url=unreachable(tmp_path))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    full = NINE + timedelta(minutes=30)
    try:
        assert tb._sync_or_degrade(full, engine, Room(3)) is None
    finally:
        tb._engine.dispose()
        tb._engine = answering
    late = LateSync(tb.config, full, Room(3))
    late.backoff = Backoff(1.0, 30.0, monotonic=lambda: clock.now_ns() / S)  # clock seconds
    answers = threading.Event()  # the database answers again (at 09:31)
    reads: list[str] = []

    read = context_sync.day_so_far

    def day_so_far(db: Any, full: Any, now_ns: int) -> list[PriceSnapshot]:
        reads.append(hhmmss(now_ns))
        assert answers.wait(30), "the test never let the database answer"
        if len(reads) == 1:  # begun in the outage: it fails once the pool's timeout is up
            raise OperationalError("SELECT ...", {}, Exception("no reader connection"))
        return read(db, full, now_ns)

    monkeypatch.setattr(context_sync, "day_so_far", day_so_far)
    clock.advance(10)  # 09:30: full operation
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    streams.clock = clock
    rounds: list[tuple[int, set[str]]] = []

    async def nap(seconds: float) -> None:
        rounds.append((clock.now_ns(), set(book.held())))
        if clock.now_ns() >= at("09:31"):
            answers.set()
            if late.reading is not None:  # a read begun now answers before the next round
                await asyncio.wait({late.reading}, timeout=30)
        clock.advance(seconds)

    monkeypatch.setattr(tb, "_nap", nap)
    until = datetime.fromtimestamp(at("09:33") / S, KST)
    stretch = Stretch("KRX", engine, until, tb.config.evaluate_s)
    asyncio.run(tb._follow(Feed(clock, ()), stretch, book, streams, [], late))  # type: ignore[arg-type]
    # The evaluations went on every 5 s while the first read waited.
    assert [when for when, _ in rounds if when <= at("09:31")] == [
        at("09:30") + k * 5 * S for k in range(13)
    ]
    assert reads == ["09:30:00", "09:31:10"] and tb.counters["context_syncs_failed"] == 1
    assert rounds[0][1] == set(SYMBOLS[:3])  # the largest caps meanwhile
    assert rounds[-1][1] == set(MOVERS)
    placed = [
        (hhmmss(when), d.candidate.symbol)
        for when, d in streams.applied
        if d.candidate.trigger == "context_sync"
    ]
    assert placed == [("09:31:15", s) for s in MOVERS], placed
    resolved = [(e.code, e.message) for e in sent if isinstance(e, AlertResolved)]
    assert resolved == [("track_b_degraded", "the context sync went through late")]


def unreachable(tmp_path: Path) -> str:
    """A SQLite database in a folder that is not there: sqlite3 cannot open it."""
    return f"sqlite:///{tmp_path / 'gone' / 'observer.db'}"


def test_a_start_while_the_database_fails_waits_for_it_beating_unhealthy(
    tmp_path: Path,
) -> None:
    """Track B's start-up reads (the universe's references, the open alerts) wait on the
    backoff while the database fails them, the heartbeat saying ``failing_s``; they ended
    each start, and after eight the supervisor parked Track B for the phase."""
    tb, _, url = track_b(tmp_path, at("08:00"))
    store_universe(url).engine.dispose()
    tb._reads = ReadRetries(0.05, 0.05, lambda: tb._count("database_reads_failed"))
    tb._engine.dispose()
    tb._engine = reader_engine(tb.settings.database, "track_b", url=unreachable(tmp_path))

    async def start() -> dict[str, Reference] | None:
        references = asyncio.ensure_future(tb._references(NINE.date()))
        deadline = asyncio.get_running_loop().time() + 30
        while "database_reads_failed" not in tb.counters:
            assert asyncio.get_running_loop().time() < deadline, "no read failed"
            await asyncio.sleep(0.01)  # the poll of a deadline-bound wait
        assert tb._beat_counters()[FAILING_S] >= 0.1 and not references.done()
        tb._engine.dispose()
        tb._engine = reader_engine(tb.settings.database, "track_b")  # the database is back
        return await asyncio.wait_for(references, 30)

    try:
        references = asyncio.run(start())
    finally:
        tb._engine.dispose()
    assert references is not None and sorted(references) == UNIVERSE
    assert tb._beat_counters()[FAILING_S] == 0.0
