"""A cycle Track A never ran (down for all of it) is summarised with every symbol missing.

A crash loop or a host reboot from 09:19 to 09:45 left the 09:20 and 09:30 cycles with no
snapshot: they were skipped, with no summary and no `track_a_missing`, while one stored
snapshot would have made them a cycle of 119 missing and alerted. A cycle before the day's
first run (Track A installed, or started, later in the day) stays a cycle it never had.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, TrackACycle, UniverseMember, UniverseSnapshot
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.writer.store import Store
from workers.track_a.cycle import CycleRun, SnapshotTarget
from workers.track_a.schedule import cycles_of
from workers.track_a.worker import TrackA

S = 1_000_000_000
DAY = date(2026, 11, 20)
SYMBOLS = [f"{n:06d}" for n in range(10, 130, 10)]


class Sent(list[Any]):
    """The producer's part: what was sent; all of it acknowledged (nothing pending)."""

    pending = 0

    def send(self, event: Any) -> int:
        self.append(event)
        return len(self)

    def flush(self) -> None:
        pass


def at(hh: int, mm: int) -> int:
    return int(datetime(2026, 11, 20, hh, mm, tzinfo=KST).timestamp()) * S


def track_a_alone(
    tmp_path: Path, now_ns: int, track_a: dict[str, Any] | None = None
) -> tuple[TrackA, Sent, str]:
    """A Track A on a migrated database of its own (no universe), at ``now_ns``."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    settings = msgspec.convert(
        {
            "database": {"url": url},
            "paths": {"data_dir": str(tmp_path)},
            "kis": {"accounts": [{"alias": "acct1"}]},
            "track_a": track_a or {},
        },
        Settings,
    )
    sent = Sent()
    worker = TrackA(settings, ManualClock(now_ns), sent, None, asyncio.Event())  # type: ignore[arg-type]
    return worker, sent, url


def track_a(tmp_path: Path, now_ns: int) -> tuple[TrackA, Sent, Store]:
    worker, sent, url = track_a_alone(tmp_path, now_ns)
    return worker, sent, store_universe(url)


def store_universe(url: str) -> Store:
    """The day's universe of `SYMBOLS`, stored in ``url``'s database by a writer's store."""
    store = Store(make_engine(url))
    store.load_marks()
    members = tuple(
        UniverseMember(symbol=s, market="KOSPI", rank=n, prev_close=5000, market_cap=10**12 - n)
        for n, s in enumerate(SYMBOLS, 1)
    )
    universe = UniverseSnapshot(
        trade_date=DAY, based_on=date(2026, 11, 19), min_prev_close=4000, members=members
    )
    store.apply([decode_parts(encode_frame([Envelope("universe", 1, at(7, 0), universe)]))])
    return store


def summaries(sent: Sent) -> dict[str, tuple[int, int, int]]:
    """cycle id -> (universe size, carried, missing) of the summaries sent."""
    return {
        e.cycle_id: (e.universe_size, e.carried, len(e.missing))
        for e in sent
        if isinstance(e, TrackACycle)
    }


def test_cycles_missed_whole_after_the_day_began_are_summarised_and_alerted(
    tmp_path: Path,
) -> None:
    worker, sent, store = track_a(tmp_path, at(9, 45))
    cycles = {c.cycle_id: c for c in cycles_of(worker.timeline, DAY, 10, True)}
    for n, cycle_id in enumerate(("20261120-0900", "20261120-0910"), 1):  # run whole
        run = CycleRun([SnapshotTarget(s, "KOSPI") for s in SYMBOLS], at(9, 0), at(9, 1))
        run.succeeded = set(SYMBOLS)
        worker._summarise(cycles[cycle_id], run, len(SYMBOLS), 0)
        summary = sent.pop()
        store.apply([decode_parts(encode_frame([Envelope("track_a", n, at(9, n), summary)]))])
    sent.clear()
    worker._summarised_here.clear()  # a new run: it knows only what is stored
    worker._close_interrupted()
    assert summaries(sent) == {"20261120-0920": (12, 0, 12), "20261120-0930": (12, 0, 12)}
    missing = [e.message for e in sent if isinstance(e, Alert) and e.code == "track_a_missing"]
    assert len(missing) == 2 and missing[0].startswith("cycle 20261120-0920: 12 of 12 symbols")


def test_cycles_before_the_days_first_run_are_not_summarised(tmp_path: Path) -> None:
    worker, sent, _ = track_a(tmp_path, at(10, 5))  # Track A's first start of the day
    worker._close_interrupted()
    assert summaries(sent) == {} and not [e for e in sent if isinstance(e, Alert)]
