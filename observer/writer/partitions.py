"""PostgreSQL's day partitions: created ahead, strays moved out of the default, a day dropped.

The four archived tables are ranged by KST trading day on their UTC-ns time column: a partition
``<table>_YYYYMMDD`` per day, bounded as `observer.db.retention_queries.day_bounds` says, and a
default partition, so a row whose day has no partition yet is still stored. Only the writer keeps
them, between two batches; every statement runs under `LOCK_TIMEOUT_MS`, so a long reader delays
maintenance (tried again later), never the writer's batches for long.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine

from observer.calendar.phases import KST
from observer.db.retention_queries import ARCHIVED_TABLES, ArchivedTable, day_bounds

__all__ = ["LOCK_TIMEOUT_MS", "DayStats", "Partitions", "partition_name"]

log = logging.getLogger(__name__)

LOCK_TIMEOUT_MS = 2_000  # the longest a partition statement waits for a reader's lock
MAINTAIN_EVERY_S = 3_600.0  # partitions ahead are checked hourly (and at start)
_DAY_NS = 86_400 * 10**9
_KST_OFFSET_NS = 9 * 3600 * 10**9
_EPOCH = date(1970, 1, 1)
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def partition_name(table: str, day: date) -> str:
    """The name of ``table``'s partition of ``day``."""
    return f"{table}_{day:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class DayStats:
    """What one source has in a day's partition: rows, distinct seqs, their range."""

    source: str
    rows: int
    seqs: int
    min_seq: int
    max_seq: int


class Partitions:
    """The day partitions of the archived tables on one PostgreSQL database.

    Parameters
    ----------
    engine:
        The writer's engine.
    days_ahead:
        Days after today whose partitions are created in advance.
    """

    def __init__(self, engine: Engine, days_ahead: int) -> None:
        self.engine = engine
        self.days_ahead = days_ahead
        self.next_at = 0.0  # monotonic time of the next maintenance: at once
        self.created = 0
        self.moved = 0  # rows moved out of a default partition

    def due(self) -> bool:
        """True when maintenance is due."""
        return time.monotonic() >= self.next_at

    def maintain(self, today: date | None = None) -> list[str]:
        """Create the partitions due and move the default's rows; return those created.

        Due: today's and the next ``days_ahead`` days'. A partition is created apart and then
        attached, which takes only SHARE UPDATE EXCLUSIVE on the parent (readers and the
        writer's inserts go on) and ACCESS EXCLUSIVE on the default, normally empty; creating
        it ``PARTITION OF`` the table would lock the whole table against readers.

        Raises SQLAlchemy's or the driver's error when the database fails (a lock wait past
        ``LOCK_TIMEOUT_MS`` included); what was done before stays done.
        """
        today = today or datetime.now(KST).date()
        ahead = [today + timedelta(days=n) for n in range(self.days_ahead + 1)]
        created: list[str] = []
        for spec in ARCHIVED_TABLES.values():
            with self.engine.connect() as conn:
                have = set(day_partitions(conn, spec.name))
                strays = _default_days(conn, spec)
            for day in sorted({*ahead, *strays} - have):
                created.append(self.ensure(spec, day))
        self.next_at = time.monotonic() + MAINTAIN_EVERY_S
        if created:
            log.info("partitions created: %s", ", ".join(created))
        return created

    def ensure(self, spec: ArchivedTable, day: date) -> str:
        """Make ``day``'s partition of ``spec`` hold all its rows; return its name.

        A day with rows in the default partition gets its partition in one transaction:
        created apart, the rows moved into it, attached.
        """
        name = partition_name(spec.name, day)
        start, end = day_bounds(day)
        column, default = spec.time_column, f"{spec.name}_default"
        with self.engine.begin() as conn:
            _lock_timeout(conn)
            if day in day_partitions(conn, spec.name):
                return name
            conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {spec.name} INCLUDING DEFAULTS)")
            moved = conn.exec_driver_sql(
                f"WITH moved AS (DELETE FROM {default} WHERE {column} >= {start} "  # noqa: S608
                f"AND {column} < {end} RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            ).rowcount
            conn.exec_driver_sql(
                f"ALTER TABLE {spec.name} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ({start}) TO ({end})"
            )
        self.created += 1
        if moved > 0:
            self.moved += moved
            log.warning("moved %d rows of %s from %s into its partition", moved, day, default)
        return name

    def drop(self, conn: Connection, spec: ArchivedTable, day: date) -> None:
        """Drop ``day``'s partition of ``spec`` in ``conn``'s transaction (under the timeout)."""
        _lock_timeout(conn)
        conn.exec_driver_sql(f"DROP TABLE {day_partitions(conn, spec.name)[day]}")


def day_partitions(conn: Connection, table: str) -> dict[date, str]:
    """``table``'s partitions that hold exactly one KST day, by day."""
    found = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
        (table,),
    ).all()
    days: dict[date, str] = {}
    for name, bound in found:
        match = _BOUND.search(bound)
        if match is None:
            continue  # the default partition
        start, end = int(match[1]), int(match[2])
        day = _EPOCH + timedelta(days=(start + _KST_OFFSET_NS) // _DAY_NS)
        if (start, end) == day_bounds(day):
            days[day] = name
    return days


def day_stats(conn: Connection, name: str, owns_seqs: bool) -> list[DayStats]:
    """Per source: the rows of partition ``name``, its distinct seqs and their range.

    The seqs are counted only for a table that owns them (a bar's seq stays in
    ``minute_bar_batches``): 0 otherwise, as the chunks record them.
    """
    seqs = "count(DISTINCT seq)" if owns_seqs else "0"
    found = conn.exec_driver_sql(
        f"SELECT source, count(*), {seqs}, min(seq), max(seq) FROM {name} "  # noqa: S608
        "GROUP BY source ORDER BY source"
    )
    return [DayStats(*row) for row in found]


def _default_days(conn: Connection, spec: ArchivedTable) -> Iterable[date]:
    """The days of the rows in ``spec``'s default partition (normally none)."""
    column = spec.time_column
    found = conn.exec_driver_sql(
        f"SELECT DISTINCT ({column} + {_KST_OFFSET_NS}) / {_DAY_NS} "  # noqa: S608
        f"FROM {spec.name}_default WHERE {column} >= 0"
    ).scalars()
    return [_EPOCH + timedelta(days=n) for n in found if n < 106_000]  # bounds fit a BIGINT


def _lock_timeout(conn: Connection) -> None:
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
