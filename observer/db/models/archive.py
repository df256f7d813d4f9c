"""Retention: day archives (Parquet files and their checksums), prune requests, pruned rows."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bus.envelope import MAX_SOURCE_LENGTH
from observer.db.models.base import Audited, Base


class DayArchivedRow(Audited, Base):
    """A verified Parquet file of one table's rows of one trading day (newest record counts)."""

    __tablename__ = "day_archives"
    table_name: Mapped[str] = mapped_column(String(64))
    trade_date: Mapped[date]
    path: Mapped[str] = mapped_column(String(300))  # under the archive folder
    rows: Mapped[int]
    bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    raw_bytes: Mapped[int]
    elapsed_ms: Mapped[int]

    __table_args__ = (Index(None, "table_name", "trade_date"),)


class PruneRequestedRow(Audited, Base):
    """Retention's requests to delete an archived day's rows (the writer's pruning)."""

    __tablename__ = "prune_requests"
    table_name: Mapped[str] = mapped_column(String(64))
    trade_date: Mapped[date]
    rows: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))


class PrunedChunk(Base):
    """Rows the writer deleted in one chunk, per source: what the audit counts as pruned.

    ``seqs`` counts the seqs whose only row was deleted (a tick's, a book's, a snapshot's);
    it is 0 for minute bars, whose seqs stay in ``minute_bar_batches``. The audit adds them
    to the seqs still present, so a pruned day is not a hole.
    """

    __tablename__ = "pruned_chunks"
    table_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    trade_date: Mapped[date] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    chunk: Mapped[int] = mapped_column(primary_key=True)  # 1, 2, ... per table and day
    rows: Mapped[int]
    seqs: Mapped[int]
    min_seq: Mapped[int]
    max_seq: Mapped[int]
    pruned_ns: Mapped[int]
