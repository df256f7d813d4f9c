"""PostgreSQL's day partitions: where rows land, the maintenance, retention by dropping a day."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from bus.events import PruneRequested
from harness.loadgen import synthetic_tick
from observer.db import migrate
from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.db.models import BOOK_DEPTH, BOOK_LEVEL_COLUMNS, PrunedChunk
from observer.db.retention_queries import ARCHIVED_TABLES, newest_archive
from observer.writer import partitions as partitions_module
from observer.writer.partitions import Partitions, day_partitions, partition_name
from observer.writer.retention import MAX_FAILURES, Pruner
from observer.writer.store import Store
from tests.archive.test_archive import (
    DAY,
    NEXT,
    alerts,
    apply,
    archive,
    archive_and_request,
    day_ns,
    db_rows,
    market_events,
    prune_all,
)

LATER = DAY + timedelta(days=10)


# The conftest's `store`, on PostgreSQL only (SQLite has no partitions).
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def placed(store: Store, table: str) -> dict[str, int]:
    """Rows per partition that holds them."""
    query = text(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1")
    with store.engine.connect() as conn:
        return {name: count for name, count in conn.execute(query)}


def complete(store: Store) -> bool:
    with store.engine.connect() as conn:
        return all(a.complete for a in audit_sources(conn))


@ON_POSTGRES
def test_rows_land_in_their_days_partition_and_strays_are_moved(store: Store) -> None:
    keeper = Partitions(store.engine, days_ahead=2)
    created = keeper.maintain(DAY)
    assert sorted(created) == sorted(
        partition_name(table, DAY + timedelta(days=n))
        for table in ARCHIVED_TABLES
        for n in range(3)
    )
    apply(store, market_events(DAY, 100) + market_events(LATER, 20))
    # A day without a partition is stored all the same, in the default partition.
    assert placed(store, "trade_ticks") == {
        "trade_ticks_20261118": 100,
        "trade_ticks_default": 20,
    }
    assert placed(store, "minute_bars") == {"minute_bars_20261118": 4, "minute_bars_default": 4}
    moved = keeper.maintain(DAY)  # the next maintenance gives the stray day its partition
    assert sorted(moved) == sorted(partition_name(table, LATER) for table in ARCHIVED_TABLES)
    assert keeper.moved == 20 + 5 + 3 + 4
    assert placed(store, "trade_ticks") == {
        "trade_ticks_20261118": 100,
        "trade_ticks_20261128": 20,
    }
    assert placed(store, "price_snapshots") == {
        "price_snapshots_20261118": 3,
        "price_snapshots_20261128": 3,
    }
    assert keeper.maintain(DAY) == []  # nothing left to do
    assert len(db_rows(store, "trade_ticks", LATER)) == 20 and complete(store)


@ON_POSTGRES
def test_an_archived_day_is_dropped_whole_and_the_audit_stays_complete(
    store: Store, tmp_path: Path
) -> None:
    # The day's rows sit in the default partition (no maintenance yet): the pruner gives
    # the day its partition first, then drops it.
    apply(store, market_events(DAY, 1000) + market_events(NEXT, 50))
    pruner = Pruner(store, 100, days_ahead=1)
    pruner.partitions.next_at = float("inf")  # type: ignore[union-attr]  # no maintenance here
    archive_and_request(store, tmp_path, ("trade_ticks", "minute_bars"))
    found = alerts(prune_all(pruner))
    assert [code for code, _ in found] == ["retention_pruned", "retention_pruned"]
    assert "1000 rows (its partition dropped)" in found[0][1]
    with store.engine.connect() as conn:
        assert DAY not in day_partitions(conn, "trade_ticks")
        assert DAY not in day_partitions(conn, "minute_bars")
        chunks = conn.execute(select(PrunedChunk.rows, PrunedChunk.seqs)).all()
    assert db_rows(store, "trade_ticks", DAY) == db_rows(store, "minute_bars", DAY) == []
    assert len(db_rows(store, "trade_ticks", NEXT)) == 50  # the next day is untouched
    assert placed(store, "order_books") == {"order_books_default": 10}  # not asked: left
    assert sum(rows for rows, _ in chunks) == 1004 and sum(s for _, s in chunks) == 1000
    assert complete(store) and pruner.pruned == 1004


@ON_POSTGRES
def test_no_drop_without_an_archive_holding_every_row(store: Store, tmp_path: Path) -> None:
    Partitions(store.engine, days_ahead=1).maintain(DAY)
    apply(store, market_events(DAY, 200))
    pruner = Pruner(store, 100)
    pruner.partitions.next_at = float("inf")  # type: ignore[union-attr]
    unknown = PruneRequested(table="trade_ticks", trade_date=DAY, rows=200, sha256="0" * 64)
    apply(store, [unknown], "archive")
    ((code, message),) = alerts(prune_all(pruner))
    assert code == "prune_refused" and "no archive record" in message
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None
    apply(store, [synthetic_tick(9999, day_ns(DAY, 9999))], "late")  # not in the archive
    request = PruneRequested(table="trade_ticks", trade_date=DAY, rows=200, sha256=record.sha256)
    apply(store, [request], "archive")
    ((code, message),) = alerts(prune_all(pruner))
    assert code == "prune_refused" and "201 rows" in message
    with store.engine.connect() as conn:
        assert DAY in day_partitions(conn, "trade_ticks")
        assert conn.execute(select(PrunedChunk)).all() == []
    assert len(db_rows(store, "trade_ticks", DAY)) == 201 and complete(store)


@ON_POSTGRES
def test_maintenance_blocked_by_a_reader_is_retried_then_alerted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(partitions_module, "LOCK_TIMEOUT_MS", 50)
    pruner = Pruner(store, 100, days_ahead=1)
    keeper = pruner.partitions
    assert keeper is not None
    reader = store.engine.connect()
    try:  # a reader in the default partition: attaching a day must wait for it
        reader.execute(text("LOCK TABLE trade_ticks_default IN ACCESS SHARE MODE"))
        frames = []
        for _ in range(MAX_FAILURES):
            assert pruner.pending()
            frames.append(pruner.step())
            keeper.next_at = 0.0  # retried at once instead of after the backoff
        assert frames[:-1] == [None] * (MAX_FAILURES - 1)
        ((code, message),) = alerts([frames[-1]])
        assert code == "partition_maintenance_failed" and "default partitions" in message
    finally:
        reader.close()
    assert pruner.step() is None and pruner.maintenance_failures == 0  # the lock is gone
    with store.engine.connect() as conn:
        assert len(day_partitions(conn, "trade_ticks")) == 2  # today and tomorrow


# Columns a revision after 0012 adds to the archived tables (0020: the newer real-time
# layouts' fields), with their PostgreSQL types: today's writer stores them.
_VENUES = (("venue", "VARCHAR(8) NOT NULL DEFAULT 'KRX'"), ("trading_session", "VARCHAR(24)"))
_LATER = {
    "trade_ticks": (("market_session", "VARCHAR(8)"), *_VENUES),
    "order_books": (
        ("mid_price", "NUMERIC(24, 8)"),
        ("mid_qty", "BIGINT"),
        ("mid_side", "VARCHAR(8)"),
        ("market_session", "VARCHAR(8)"),
        *_VENUES,
    ),
    "price_snapshots": _VENUES,
    "minute_bars": _VENUES,
    "minute_bar_batches": (_VENUES[0],),
}


_LEVEL_ARRAYS = ("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")  # as 0012 stores levels


def _later_columns(url: str, *, add: bool) -> None:
    """Add `_LATER`'s columns to a database of 0012 (so that today's writer fills it), or
    drop them again before it is upgraded.

    Books: today's writer fills the level columns, which become the JSON arrays of 0012 again
    (as long as the levels sent) before they are dropped; the upgrade makes them columns anew.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table, columns in _LATER.items():
                for name, kind in columns:
                    change = f"ADD COLUMN {name} {kind}" if add else f"DROP COLUMN {name}"
                    conn.execute(text(f"ALTER TABLE {table} {change}"))
            for group, array in enumerate(_LEVEL_ARRAYS):
                levels = BOOK_LEVEL_COLUMNS[group * BOOK_DEPTH : (group + 1) * BOOK_DEPTH]
                if add:
                    conn.execute(text(f"ALTER TABLE order_books ALTER {array} DROP NOT NULL"))
                    for level in levels:
                        conn.execute(text(f"ALTER TABLE order_books ADD COLUMN {level} BIGINT"))
                    continue
                as_array = f"to_json(array_remove(ARRAY[{', '.join(levels)}], NULL))"
                conn.execute(text(f"UPDATE order_books SET {array} = {as_array}"))
                conn.execute(text(f"ALTER TABLE order_books ALTER {array} SET NOT NULL"))
                for level in levels:
                    conn.execute(text(f"ALTER TABLE order_books DROP COLUMN {level}"))
    finally:
        engine.dispose()


