"""The readers' pool on real PostgreSQL: bounded, reused, timed out with a clear error.

pg_stat_activity is the witness: the connections a process holds are the server's view, not
the pool's own count. Each engine names its connections (``application_name``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine, text

from observer.calendar.clock import SimulatedClock
from observer.config.tree import Settings
from observer.db.readers import pool_stats, reader_engine
from observer.db.settings import DatabaseSettings
from observer.errors import StoreError
from observer.supervisor.readings import DatabaseReadings
from tests.support import database_down, db_rows, wait_until

CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/observer"  # nothing listens on port 1


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def engine_of(pg_url: str, name: str) -> Iterator[dict[str, Engine]]:
    made: dict[str, Engine] = {}
    yield made
    for engine in made.values():
        engine.dispose()


def _engine(made: dict[str, Engine], url: str, name: str, **settings: object) -> Engine:
    engine = reader_engine(DatabaseSettings(url=url, **settings), name)  # type: ignore[arg-type]
    made[name] = engine
    return engine


def _server_connections(pg_url: str, name: str) -> int:
    rows = db_rows(
        pg_url, f"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'observer {name}'"
    )
    return int(rows[0][0])


def test_concurrent_readers_hold_no_more_connections_than_the_pool_allows(
    pg_url: str, name: str, engine_of: dict[str, Engine]
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_min=0, reader_pool_max=3)
    release = threading.Event()
    done: list[int] = []

    def read() -> None:
        with engine.connect() as conn:
            done.append(conn.execute(text("SELECT 1")).scalar_one())
            release.wait(60)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        # Three read, five wait for a connection: the server sees exactly three.
        # (a reader leaves the waiting ones when it is handed its connection, before its read)
        wait_until(
            lambda: pool_stats(engine)["requests_waiting"] == 5 and len(done) == 3,
            30,
            "three read, five waiting",
        )
        assert _server_connections(pg_url, name) == 3
        assert pool_stats(engine)["pool_size"] == 3
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
    assert done == [1] * 8
    assert _server_connections(pg_url, name) <= 3


def test_an_exhausted_pool_fails_the_read_in_time_naming_the_setting(
    pg_url: str, name: str, engine_of: dict[str, Engine]
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_max=1, reader_pool_timeout_s=0.5)
    with engine.connect(), pytest.raises(StoreError) as caught:
        engine.connect()
    message = str(caught.value)
    assert "within 0.5 s: all 1 of the pool's connections are in use" in message
    assert "reader_pool_max" in message
    with engine.connect() as conn:  # given back: the next read gets it
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_a_database_refusing_connections_fails_the_read_saying_so() -> None:
    engine = reader_engine(
        DatabaseSettings(url=CLOSED_PORT_URL, reader_pool_timeout_s=0.5), "refused"
    )
    try:
        with pytest.raises(StoreError, match=r"within 0\.5 s: the database did not accept one"):
            engine.connect()
    finally:
        engine.dispose()


def test_a_polling_reader_reuses_its_connection(
    pg_url: str, name: str, engine_of: dict[str, Engine]
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_max=1)
    backends = set()
    for _ in range(20):  # twenty reads, one connection
        with engine.connect() as conn:
            backends.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert len(backends) == 1
    assert pool_stats(engine)["connections_num"] == 1


def test_a_notice_is_logged_once_however_often_the_connection_was_reused(
    pg_url: str, name: str, engine_of: dict[str, Engine], caplog: pytest.LogCaptureFixture
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_max=1)
    for _ in range(20):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    logs = caplog.at_level(logging.INFO, logger="sqlalchemy.dialects.postgresql")
    with logs, engine.connect() as conn:
        conn.execute(text("DO $$ BEGIN RAISE NOTICE 'reader notice'; END $$"))
    assert caplog.text.count("reader notice") == 1


def test_a_connection_comes_back_read_only_and_at_the_default_isolation(
    pg_url: str, name: str, engine_of: dict[str, Engine]
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_max=1)
    with engine.connect() as conn:
        snapshot = conn.execution_options(isolation_level="REPEATABLE READ")
        assert snapshot.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
    with engine.connect() as conn:
        assert conn.execute(text("SHOW transaction_isolation")).scalar() == "read committed"
        assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"


def test_disposing_of_the_engine_closes_the_pools_connections(
    pg_url: str, name: str, engine_of: dict[str, Engine]
) -> None:
    engine = _engine(engine_of, pg_url, name, reader_pool_min=2)
    wait_until(lambda: _server_connections(pg_url, name) == 2, 30, "two open")
    engine.dispose()
    wait_until(lambda: _server_connections(pg_url, name) == 0, 30, "all closed")


def test_the_supervisors_readings_show_a_database_without_connections_as_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = msgspec.convert(
        {
            "database": {"url": CLOSED_PORT_URL, "reader_pool_timeout_s": 0.5},
            "supervisor": {"data_age_s": 0.1},
        },
        Settings,
    )
    readings = DatabaseReadings(settings.database, SimulatedClock(0, 1.0), 0.1)

    async def follow() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(readings.follow(stop))
        deadline = asyncio.get_running_loop().time() + 30
        while readings.up is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # the poll interval of a deadline-bound wait
        stop.set()
        await task

    with caplog.at_level(logging.WARNING, logger="observer.supervisor.readings"):
        asyncio.run(follow())
    assert readings.up == 0.0
    assert "no reader connection" in caplog.text
    assert "the database did not accept one" in caplog.text


def test_a_pool_that_gave_up_reconnecting_reads_again_once_the_database_is_back(
    pg_url: str, name: str, engine_of: dict[str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg_pool abandons a background reconnection after ``reconnect_timeout`` (300 s
    unless set), and pools have been reported stuck after it: the supervisor's readings and
    the notifier, which read on without end, would never read again. Here it gives up after
    1 s, and reads answer again once the database is back (the pool's own backoff may
    fail the first)."""
    import psycopg_pool

    gave_up = threading.Event()

    class Impatient(psycopg_pool.ConnectionPool):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(reconnect_timeout=1.0, reconnect_failed=lambda pool: gave_up.set())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(psycopg_pool, "ConnectionPool", Impatient)
    engine = _engine(engine_of, pg_url, name, reader_pool_min=1, reader_pool_timeout_s=0.5)
    assert _read(engine) == 1
    with database_down(pg_url):
        with pytest.raises(StoreError):
            _read(engine)
        assert gave_up.wait(30), "the pool never gave up reconnecting"
        with pytest.raises(StoreError):
            _read(engine)
    wait_until(lambda: _read_or_none(engine) == 1, 30, "a read once the database is back")


def _read(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1")).scalar_one()


def _read_or_none(engine: Engine) -> Any:
    try:
        return _read(engine)
    except StoreError:
        return None


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"reader_pool_min": 5, "reader_pool_max": 2}, "reader_pool_min 5 > reader_pool_max 2"),
        (
            {"url": "postgresql://o@p/o", "replica_url": "postgresql://o:hunter2secret@r/o"},
            "must not carry a password",
        ),
        ({"replica_url": "postgresql://o@r/o"}, "needs a PostgreSQL url"),
        ({"url": "postgresql://o@p/o", "replica_url": "sqlite:///r.db"}, "PostgreSQL URL"),
        ({"reader_pool_timeout_s": float("inf")}, "reader_pool_timeout_s"),
    ],
)
def test_database_settings_are_checked_on_load(table: dict[str, object], error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"database": table}, Settings)
    assert error in str(caught.value)
    assert "hunter2secret" not in str(caught.value)
