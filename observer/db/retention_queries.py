"""The reads of retention: which rows make a trading day, its archives, what was pruned.

A row belongs to the KST trading day of its table's time column: a tick's or a book's
exchange time, a snapshot's observation, a bar's minute. The archive job, ``observer archive
verify`` and the writer's pruner all ask here, so the three agree on what a day holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    func,
    or_,
    select,
    true,
)

from observer.calendar.phases import KST
from observer.db.audit_queries import snapshot
from observer.db.models import (
    Audited,
    BarRow,
    DayArchivedRow,
    OrderBookRow,
    PriceSnapshotRow,
    PrunedChunk,
    TradeTickRow,
)

__all__ = [
    "ARCHIVED_TABLES",
    "ArchiveRecord",
    "ArchivedTable",
    "archive_order",
    "archive_records",
    "day_bounds",
    "day_count",
    "day_files",
    "day_filter",
    "day_rows",
    "day_sources",
    "days_with_rows",
    "late_filter",
    "newest_archive",
    "one_snapshot",
    "pruned_rows",
]

_DAY_NS = 86_400 * 10**9
_KST_OFFSET_NS = 9 * 3600 * 10**9  # KST has no daylight saving time


@dataclass(frozen=True, slots=True)
class ArchivedTable:
    """A table archived and pruned by trading day."""

    name: str
    model: type[Audited]
    time_column: str  # the UTC-ns instant that dates a row
    owns_seqs: bool  # its rows are the only record of their seqs (not so for minute bars)

    @property
    def table(self) -> Table:
        """The SQLAlchemy table."""
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        return table

    @property
    def instant(self) -> Column[Any]:
        """The time column."""
        column: Column[Any] = self.table.c[self.time_column]
        return column


ARCHIVED_TABLES: dict[str, ArchivedTable] = {
    t.name: t
    for t in (
        ArchivedTable("trade_ticks", TradeTickRow, "exchange_ns", owns_seqs=True),
        ArchivedTable("order_books", OrderBookRow, "exchange_ns", owns_seqs=True),
        ArchivedTable("price_snapshots", PriceSnapshotRow, "observed_ns", owns_seqs=True),
        ArchivedTable("minute_bars", BarRow, "minute_ns", owns_seqs=False),
    )
}


@dataclass(frozen=True, slots=True)
class ArchiveRecord:
    """The newest archive record of one table's day (`observer.db.models.DayArchivedRow`)."""

    table: str
    trade_date: date
    path: str
    rows: int
    bytes: int
    sha256: str
    raw_bytes: int
    elapsed_ms: int


def day_bounds(day: date) -> tuple[int, int]:
    """The UTC-ns instants [start, end) of a KST day."""
    start = datetime.combine(day, time(), KST).astimezone(UTC)
    start_ns = int(start.timestamp()) * 10**9
    return start_ns, start_ns + _DAY_NS


def day_filter(spec: ArchivedTable, day: date) -> ColumnElement[bool]:
    """The rows of ``spec``'s table dated ``day``."""
    start, end = day_bounds(day)
    return and_(spec.instant >= start, spec.instant < end)


