"""Read-only queries shared by workers, tools and tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, func, select, union_all

from observer.db.models import (
    AUDITED_MODELS,
    BusConflict,
    BusOffset,
    UniverseMemberRow,
    UniverseSnapshotRow,
)

__all__ = [
    "Conflict",
    "SourceAudit",
    "audit_sources",
    "committed_offsets",
    "conflicts",
    "universe_of",
]


@dataclass(frozen=True, slots=True)
class SourceAudit:
    """Completeness of one source: its seqs must be exactly 1..max, max = high-water mark."""

    source: str
    min_seq: int
    max_seq: int
    distinct: int
    rows: int
    committed: int

    @property
    def complete(self) -> bool:
        """True when no seq is missing and the high-water mark matches the rows."""
        return (
            self.min_seq == 1 and self.distinct == self.max_seq and self.max_seq == self.committed
        )


def committed_offsets(conn: Connection) -> dict[str, int]:
    """Each source's committed high-water mark."""
    return {row.source: row.seq for row in conn.execute(select(BusOffset.source, BusOffset.seq))}


def audit_sources(conn: Connection) -> list[SourceAudit]:
    """Audit every source across all append-only tables (see `SourceAudit`).

    The marks and the rows are read in one snapshot, so a writer committing meanwhile is
    seen entirely or not at all: read apart, a live database showed holes that were not
    there. One statement reads both (one snapshot on SQLite and PostgreSQL alike), in a
    REPEATABLE READ transaction on PostgreSQL. ``conn`` must not have begun a transaction.
    """
    everything = union_all(
        *(select(model.source, model.seq) for model in AUDITED_MODELS)
    ).subquery()
    mark = select(BusOffset.seq).where(BusOffset.source == everything.c.source).scalar_subquery()
    query = (
        select(
            everything.c.source,
            func.min(everything.c.seq),
            func.max(everything.c.seq),
            func.count(func.distinct(everything.c.seq)),
            func.count(),
            func.coalesce(mark, 0),
        )
        .group_by(everything.c.source)
        .order_by(everything.c.source)
    )
    with _snapshot(conn):
        rows = conn.execute(query).all()
    return [SourceAudit(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Conflict:
    """An envelope that repeated a committed seq with other content (kept in bus_conflicts)."""

    source: str
    seq: int
    event_type: str
    received_ns: int


def conflicts(conn: Connection) -> list[Conflict]:
    """Every recorded conflict, oldest first."""
    query = select(
        BusConflict.source, BusConflict.seq, BusConflict.event_type, BusConflict.received_ns
    ).order_by(BusConflict.received_ns, BusConflict.source, BusConflict.seq)
    return [Conflict(*row) for row in conn.execute(query)]


@contextmanager
def _snapshot(conn: Connection) -> Iterator[None]:
    """A transaction whose reads all see one snapshot (REPEATABLE READ on PostgreSQL).

    PostgreSQL's default READ COMMITTED takes a snapshot per statement. SQLite keeps one
    per statement, or per read transaction when one is begun.
    """
    if conn.in_transaction():
        raise ValueError("a snapshot needs a connection that has not begun a transaction")
    postgres = conn.dialect.name == "postgresql"
    default = conn.default_isolation_level
    if postgres:
        conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            yield
    finally:
        if postgres and default is not None:
            conn.execution_options(isolation_level=default)


def universe_of(conn: Connection, day: date) -> list[tuple[str, str, int]]:
    """The members (symbol, market, rank) of ``day``'s newest universe, by rank; [] if none.

    A day's universe never changes, but it may be published more than once (a rerun
    republishes it when the database lacks it): the newest publication is the one.
    """
    newest = conn.execute(
        select(UniverseSnapshotRow.source, UniverseSnapshotRow.seq)
        .where(UniverseSnapshotRow.trade_date == day)
        .order_by(UniverseSnapshotRow.produced_ns.desc(), UniverseSnapshotRow.seq.desc())
        .limit(1)
    ).first()
    if newest is None:
        return []
    m = UniverseMemberRow
    query = (
        select(m.symbol, m.market, m.rank)
        .where(m.source == newest.source, m.seq == newest.seq)
        .order_by(m.rank, m.symbol)
    )
    return list(conn.execute(query).tuples())
