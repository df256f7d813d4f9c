"""The audit's read queries (a part of `observer.db.queries`): completeness and conflicts.

Per source, the distinct seqs across all append-only tables (and those retention pruned)
must be exactly 1..max, and max the committed mark; every source with a mark is audited,
rows or none. Seqs a producer declared lost (``bus_losses``) are accounted for, not present:
the audit names them. `snapshot` is the one-snapshot read the audit needs, for other reads
too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, func, literal, null, select, text, union_all

from observer.db.models import (
    AUDITED_MODELS,
    AlertAckedRow,
    BusConflict,
    BusOffset,
    PrunedChunk,
    SeqsLostRow,
)

__all__ = [
    "Loss",
    "SourceAudit",
    "StoredConflict",
    "audit_sources",
    "conflicts",
    "losses",
    "snapshot",
]


@dataclass(frozen=True, slots=True)
class Loss:
    """Seqs ``first_seq..last_seq`` of ``source`` a producer declared lost at ``declared_ns``."""

    source: str
    first_seq: int
    last_seq: int
    acknowledged: int  # the highest seq the producer had seen acknowledged
    declared_ns: int
    alert_acked: bool = False  # an operator acknowledged its alert (`observer alerts ack`)

    @property
    def missing(self) -> int:
        """The seqs of the range with no row: all but the last, the declaration's own."""
        return self.last_seq - self.first_seq


@dataclass(frozen=True, slots=True)
class SourceAudit:
    """Completeness of one source: its seqs must be exactly 1..max, max = high-water mark.

    A source with a mark and no seq stored (nor pruned) shows ``0..0``: incomplete.
    """

    source: str
    min_seq: int
    max_seq: int
    distinct: int
    rows: int
    committed: int
    lost: int = 0  # seqs declared lost (`Loss.missing`), accounted for though absent

    @property
    def complete(self) -> bool:
        """True when every seq is present or declared lost, and the mark matches the rows."""
        return (
            self.min_seq == 1
            and self.distinct + self.lost == self.max_seq
            and self.max_seq == self.committed
        )


def audit_sources(conn: Connection) -> list[SourceAudit]:
    """Audit every source across all append-only tables (see `SourceAudit`).

    Every source with a stored row, a pruned seq or a committed mark is listed: a source
    whose committed events left no row at all (every event type leaves at least one, see
    `observer.writer.rows`) is the largest hole, never silence.

    The marks and the rows are read in one snapshot, so a writer committing meanwhile is
    seen entirely or not at all: read apart, a live database showed holes that were not
    there. One statement reads both (one snapshot on SQLite and PostgreSQL alike), in a
    REPEATABLE READ transaction on PostgreSQL. ``conn`` must not have begun a transaction.
    """
    everything = union_all(
        *(select(model.source, model.seq) for model in AUDITED_MODELS)
    ).subquery()
    present = select(
        everything.c.source,
        func.min(everything.c.seq).label("low"),
        func.max(everything.c.seq).label("high"),
        func.count(func.distinct(everything.c.seq)).label("seqs"),
        func.count().label("rows"),
    ).group_by(everything.c.source)
    # Seqs whose only row retention pruned (after archiving) count as present: no hole.
    pruned = (
        select(
            PrunedChunk.source,
            func.min(PrunedChunk.min_seq),
            func.max(PrunedChunk.max_seq),
            func.sum(PrunedChunk.seqs),
            literal(0, BigInteger),
        )
        .where(PrunedChunk.seqs > 0)
        .group_by(PrunedChunk.source)
    )
    # Every marked source, so one whose rows are all gone is listed (0..0, incomplete).
    none = null().cast(BigInteger)
    marked = select(BusOffset.source, none, none, literal(0, BigInteger), literal(0, BigInteger))
    both = union_all(present, pruned, marked).subquery()
    mark = select(BusOffset.seq).where(BusOffset.source == both.c.source).scalar_subquery()
    query = (
        select(
            both.c.source,
            func.coalesce(func.min(both.c.low), 0),
            func.coalesce(func.max(both.c.high), 0),
            func.sum(both.c.seqs),
            func.sum(both.c.rows),
            func.coalesce(mark, 0),
        )
        .group_by(both.c.source)
        .order_by(both.c.source)
    )
    with snapshot(conn):
        rows = conn.execute(query).all()
        declared = losses(conn)
    lost, lowest = Counter[str](), dict[str, int]()
    for loss in declared:  # a range from seq 1 has no row below its declaration's own seq
        lost[loss.source] += loss.missing
        lowest[loss.source] = min(lowest.get(loss.source, loss.first_seq), loss.first_seq)
    return [
        SourceAudit(
            source,
            min_seq=min(int(low), lowest.get(source, int(low))),
            max_seq=int(high),
            distinct=int(seqs),
            rows=int(count),
            committed=int(mark),
            lost=lost[source],
        )
        for source, low, high, seqs, count, mark in rows
    ]


def losses(conn: Connection) -> list[Loss]:
    """Every range a producer declared lost, oldest first, and whether its alert was acked."""
    row, ack = SeqsLostRow, AlertAckedRow
    acked = (
        select(ack.alert_seq)
        .where(ack.alert_source == row.source, ack.alert_seq == row.seq)
        .exists()
    )
    query = (
        select(row.source, row.first_seq, row.last_seq, row.acknowledged, row.produced_ns, acked)
        .where(row.last_seq == row.seq, row.first_seq <= row.last_seq)  # a declaration's own
        .order_by(row.produced_ns, row.source, row.seq)
    )
    return [Loss(*r) for r in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class StoredConflict:
    """An envelope that repeated a committed seq with other content (kept in bus_conflicts)."""

    source: str
    seq: int
    event_type: str
    received_ns: int


def conflicts(conn: Connection) -> list[StoredConflict]:
    """Every recorded conflict, oldest first."""
    query = select(
        BusConflict.source, BusConflict.seq, BusConflict.event_type, BusConflict.received_ns
    ).order_by(BusConflict.received_ns, BusConflict.source, BusConflict.seq)
    return [StoredConflict(*row) for row in conn.execute(query)]


@contextmanager
def snapshot(conn: Connection) -> Iterator[None]:
    """A transaction whose reads all see one snapshot, until the block ends.

    PostgreSQL's default READ COMMITTED takes a snapshot per statement: REPEATABLE READ
    keeps the first one. pysqlite begins no transaction for a SELECT, so each read would be
    its own: an explicit BEGIN holds the first read's snapshot (WAL: the writer goes on
    committing meanwhile). The archive job, the alert reads and the audit decide from
    several reads that must agree.
    """
    if conn.in_transaction():
        raise ValueError("a snapshot needs a connection that has not begun a transaction")
    postgres = conn.dialect.name == "postgresql"
    default = conn.default_isolation_level
    if postgres:
        conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            if conn.dialect.name == "sqlite":  # a read transaction (readers are query_only)
                conn.execute(text("BEGIN"))
            yield
    finally:
        if postgres and default is not None:
            conn.execution_options(isolation_level=default)
