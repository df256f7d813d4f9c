"""A writer started while its PostgreSQL does not answer waits for it, then serves; a start
that works but takes long (a migration) is not ended by the ready timeout.

A host that starts the observer before its database (a reboot), or a writer restarted
during a PostgreSQL restart: the writer exited 2 at each start, and after ``max_failures``
starts (about 20 s) the supervisor parked it FATAL until an operator started it again,
however soon the database came back (`observer.writer.startup`). The programs that depend
on the writer start once it serves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import NullPool, create_engine, text

from observer.db import migrate
from observer.db.engine import normalize_url
from tests.support import (
    WRITER_PROGRAM,
    SupervisorProcess,
    database_down,
    db_rows,
    load_program,
    wait_until,
)

pytestmark = pytest.mark.postgres

READY_TIMEOUT_S = 30.0  # the supervisor's default for a program
OUTAGE_S = 30.0  # of the writer's wait: longer than it took to be parked before


def test_a_writer_started_during_a_database_outage_waits_and_serves_once_it_is_back(
    tmp_path: Path, pg_url: str
) -> None:
    migrate.upgrade(pg_url)
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + load_program(rate=50), url=pg_url)
    states: set[str] = set()

    def writer() -> dict[str, Any]:
        program = sup.program("writer")
        states.add(program["state"])
        assert program["state"] != "fatal", program  # before: parked after 8 starts
        return program

    with database_down(pg_url):
        sup.start(healthy=False)
        wait_until(
            lambda: writer()["counters"].get("failing_s", 0) >= OUTAGE_S,
            OUTAGE_S + 60,
            f"the writer waiting {OUTAGE_S:g} s for its database",
        )
        assert "fatal" not in states, states
        assert writer()["state"] == "running"
        assert not sup.status()["healthy"]  # alive, not working: said so
        # What depends on the writer waits for it to work, not only to be READY: started,
        # it met the same outage (a job that failed there was parked FATAL).
        assert sup.program("load")["state"] == "waiting"
    wait_until(
        lambda: writer()["counters"].get("failing_s") == 0 and sup.status()["healthy"],
        60,
        "the writer serving",
    )
    wait_until(
        lambda: db_rows(pg_url, "SELECT count(*) FROM bus_offsets WHERE source = 'load'") == [(1,)],
        60,
        "the producer's events stored",
    )
    assert "fatal" not in states, states
    log = (tmp_path / "data" / "log" / "writer.log").read_text()
    assert "the writer's start (its database) failed" in log


def test_a_start_longer_than_the_ready_timeout_migrates_and_serves(
    tmp_path: Path, pg_url: str
) -> None:
    """A migration that outlasts the ready timeout (here one revision waiting on a lock
    another client holds on the version table, as a large table's rewrite would run): the
    writer says READY with ``failing_s`` and beats, its dependents wait, and once the lock goes
    the upgrade ends and it serves. Before, the start was ended at the timeout, each next try
    ended alike, and the writer was parked FATAL with the database never upgraded."""
    migrate.upgrade(pg_url, "0034")
    # The default ready timeout (30 s): a shorter one was spent on a loaded machine's imports
    # alone, before the start had run a line.
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + load_program(rate=50), url=pg_url)
    holder = create_engine(normalize_url(pg_url), poolclass=NullPool)
    try:
        with holder.connect() as conn:
            conn.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
            sup.start(healthy=False)
            past = READY_TIMEOUT_S + 5
            wait_until(
                lambda: sup.program("writer")["counters"].get("failing_s", 0) >= past,
                past + 60,
                f"the writer's start running {past:g} s, READY and beating",
            )
            writer = sup.program("writer")
            assert (writer["state"], writer["restarts"], writer["failures"]) == ("running", 0, 0)
            assert sup.program("load")["state"] == "waiting"
            assert not sup.status()["healthy"]
            conn.rollback()  # the lock goes: the revision runs
        wait_until(
            lambda: (
                sup.program("writer")["counters"].get("failing_s") == 0 and sup.status()["healthy"]
            ),
            120,
            "the writer serving",
        )
    finally:
        holder.dispose()
    assert migrate.current(pg_url) == migrate.head()
    assert sup.program("writer")["restarts"] == 0
    log = (tmp_path / "data" / "log" / "writer.log").read_text()
    assert "the writer's start (the lock, the migrations, the marks) has taken over a" in log


def test_a_database_without_the_schema_ends_the_start_at_once(tmp_path: Path, pg_url: str) -> None:
    """No outage, nothing to wait for: exit 2 at once, saying what to do."""
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{pg_url}"\n'
        "[writer]\nmigrate_on_start = false\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "observer", "writer", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "run `observer db upgrade`" in done.stderr
