"""partition ticks, books, snapshots and minute bars by trading day (PostgreSQL only)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 18:50:00.000000
"""

from __future__ import annotations

from datetime import date, timedelta

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# table -> (its time column, the columns of its key before it)
TABLES = {
    "trade_ticks": ("exchange_ns", ("source", "seq")),
    "order_books": ("exchange_ns", ("source", "seq")),
    "price_snapshots": ("observed_ns", ("source", "seq")),
    "minute_bars": ("minute_ns", ("source", "seq", "idx")),
}
DAY_NS = 86_400 * 10**9
KST_OFFSET_NS = 9 * 3600 * 10**9
LAST_DAY = 106_000  # days after 1970-01-01 whose bounds fit a BIGINT (year 2260)
EPOCH = date(1970, 1, 1)


def upgrade() -> None:
    # PostgreSQL only: each table becomes a table ranged by KST trading day on its UTC-ns
    # time column, with a default partition, one partition per day it holds, and its rows
    # copied over. Its key gains the time column (a partitioned table's key must hold it).
    # SQLite keeps its tables: it is pruned in chunks (observer.writer.retention).
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (column, key) in TABLES.items():
        _rebuild(table, column, key, partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (_, key) in TABLES.items():
        _rebuild(table, None, key, partitioned=False)


def _rebuild(table: str, column: str | None, key: tuple[str, ...], *, partitioned: bool) -> None:
    """Create ``table`` anew (ranged by ``column`` or plain), copy its rows, drop the old one."""
    bind = op.get_bind()
    indexes = bind.exec_driver_sql(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = %s AND indexname <> %s",
        (table, f"pk_{table}"),
    ).all()
    old = f"{table}_before_0013"
    for name, _ in indexes:
        op.execute(f"DROP INDEX {name}")
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    ranged = f" PARTITION BY RANGE ({column})" if partitioned else ""
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS){ranged}")
    if partitioned:
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        days = bind.exec_driver_sql(
            f"SELECT DISTINCT ({column} + {KST_OFFSET_NS}) / {DAY_NS} FROM {old}"
        ).scalars()
        for day in sorted(n for n in days if 0 <= n < LAST_DAY):
            start = day * DAY_NS - KST_OFFSET_NS
            name = f"{table}_{EPOCH + timedelta(days=day):%Y%m%d}"
            op.execute(
                f"CREATE TABLE {name} PARTITION OF {table} "
                f"FOR VALUES FROM ({start}) TO ({start + DAY_NS})"
            )
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")
    primary = (*key, column) if partitioned else key
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(primary)})")
    for _, definition in indexes:  # a partitioned table's are `ON ONLY` it: recurse here
        op.execute(definition.replace(" ON ONLY ", " ON "))
