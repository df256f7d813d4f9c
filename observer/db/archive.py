"""Day archives: one table's rows of one trading day as one Parquet file, checked.

``<archive dir>/YYYY/MM/DD/<table>.parquet``: zstd, rows by symbol and time (`archive_order`),
every column as the database holds it (`schema_of`), readable as it is by DuckDB, Polars and
pandas. A file at its final name is always complete (written under a temporary name, read back
whole, renamed), and its size, sha256 and row count are recorded (`bus.events.DayArchived`). An
archive never shrinks (`ArchiveWouldShrink`): the rows it holds may be their only copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Connection,
    Date,
    LargeBinary,
    String,
    Table,
)

from bus.events import DayArchived
from observer.config.workers import RetentionSettings
from observer.db.models import ExactDecimal
from observer.db.retention_queries import ArchivedTable, ArchiveRecord, day_files, day_rows
from observer.errors import ArchiveError
from observer.process.paths import PathSettings
from observer.process.private_files import fsync_path

__all__ = [
    "ArchiveWouldShrink",
    "Written",
    "archive_root",
    "glance_file",
    "highest_seqs",
    "late_path",
    "relative_path",
    "schema_of",
    "verify_file",
    "write_day",
]

_CHUNK = 1 << 20


class ArchiveWouldShrink(ArchiveError):
    """The new file would hold fewer rows than the one it replaces: the old one is kept.

    Fewer than the file, or than its newest record: the rows it holds beyond are gone from the
    database (pruned, or a restore of an older backup), and the file is their only copy.
    """


@dataclass(frozen=True, slots=True)
class Written:
    """A day's file, written and read back."""

    table: str
    trade_date: date
    path: str  # under the archive folder
    rows: int
    bytes: int
    sha256: str
    raw_bytes: int  # the rows' Arrow buffers, uncompressed
    elapsed_ms: int

    def event(self) -> DayArchived:
        """The record the writer keeps."""
        return DayArchived(
            table=self.table,
            trade_date=self.trade_date,
            path=self.path,
            rows=self.rows,
            bytes=self.bytes,
            sha256=self.sha256,
            raw_bytes=self.raw_bytes,
            elapsed_ms=self.elapsed_ms,
        )


def archive_root(retention: RetentionSettings, paths: PathSettings) -> Path:
    """The archive folder: ``[retention] dir``, else ``<data_dir>/archive``."""
    return Path(retention.dir or Path(paths.data_dir) / "archive")


def relative_path(table: str, day: date) -> str:
    """``YYYY/MM/DD/<table>.parquet``."""
    return f"{day:%Y/%m/%d}/{table}.parquet"


def late_path(table: str, day: date, number: int) -> str:
    """``YYYY/MM/DD/<table>.late-N.parquet``: the day's Nth rows committed after its pruning."""
    return f"{day:%Y/%m/%d}/{table}.late-{number}.parquet"


def schema_of(table: Table) -> pa.Schema:
    """The Arrow schema of a table's rows (columns in the table's order).

    Integers int64, decimals decimal128(24, 8), dates date32, flags bool, JSON columns (a
    book's levels) as JSON text.
    """
    return pa.schema([pa.field(c.name, _arrow_type(c.type), nullable=c.nullable) for c in table.c])


def _arrow_type(kind: Any) -> pa.DataType:
    if isinstance(kind, ExactDecimal):
        return pa.decimal128(24, 8)
    if isinstance(kind, Boolean):
        return pa.bool_()
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, JSON | String):
        return pa.string()
    if isinstance(kind, LargeBinary):
        return pa.binary()
    return pa.int64()  # BigInteger: every integer column