def _table_rows(url: str, *, levels: bool = True) -> dict[str, list[Any]]:
    """The archived tables' rows, in the columns 0012 has already (a book's levels as
    columns, unless not ``levels``)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = {}
            for name, spec in ARCHIVED_TABLES.items():
                later = {column for column, _ in _LATER.get(name, ())}
                if not levels:
                    later |= set(BOOK_LEVEL_COLUMNS)
                columns = [c for c in spec.table.c if c.name not in later]
                query = select(*columns).order_by(spec.table.c.source, spec.table.c.seq)
                rows[name] = [tuple(r) for r in conn.execute(query)]
            return rows
    finally:
        engine.dispose()


def test_the_migration_partitions_a_populated_database_and_back(pg_url: str) -> None:
    migrate.upgrade(pg_url, "0012")
    _later_columns(pg_url, add=True)
    engine = make_engine(pg_url)
    store = Store(engine)
    store.load_marks()
    apply(store, market_events(DAY, 300) + market_events(NEXT, 40))
    apply(store, market_events(LATER, 10), "other")
    engine.dispose()
    before = _table_rows(pg_url)
    _later_columns(pg_url, add=False)
    migrate.upgrade(pg_url)
    assert _table_rows(pg_url) == before
    assert migrate.check(pg_url) == []
    engine = make_engine(pg_url)
    store = Store(engine)
    try:
        assert placed(store, "trade_ticks") == {
            "trade_ticks_20261118": 300,
            "trade_ticks_20261119": 40,
            "trade_ticks_20261128": 10,
        }
        assert complete(store)
        store.load_marks()  # the writer goes on where it was: new rows land by day
        apply(store, market_events(NEXT, 5))
        assert placed(store, "trade_ticks")["trade_ticks_20261119"] == 45
        with engine.connect() as conn:
            key = conn.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = 'pk_trade_ticks'"
                )
            ).scalar_one()
        assert key == "PRIMARY KEY (source, seq, exchange_ns)"
    finally:
        engine.dispose()
    after = _table_rows(pg_url, levels=False)
    config = Config()
    config.set_main_option("script_location", str(migrate.migrations_dir()))
    config.set_main_option("sqlalchemy.url", pg_url)
    command.downgrade(config, "0012")
    assert _table_rows(pg_url, levels=False) == after
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_inherits")).scalar_one() == 0
    finally:
        engine.dispose()
