"""How a batch's rows reach the database: driver-level bulk inserts, and upserts.

The writer's hot path (`observer.writer.store`): SQLite gets ``executemany`` of plain
INSERTs, PostgreSQL gets ``COPY``; the values the databases would disagree on are checked
first (`observer.writer.checks`).
"""

from __future__ import annotations

import functools
import importlib
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import JSON, Connection, Table
from sqlalchemy.engine import Dialect

from observer.writer.batch import Batch, Upsert
from observer.writer.checks import (
    Decimals,
    Limits,
    check_decimals,
    check_strings,
    check_upsert,
    decimal_columns,
    string_limits,
)

__all__ = ["upsert_one", "write_batch"]


def write_batch(conn: Connection, batch: Batch) -> None:
    """Run a batch's inserts (a bulk insert per table and column list), then its upserts."""
    for (table, columns), rows in batch.inserts.items():
        sql, converters, limits, decimals = _insert_plan(conn.dialect, table, columns)
        if limits:
            check_strings(table, rows, limits)
        if decimals:
            check_decimals(table, rows, decimals)
        if converters:
            rows = [_convert(row, converters) for row in rows]
        if sql.startswith("COPY"):
            with (
                conn.connection.driver_connection.cursor() as cursor,  # type: ignore[union-attr]
                cursor.copy(sql) as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql(sql, rows)
    # Runs of upserts of one shape go as one executemany (rows stay in seq order).
    for _, run in itertools.groupby(batch.upserts, key=_shape):
        same = list(run)
        for upsert in same:
            check_upsert(upsert, conn.dialect.name == "sqlite")
        conn.execute(_upsert_statement(conn.dialect.name, same[0]), [u.values for u in same])


def upsert_one(conn: Connection, upsert: Upsert) -> None:
    """Run one upsert."""
    conn.execute(_upsert_statement(conn.dialect.name, upsert), upsert.values)


@functools.cache
def _insert(dialect: str) -> Callable[..., Any]:
    insert: Callable[..., Any] = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert
    return insert


def _shape(upsert: Upsert) -> tuple[Any, ...]:
    return (upsert.table, upsert.keys, upsert.update, tuple(upsert.values))


def _upsert_statement(dialect: str, upsert: Upsert) -> Any:
    return _upsert_of(dialect, upsert.table, upsert.keys, upsert.update)


@functools.lru_cache(maxsize=256)
def _upsert_of(dialect: str, table: Table, keys: tuple[str, ...], update: tuple[str, ...]) -> Any:
    """The upsert of one shape, built once; its values come at execution.

    Building it (``excluded`` proxies every column) was a fifth of the writer's CPU on a
    streaming day.
    """
    statement: Any = _insert(dialect)(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={key: statement.excluded[key] for key in update}
    )


Converter = Callable[[Any], Any]


class _Plan(NamedTuple):
    """How one table's rows of one column list are inserted, and what is checked first."""

    sql: str
    converters: tuple[tuple[int, Converter], ...]
    limits: Limits  # SQLite: VARCHAR lengths and NULs, which it would store
    decimals: Decimals  # both: exact decimals NUMERIC(24, 8) cannot hold


@functools.lru_cache(maxsize=256)
def _insert_plan(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> _Plan:
    """The driver-level bulk insert for ``columns``, the conversions and the checks it needs.

    The hot path bypasses per-row SQLAlchemy bind processing (half the writer's time):
    SQLite gets ``executemany``, PostgreSQL gets ``COPY`` (four times faster than batched
    INSERTs here). JSON columns are encoded here; Decimal and date reach SQLite through the
    adapters `observer.db.engine` registers, and psycopg adapts them natively. SQLite
    ignores VARCHAR lengths and keeps NULs, and neither database refuses every decimal the
    other does, so those are checked here (`observer.writer.checks`).
    """
    converters = tuple(
        (index, _json_text)
        for index, name in enumerate(columns)
        if isinstance(table.c[name].type, JSON)
    )
    decimals = decimal_columns(table, columns)
    quote = dialect.identifier_preparer
    target = f"{quote.format_table(table)} ({', '.join(quote.quote(c) for c in columns)})"
    if dialect.name == "postgresql":
        return _Plan(f"COPY {target} FROM STDIN", converters, (), decimals)
    values = ", ".join(["?"] * len(columns))
    sql = f"INSERT INTO {target} VALUES ({values})"  # noqa: S608
    return _Plan(sql, converters, string_limits(table, columns), decimals)


def _convert(
    row: tuple[Any, ...], converters: tuple[tuple[int, Converter], ...]
) -> tuple[Any, ...]:
    values = list(row)
    for index, convert in converters:
        values[index] = convert(values[index])
    return tuple(values)


def _json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()