def write_day(
    conn: Connection,
    spec: ArchivedTable,
    day: date,
    root: Path,
    read_rows: int,
    progress: Callable[[], None] = lambda: None,
    *,
    path: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> Written | None:
    """Write ``spec``'s rows of ``day`` to their file; None when the day has no rows.

    Rows are read, and written as row groups, ``read_rows`` at a time. ``path`` (under
    ``root``; the day's `relative_path` by default) and ``where`` (the rows of the day it
    holds; all of them by default) make a day's late file. ``progress`` is called after each
    batch of ``read_rows`` and each step of the check: a job beats there, as a day of ticks
    takes minutes, and a job silent for half its heartbeat timeout shows as hung.

    Raises
    ------
    ArchiveWouldShrink
        A file at ``path``, or its newest record, holds more rows: it is kept as it is.
    ArchiveError
        The file could not be written, or did not read back as written.
    """
    started = time.monotonic()
    relative = path or relative_path(spec.name, day)
    final = root / relative
    temporary = final.with_name(f".{final.name}.tmp")
    schema = schema_of(spec.table).with_metadata(
        {"observer.table": spec.name, "observer.trade_date": day.isoformat()}
    )
    json_columns = [i for i, c in enumerate(spec.table.c) if isinstance(c.type, JSON)]
    kept = _rows_held(conn, spec.name, day, relative, final)
    rows = raw = 0
    try:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
            for part in day_rows(conn, spec, day, read_rows, where):
                batch = _batch(schema, part, json_columns)
                writer.write_batch(batch, row_group_size=read_rows)
                rows += batch.num_rows
                raw += batch.nbytes
                progress()
        if rows == 0:
            temporary.unlink()
            _remove_empty(final.parent, root)
            return None
        if kept > rows:
            temporary.unlink()
            raise ArchiveWouldShrink(
                f"{final} holds {kept} rows and the day {rows} now: the file is kept "
                "(an archive never shrinks; the rows beyond are no longer in the database)"
            )
        fsync_path(temporary)
        progress()
        if pq.read_table(temporary).num_rows != rows:  # read back whole: every page decodes
            raise ArchiveError(f"{temporary} did not read back with {rows} rows")
        progress()
        digest = sha256_of(temporary, progress)
        size = temporary.stat().st_size
        os.replace(temporary, final)
        fsync_path(final.parent)
    except (OSError, ArithmeticError, ValueError, pa.ArrowException) as exc:
        # ArithmeticError, ValueError: a stored value the file's type cannot hold (a decimal
        # beyond decimal128(24, 8), text that is no decimal): this table's day alone fails.
        with contextlib.suppress(OSError):  # its folder may be what failed (not a folder)
            temporary.unlink(missing_ok=True)
        raise ArchiveError(f"cannot write {final}: {type(exc).__name__}: {exc}") from exc
    elapsed = int((time.monotonic() - started) * 1000)
    return Written(spec.name, day, relative, rows, size, digest, raw, elapsed)


def _rows_held(conn: Connection, table: str, day: date, relative: str, final: Path) -> int:
    """The rows the file being replaced holds: the more of its newest record's and its own.

    A file that cannot be read holds none that could be kept (its record still counts).
    """
    recorded = [r.rows for r in day_files(conn, table, day) if r.path == relative]
    held = 0
    if final.is_file():
        try:
            held = pq.read_metadata(final).num_rows
        except (OSError, pa.ArrowException):
            held = 0
    return max([held, *recorded])


def highest_seqs(root: Path, records: Iterable[ArchiveRecord]) -> dict[str, int]:
    """Each source's highest seq in the recorded files (read: their two key columns).

    Raises
    ------
    ArchiveError
        A file cannot be read.
    """
    highest: dict[str, int] = {}
    for record in records:
        try:
            keys = pq.read_table(root / record.path, columns=["source", "seq"])
        except (OSError, pa.ArrowException) as exc:
            raise ArchiveError(f"cannot read {root / record.path}: {exc}") from exc
        tops = keys.group_by("source").aggregate([("seq", "max")]).to_pylist()
        for top in tops:
            highest[top["source"]] = max(highest.get(top["source"], 0), top["seq_max"])
    return highest


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents below ``root`` while they are empty.

    A day with no rows leaves no folder of its own, nor of its month or year.
    """
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # another table's file is there, or it is gone
            return
        folder = folder.parent


def _batch(schema: pa.Schema, rows: Iterable[Any], json_columns: list[int]) -> pa.RecordBatch:
    columns = [list(values) for values in zip(*rows, strict=True)]
    for index in json_columns:
        columns[index] = [msgspec.json.encode(v).decode() for v in columns[index]]
    arrays = [
        pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def verify_file(
    root: Path, record: ArchiveRecord, progress: Callable[[], None] = lambda: None
) -> str | None:
    """Check a file against its record; return what is wrong, or None.

    ``progress`` is called as it reads, as `write_day`'s is.
    """
    path = root / record.path
    if not path.is_file():
        return f"{path} is missing"
    size = path.stat().st_size
    if size != record.bytes:
        return f"{path} has {size} bytes, {record.bytes} recorded"
    if sha256_of(path, progress) != record.sha256:
        return f"{path} does not match its recorded sha256"
    progress()
    try:
        rows = pq.read_table(path).num_rows
    except (OSError, pa.ArrowException) as exc:
        return f"{path} cannot be read: {exc}"
    if rows != record.rows:
        return f"{path} holds {rows} rows, {record.rows} recorded"
    return None


def glance_file(
    root: Path, record: ArchiveRecord, progress: Callable[[], None] = lambda: None
) -> str | None:
    """`verify_file`'s cheap part: what is wrong with a file at a glance, or None.

    The file is there, has its recorded size, and its Parquet footer (a few KiB read, no page
    decoded) gives the recorded row count. The archive job looks at every recent day's file
    this way each night; reading them whole is the weekly ``archive verify``'s work, and
    retention's before a pruning.
    """
    path = root / record.path
    if not path.is_file():
        return f"{path} is missing"
    try:
        size = path.stat().st_size
        rows = pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException) as exc:
        return f"{path} cannot be read: {exc}"
    finally:
        progress()
    if size != record.bytes:
        return f"{path} has {size} bytes, {record.bytes} recorded"
    if rows != record.rows:
        return f"{path} holds {rows} rows, {record.rows} recorded"
    return None


def sha256_of(path: Path, progress: Callable[[], None] = lambda: None) -> str:
    """The hex sha256 of a file's bytes (``progress`` called after each chunk)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            progress()
    return digest.hexdigest()
