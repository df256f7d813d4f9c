"""The one policy for a daemon's reads the database fails (`observer.db.outages`).

Real failures: a SQLite database whose folder is not there cannot be opened (a
`SQLAlchemyError`), and a reader engine on it raises `NoDatabase` (a `StoreError`), as the
PostgreSQL reader pool's timeout does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from observer.db import outages
from observer.db.outages import ReadRetries
from observer.errors import StoreError


def failing_read(tmp_path: Path) -> Callable[[], object]:
    """A read of a database that cannot be opened."""
    engine = create_engine(f"sqlite:///{tmp_path / 'gone' / 'observer.db'}")

    def read() -> object:
        with engine.connect() as conn:
            return conn.execute(text("select 1")).scalar()

    return read


def test_a_failed_read_says_so_at_once_and_a_read_through_ends_the_outage(
    tmp_path: Path,
) -> None:
    now = [100.0]
    counted: list[str] = []
    reads = ReadRetries(1.0, 30.0, lambda: counted.append("failed"), monotonic=lambda: now[0])
    assert reads.failing_s() == 0.0
    with pytest.raises(Exception) as raised:
        failing_read(tmp_path)()
    pause = reads.failed("the sweep", raised.value)
    assert 0.5 <= pause <= 1.0 and counted == ["failed"]
    assert reads.failing_s() == 0.1  # the first failure: failing already, for the heartbeat
    now[0] += 42.0
    assert reads.failing_s() == 42.0
    reads.succeeded()
    assert reads.failing_s() == 0.0


def test_reads_failing_that_long_are_no_outage_but_a_wrong_database(tmp_path: Path) -> None:
    now = [0.0]
    reads = ReadRetries(1.0, 30.0, monotonic=lambda: now[0])
    with pytest.raises(Exception) as raised:
        failing_read(tmp_path)()
    reads.failed("the sweep", raised.value)
    now[0] = outages.READS_GIVE_UP_S
    with pytest.raises(StoreError, match=r"^the sweep failed for 600 s: OperationalError: "):
        reads.failed("the sweep", raised.value)


def test_read_waits_for_the_database_and_a_stop_ends_the_wait(tmp_path: Path) -> None:
    counted: list[str] = []
    reads = ReadRetries(0.05, 0.05, lambda: counted.append("failed"))
    broken = failing_read(tmp_path)
    stop = asyncio.Event()

    async def back_after_two_failures() -> object:
        def read() -> object:
            return "read" if len(counted) >= 2 else broken()

        return await reads.read(read, "the start-up reads", stop)

    assert asyncio.run(back_after_two_failures()) == "read"
    assert counted == ["failed", "failed"] and reads.failing_s() == 0.0

    async def stopped_while_failing() -> object:
        stop = asyncio.Event()  # (of this event loop)
        reading = asyncio.ensure_future(reads.read(broken, "the start-up reads", stop))
        deadline = asyncio.get_running_loop().time() + 30
        while len(counted) < 3:
            assert asyncio.get_running_loop().time() < deadline, "no read failed"
            await asyncio.sleep(0.01)  # the poll of a deadline-bound wait
        stop.set()
        return await asyncio.wait_for(reading, 30)

    reads = ReadRetries(60.0, 60.0, lambda: counted.append("failed"))  # a long pause, cut short
    assert asyncio.run(stopped_while_failing()) is None


def _raised(raise_it: Callable[..., object], *args: object) -> BaseException:
    with pytest.raises(Exception) as raised:
        raise_it(*args)
    return raised.value


def test_an_outage_is_told_from_a_fault_by_the_drivers_error_however_wrapped(
    pg_url: str,
) -> None:
    """A server that refuses the connection is an outage, whether the driver's error comes
    bare, as a `StoreError`'s cause, or as its context (``from None``); a missing table is
    none, bare or wrapped."""
    refused = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/observer")
    answering = create_engine(pg_url)

    def read(engine: object, sql: str) -> object:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            return conn.execute(text(sql)).scalar()

    def wrapped(sql: str, engine: object, hidden: bool) -> object:
        try:
            return read(engine, sql)
        except Exception as exc:
            if hidden:
                raise StoreError("cannot lock") from None
            raise StoreError("cannot read") from exc

    try:
        assert outages.not_answering(_raised(read, refused, "select 1"))
        for hidden in (False, True):
            assert outages.not_answering(_raised(wrapped, "select 1", refused, hidden))
            fault = _raised(wrapped, "select * from no_such_table", answering, hidden)
            assert not outages.not_answering(fault)
        assert not outages.not_answering(StoreError("database has no observer schema"))
    finally:
        refused.dispose()
        answering.dispose()


def test_an_exception_chained_to_itself_is_no_outage_and_no_endless_walk() -> None:
    looped = StoreError("raised from itself")
    looped.__cause__ = looped
    assert not outages.not_answering(looped)