@contextmanager
def one_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` whose reads all see one snapshot (`snapshot`).

    What the archive job decides from several reads (is the day pruned, what its files hold,
    its rows) must agree with the rows it then writes: read apart, a pruning chunk committed
    in between made a file without it replace the whole day's.
    """
    with engine.connect() as conn, snapshot(conn):  # its isolation level is reset after
        yield conn


def day_rows(
    conn: Connection,
    spec: ArchivedTable,
    day: date,
    batch: int,
    where: ColumnElement[bool] | None = None,
) -> Iterator[Any]:
    """The day's rows (those ``where`` selects) in `archive_order`, ``batch`` at a time."""
    table = spec.table
    condition = day_filter(spec, day) if where is None else and_(day_filter(spec, day), where)
    query = select(table).where(condition).order_by(*archive_order(spec))
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    yield from result.partitions(batch)


def archive_order(spec: ArchivedTable) -> list[Column[Any]]:
    """The order of a day file's rows: by symbol and time, then the key (source, seq, ...).

    One symbol's rows are then together, and each row group's statistics on ``symbol`` and
    the time column let a reader of one symbol or one hour skip the others'.
    """
    table = spec.table
    key = [c for c in table.primary_key.columns.values() if c.name != spec.time_column]
    return [table.c.symbol, spec.instant, *key]


def day_sources(conn: Connection, spec: ArchivedTable, day: date) -> dict[str, int]:
    """Rows of the day still in the table, per source."""
    query = (
        select(spec.table.c.source, func.count())
        .where(day_filter(spec, day))
        .group_by(spec.table.c.source)
    )
    return {source: count for source, count in conn.execute(query)}


def days_with_rows(
    conn: Connection, spec: ArchivedTable, before: date, since: date | None = None
) -> dict[date, int]:
    """Rows per KST day, for the days before ``before`` (and from ``since``) holding rows.

    One statement, which reads only the index entries of those days: on PostgreSQL the time
    bounds leave out every other day's partition; on SQLite, whose tables are keyed by
    (source, seq), each symbol's range of the ``(symbol, <time>)`` index is read, the symbols
    found by a loose scan of the same index (one seek each), never the table.
    """
    table = spec.table
    bounds = [spec.instant < day_bounds(before)[0]]
    if since is not None:
        bounds.append(spec.instant >= day_bounds(since)[0])
    day_no = (spec.instant + _KST_OFFSET_NS) // _DAY_NS
    query = select(day_no.label("day"), func.count()).where(*bounds).group_by("day")
    if conn.dialect.name == "sqlite":
        symbol = table.c.symbol
        first = select(func.min(symbol).label("s")).cte("symbols", recursive=True)
        following = select(select(func.min(symbol)).where(symbol > first.c.s).scalar_subquery())
        symbols = first.union_all(following.where(first.c.s.is_not(None)))
        query = query.select_from(symbols.join(table, symbol == symbols.c.s))
    epoch = date(1970, 1, 1)
    return {epoch + timedelta(days=int(n)): count for n, count in conn.execute(query)}


def day_count(
    conn: Connection, spec: ArchivedTable, day: date, where: ColumnElement[bool] | None = None
) -> int:
    """The rows ``spec``'s table holds for ``day`` (those ``where`` selects)."""
    if where is None:  # the index-only count of `days_with_rows`
        return days_with_rows(conn, spec, day + timedelta(days=1), since=day).get(day, 0)
    query = select(func.count()).where(day_filter(spec, day), where)
    return int(conn.execute(query).scalar_one())


def late_filter(spec: ArchivedTable, highest: Mapping[str, int]) -> ColumnElement[bool]:
    """The rows committed after files holding each source's seqs up to ``highest[source]``.

    A source's seqs commit in order, each with all its rows, and rows are never changed: a
    file made from a snapshot holds every row of the day its sources had committed, so a row
    of the day it lacks has a seq above its source's highest in the file (or a source the
    file does not hold at all).
    """
    source, seq = spec.table.c.source, spec.table.c.seq
    known = [and_(source == name, seq > top) for name, top in highest.items()]
    return or_(*known, source.not_in(list(highest)))


def pruned_rows(conn: Connection, table: str, day: date) -> tuple[int, int]:
    """Rows already pruned from ``table`` for ``day``, and the chunks that did it."""
    query = select(func.coalesce(func.sum(PrunedChunk.rows), 0), func.count()).where(
        PrunedChunk.table_name == table, PrunedChunk.trade_date == day
    )
    rows, chunks = conn.execute(query).one()
    return int(rows), int(chunks)


def _records(conn: Connection, condition: ColumnElement[bool]) -> list[ArchiveRecord]:
    a = DayArchivedRow
    query = (
        select(
            a.table_name,
            a.trade_date,
            a.path,
            a.rows,
            a.bytes,
            a.sha256,
            a.raw_bytes,
            a.elapsed_ms,
        )
        .where(condition)
        .order_by(a.trade_date, a.table_name, a.produced_ns, a.source, a.seq)
    )
    newest: dict[tuple[str, date, str], ArchiveRecord] = {}
    for row in conn.execute(query):
        key = (row[0], row[1], row[2])
        newest.pop(key, None)  # a later record of a file replaces it, and goes last
        newest[key] = ArchiveRecord(*row)
    return list(newest.values())


def archive_records(conn: Connection, day: date | None = None) -> list[ArchiveRecord]:
    """The newest record of every archive file, or of one day's files."""
    condition = DayArchivedRow.trade_date == day if day is not None else true()
    return _records(conn, condition)


def day_files(conn: Connection, table: str, day: date) -> list[ArchiveRecord]:
    """The newest record of each of ``table``'s files of ``day``, the last recorded last.

    A day has one file, ``<table>.parquet``, and one ``<table>.late-N.parquet`` for each
    time rows of the day were committed after it was pruned (`workers.archive.job`): the
    day's archive is all of them, their rows added up.
    """
    return _records(
        conn, and_(DayArchivedRow.table_name == table, DayArchivedRow.trade_date == day)
    )


def newest_archive(conn: Connection, table: str, day: date) -> ArchiveRecord | None:
    """The last recorded of ``table``'s files of ``day`` (`day_files`), if any."""
    found = day_files(conn, table, day)
    return found[-1] if found else None
