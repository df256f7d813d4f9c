"""The server's own lock on a PostgreSQL database: one writer, whatever host it runs from.

A dropped lock connection (the server restarted, a link cut) is replaced and the lock taken
again; a writer that finds another holding it by then stops serving (exit 3), its producers
keeping what it has not acknowledged.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, text

from bus.events import Alert
from bus.producer import Producer
from observer.errors import WriterLocked
from observer.writer.replay import lock_database
from observer.writer.server_lock import _key
from tests.samples import SAMPLES
from tests.support import ROOT, WriterProcess, wait_until

ALERT = next(e for e in SAMPLES if isinstance(e, Alert))
SPINE = ROOT / "tests" / "captures" / "spine.cap"


@pytest.fixture
def admin(pg_url: str) -> Iterator[Connection]:
    """A session of the test's own on the writer's database."""
    engine = create_engine(pg_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn
    engine.dispose()


def lock_sessions(conn: Connection) -> list[int]:
    """The server pids of the lock connections of the writers of ``conn``'s database.

    pg_stat_activity is the whole server's: a writer another test runs meanwhile on its own
    database was counted too.
    """
    rows = conn.execute(
        text(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'observer writer on %'"
            " AND datname = current_database()"
        )
    )
    return [row.pid for row in rows]


def cut(conn: Connection, pid: int) -> None:
    """End a session as a server restart or a cut link would (waiting up to 5 s for its end)."""
    assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar_one()


def test_a_dropped_lock_connection_is_replaced_and_the_writer_serves_on(
    tmp_path: Path, pg_url: str, admin: Connection, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(pg_url).start()
    producer = Producer("live", writer.ingest, tmp_path / "ob", batch_events=1)
    try:
        [first] = lock_sessions(admin)
        cut(admin, first)
        wait_until(lambda: "took the lock on" in writer.log.read_text(), 30, "the lock again")
        [again] = lock_sessions(admin)
        assert again != first
        producer.send(ALERT)
        assert producer.wait_acked(30)  # still the database's writer
    finally:
        producer.close(drain_timeout=0)
    assert writer.terminate() == 0


def test_a_writer_that_lost_its_lock_to_another_stops_serving(
    tmp_path: Path, pg_url: str, admin: Connection, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(pg_url).start()
    assert writer.proc is not None
    assert len(lock_sessions(admin)) == 1
    schema = admin.execute(text("SELECT current_schema()")).scalar_one()

    def taken_from_the_writer() -> bool:
        # The writer may take the lock again between the cut and the try: its new session is
        # cut the next time round.
        for session in lock_sessions(admin):  # (one listed may have ended since)
            admin.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": session})
        return bool(
            admin.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _key(schema)}).scalar()
        )

    # Another writer takes the lock before this one looks again.
    wait_until(taken_from_the_writer, 30, "the lock taken from the writer")
    assert writer.proc.wait(30) == 3
    log = writer.log.read_text()
    assert "holds postgresql+psycopg://" in log and "Traceback" not in log


def test_replay_sees_a_writer_of_the_database_from_any_run_directory(
    pg_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer_factory(pg_url).start()
    with pytest.raises(WriterLocked, match=r"served by a writer \(observer writer on "):
        lock_database(SPINE, pg_url, None)  # no run directory: the server's lock alone
    done = subprocess.run(
        [sys.executable, "-m", "observer", "replay", str(SPINE), "--db", pg_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2 and "served by a writer" in done.stderr
    assert "Traceback" not in done.stderr
