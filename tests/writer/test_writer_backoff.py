"""The writer's own alerts while the database is down: they wait on the store's backoff.

A real writer (in a thread, on real ipc sockets) serves a real PostgreSQL database that is
cut as the delivery tests cut it (connections refused, the writer's backends terminated).
Its disk watch raises one alert at once; every try to commit it is timed. Under a real
supervisor, the failing writer makes the status unhealthy until it commits again.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from bus.codec import BusFrame
from bus.endpoints import local_endpoints
from bus.events import Event
from observer.db import migrate
from observer.db.engine import make_engine
from observer.process.disk import DiskSettings, DiskWatch
from observer.process.retry import backoff_s
from observer.writer.service import Writer, WriterOptions
from observer.writer.store import Store
from tests.support import (
    WRITER_PROGRAM,
    SupervisorProcess,
    database_down,
    db_rows,
    load_program,
    wait_until,
)

pytestmark = pytest.mark.slow

INITIAL_S, MAX_S = 0.2, 10.0
TRIES = 6  # timed while the database is down


def test_the_writers_own_alert_backs_off_with_the_store_and_lands_when_it_returns(
    pg_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    store = Store(engine)
    store.load_marks()
    tries: list[float] = []
    commit_own = store.commit_own

    def timed(events: list[Event]) -> BusFrame:
        tries.append(time.monotonic())
        return commit_own(events)

    store.commit_own = timed  # type: ignore[method-assign]
    # Every volume is below 100 % free: one disk_low alert at the first check, none after.
    low = DiskSettings(
        check_interval_s=3600,
        warn_free_bytes=0,
        warn_free_percent=100,
        critical_free_bytes=0,
        critical_free_percent=0,
    )
    disk = DiskWatch(low, {"capture": tmp_path}, "writer")
    options = WriterOptions(retry_initial_s=INITIAL_S, retry_max_s=MAX_S)
    writer = Writer(store, local_endpoints(tmp_path / "run"), options, disk=disk)
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), name="writer")
    try:
        with database_down(pg_url):
            thread.start()
            wait_until(lambda: len(tries) >= TRIES, 60, f"{TRIES} tries of the writer's alert")
            down = list(tries)
        window = down[-1] - down[0]
        # Each pause is at least half the curve's value (the jitter's lower bound); a try is
        # never sooner. The old loop tried every turn: about every 100 ms.
        for failures, (before, after) in enumerate(pairwise(down), 1):
            assert after - before >= 0.5 * backoff_s(failures, INITIAL_S, MAX_S) - 0.005
        every_turn = int(window / 0.1) + 1
        print(
            f"{len(down)} tries in {window:.2f}s with the database down (every turn: ~{every_turn})"
        )
        assert len(down) < every_turn / 2
        assert writer.commit_failures >= TRIES - 1  # the last may be under way still
        # Back up: the alert is stored at the next due try, and only once.
        stored = wait_until(
            lambda: db_rows(pg_url, "SELECT code, subject FROM alerts WHERE code = 'disk_low'"),
            30,
            "the writer's alert stored",
        )
        assert stored == [("disk_low", "writer:capture")]
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(30)
        engine.dispose()
    assert not thread.is_alive()
    assert db_rows(pg_url, "SELECT count(*) FROM alerts WHERE code = 'disk_low'") == [(1,)]


def test_a_writer_whose_database_refuses_commits_is_unhealthy_until_it_commits(
    pg_url: str, tmp_path: Path
) -> None:
    """Alive and beating is not working: the status names the failing writer, then clears."""
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + load_program(rate=100), url=pg_url)
    sup.start()
    wait_until(lambda: sup.program("writer")["counters"].get("events", 0) > 0, 60, "commits")
    assert sup.program("writer")["counters"]["failing_s"] == 0
    with database_down(pg_url):
        down = wait_until(
            lambda: (r := sup.status())["problems"] and r, 60, "the status to name the writer"
        )
        assert not down["healthy"]
        assert [p for p in down["problems"] if p.startswith("writer: failing its work for ")]
        assert next(p for p in down["programs"] if p["name"] == "writer")["state"] == "running"
        shown = subprocess.run(
            [sys.executable, "-m", "observer", "ctl", "--data-dir", str(sup.data_dir), "status"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 1 and "unhealthy: writer: failing its work" in shown.stdout
    wait_until(lambda: sup.status()["healthy"], 60, "healthy once the writer commits again")
    assert sup.program("writer")["counters"]["failing_s"] == 0
    assert sup.program("writer")["counters"]["commit_failures"] > 0
