"""Day archives: one table's rows of one trading day as Parquet files, checked.

In ``<archive dir>/<table>/date=YYYY-MM-DD/`` (`observer.db.archive_layout`): ticks a file
per symbol, rows in time order; the other tables one file, rows by symbol and time in row
groups that end with a symbol (`_SymbolGroups`). zstd, integers delta-encoded, every column
as the database holds it (`schema_of`), readable as they are by DuckDB, Polars and pandas.
Files at their final names are always complete (written aside, read back whole, then moved
into place), and what one record covers (a day's files, or its late files: a part) is
recorded with its size, row count and sha256 (`bus.events.DayArchived`; of a part of files
per symbol, the sha256 of their names and sha256s). An archive never shrinks
(`ArchiveWouldShrink`): the rows it holds may be their only copy. A day recorded before
this layout goes on in its own, one file per table and day.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
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
from observer.db.archive_layout import SYMBOL, SYMBOL_NAME, is_part, main_path, part_files
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
    "part_digest",
    "schema_of",
    "verify_file",
    "write_day",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# A row group ends at the first symbol boundary past this many rows (see `_SymbolGroups`).
# Each row group adds its columns' entries to the footer every reader parses first. For a day
# of 300,000 books, groups of at least 2,048 rows with every column's statistics make a 550 KB
# footer and a 30 ms read of three columns; at least 8,192 with statistics of the symbol and
# the time alone (those a reader skips by) make 110 KB and 10 ms, as 50,000-row groups do.
GROUP_MIN_ROWS = 8_192


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


def schema_of(table: Table) -> pa.Schema:
    """The Arrow schema of a table's rows (columns in the table's order).

    Integers int64, decimals decimal128(24, 8), dates date32, flags bool, JSON columns as
    JSON text.
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
    """Write ``spec``'s rows of ``day`` to their files; None when the day has no rows.

    Rows are read ``read_rows`` at a time. ``path`` (under ``root``; the day's `main_path`
    by default) and ``where`` (the rows of the day it holds; all of them by default) make a
    day's late files (`archive_layout.late_path`). ``progress`` is called after each batch
    of ``read_rows``, each file and each step of the check: a job beats there, as a day of
    ticks takes minutes, and a job silent for half its heartbeat timeout shows as hung.

    Raises
    ------
    ArchiveWouldShrink
        The files at ``path``, or their newest record, hold more rows: they are kept.
    ArchiveError
        The files could not be written, or did not read back as written.
    """
    started = time.monotonic()
    recorded = day_files(conn, spec.name, day)
    relative = path or main_path(spec.name, day, (r.path for r in recorded))
    kept = max([_rows_in(root, relative), *(r.rows for r in recorded if r.path == relative)])
    schema = schema_of(spec.table).with_metadata(
        {"observer.table": spec.name, "observer.trade_date": day.isoformat()}
    )
    batches = _batches(conn, spec, day, read_rows, where, schema, progress)
    files: _PartFiles | _SingleFile
    if is_part(relative):
        files = _PartFiles(root, relative, schema, progress)
    else:
        files = _SingleFile(root, relative, schema, read_rows, progress, spec.time_column)
    try:
        rows, raw = files.write(batches)
        if rows == 0:
            files.discard()
            _remove_empty(root / relative.rpartition("/")[0], root)
            return None
        if kept > rows:
            files.discard()
            raise ArchiveWouldShrink(
                f"{root / relative} holds {kept} rows and the day {rows} now: the files are "
                "kept (an archive never shrinks; the rows beyond are not in the database)"
            )
        size, digest = files.check(rows)
        files.commit()
    except (OSError, ArithmeticError, ValueError, pa.ArrowException) as exc:
        # ArithmeticError, ValueError: a stored value the file's type cannot hold (a decimal
        # beyond decimal128(24, 8), text that is no decimal): this table's day alone fails.
        with contextlib.suppress(OSError):  # its folder may be what failed (not a folder)
            files.discard()
        raise ArchiveError(f"cannot write {root / relative}: {type(exc).__name__}: {exc}") from exc
    except ArchiveError:
        with contextlib.suppress(OSError):
            files.discard()
        raise
    elapsed = int((time.monotonic() - started) * 1000)
    return Written(spec.name, day, relative, rows, size, digest, raw, elapsed)


def _batches(
    conn: Connection,
    spec: ArchivedTable,
    day: date,
    read_rows: int,
    where: ColumnElement[bool] | None,
    schema: pa.Schema,
    progress: Callable[[], None],
) -> Iterator[pa.RecordBatch]:
    """The day's rows (those ``where`` selects) in `archive_order`, as Arrow batches."""
    json_columns = [i for i, c in enumerate(spec.table.c) if isinstance(c.type, JSON)]
    for part in day_rows(conn, spec, day, read_rows, where):
        yield _batch(schema, part, json_columns)
        progress()


def _rows_in(root: Path, relative: str) -> int:
    """The rows the files at ``relative`` hold now, by their footers (unreadable: none)."""
    held = 0
    for file in part_files(root, relative):
        try:
            held += pq.read_metadata(file).num_rows
        except (OSError, pa.ArrowException):
            continue
    return held


class _SingleFile:
    """A day's one file: written aside, read back, renamed over the one it replaces."""

    def __init__(
        self,
        root: Path,
        relative: str,
        schema: pa.Schema,
        read_rows: int,
        progress: Callable[[], None],
        time_column: str,
    ) -> None:
        self.final = root / relative
        self.temporary = self.final.with_name(f".{self.final.name}.tmp")
        self.schema = schema
        self.read_rows = read_rows
        self.progress = progress
        self.skipped_by = ["symbol", time_column]  # the statistics written

    def write(self, batches: Iterable[pa.RecordBatch]) -> tuple[int, int]:
        """Write the rows as row groups that end with a symbol; their count and raw bytes."""
        rows = raw = 0
        self.final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        options = _encodings(self.schema) | {"write_statistics": self.skipped_by}
        with pq.ParquetWriter(self.temporary, self.schema, **options) as writer:
            groups = _SymbolGroups(writer, self.read_rows)
            for batch in batches:
                groups.add(batch)
                rows += batch.num_rows
                raw += batch.nbytes
            groups.flush()
        return rows, raw

    def check(self, rows: int) -> tuple[int, str]:
        """Flush and read back the file whole; its size and sha256."""
        fsync_path(self.temporary)
        self.progress()
        if pq.read_table(self.temporary).num_rows != rows:  # every page decodes
            raise ArchiveError(f"{self.temporary} did not read back with {rows} rows")
        self.progress()
        return self.temporary.stat().st_size, sha256_of(self.temporary, self.progress)

    def commit(self) -> None:
        """Rename the file into place."""
        os.replace(self.temporary, self.final)
        fsync_path(self.final.parent)

    def discard(self) -> None:
        """Remove what was written."""
        self.temporary.unlink(missing_ok=True)


class _PartFiles:
    """A part's files, a file per symbol, written aside and moved into place once all check.

    A day's files are written to a folder beside the day's (``.date=D.tmp``) that then
    replaces it whole: the old folder is renamed aside first, so a crash in between leaves
    no day folder (its record then fails the night's glance, and the day, not pruned while
    that is so, is written again). Late files are written into the day's folder under
    temporary names and renamed one by one: a crash in between leaves late files that no
    record covers, removed when those late files are written again.
    """

    def __init__(
        self, root: Path, relative: str, schema: pa.Schema, progress: Callable[[], None]
    ) -> None:
        self.root = root
        self.relative = relative
        folder, _, self.name = relative.rpartition("/")
        self.folder = root / folder
        self.late = self.name != f"{SYMBOL}.parquet"
        self.staging = (
            self.folder if self.late else self.folder.with_name(f".{self.folder.name}.tmp")
        )
        self.schema = schema
        self.progress = progress
        self.written: dict[str, Path] = {}  # file name -> where it was written

    def write(self, batches: Iterable[pa.RecordBatch]) -> tuple[int, int]:
        """Write each symbol's rows (batches in symbol order) to its file; count, raw bytes."""
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"{self.folder} is not a folder")  # never moved aside
        if not self.late:
            shutil.rmtree(self.staging, ignore_errors=True)  # what a crash left
        self.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        rows = raw = 0
        held: list[pa.RecordBatch] = []
        for batch in batches:
            rows += batch.num_rows
            raw += batch.nbytes
            symbols = batch.column("symbol")
            ends = pc.indices_nonzero(pc.not_equal(symbols[1:], symbols[:-1])).to_pylist()
            for first, stop in itertools.pairwise([0, *(e + 1 for e in ends), batch.num_rows]):
                if held and held[0].column("symbol")[0] != symbols[first]:
                    self._write_symbol(held)
                    held = []
                held.append(batch.slice(first, stop - first))
        if held:
            self._write_symbol(held)
        return rows, raw

    def _write_symbol(self, batches: list[pa.RecordBatch]) -> None:
        """One symbol's rows (in time order) as its file, one row group."""
        symbol = batches[0].column("symbol")[0].as_py()
        if not isinstance(symbol, str) or not SYMBOL_NAME.fullmatch(symbol):
            raise ArchiveError(f"the symbol {symbol!r} cannot name an archive file")
        name = self.name.replace(SYMBOL, symbol)
        target = self.staging / (f".{name}.tmp" if self.late else name)
        table = pa.Table.from_batches(batches, schema=self.schema)
        pq.write_table(table, target, row_group_size=table.num_rows, **_encodings(self.schema))
        self.written[name] = target
        self.progress()

    def check(self, rows: int) -> tuple[int, str]:
        """Flush and read back every file whole; their size and the part's digest."""
        read = size = 0
        hashes = []
        for name, file in sorted(self.written.items()):
            fsync_path(file)
            read += pq.read_table(file).num_rows  # every page decodes
            size += file.stat().st_size
            hashes.append((name, sha256_of(file, self.progress)))
        if read != rows:
            raise ArchiveError(f"{self.root / self.relative} did not read back with {rows} rows")
        fsync_path(self.staging)
        return size, part_digest(hashes)

    def commit(self) -> None:
        """Put the files at their names: the day's folder replaced, or each late file."""
        if self.late:
            placed = {self.folder / name for name in self.written}
            for stale in set(part_files(self.root, self.relative)) - placed:
                stale.unlink()  # late files of this number that no record covers (a crash)
            for name, file in self.written.items():
                os.replace(file, self.folder / name)
            fsync_path(self.folder)
            return
        old = self.folder.with_name(f".{self.folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(self.staging, self.folder)
        fsync_path(self.folder.parent)
        try:
            shutil.rmtree(old)
        except FileNotFoundError:
            pass
        except OSError as exc:  # the day is written; the copy aside only takes disk
            log.warning("cannot remove %s (the day's files it replaced): %s", old, exc)

    def discard(self) -> None:
        """Remove what was written."""
        if self.late:
            for file in self.written.values():
                file.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.staging, ignore_errors=True)


def part_digest(hashes: Iterable[tuple[str, str]]) -> str:
    """The sha256 a record keeps of a part: of its files' names and sha256s, by name."""
    listing = "".join(f"{name} {digest}\n" for name, digest in sorted(hashes))
    return hashlib.sha256(listing.encode()).hexdigest()


def highest_seqs(root: Path, records: Iterable[ArchiveRecord]) -> dict[str, int]:
    """Each source's highest seq in the recorded files (read: their two key columns).

    Raises
    ------
    ArchiveError
        A file cannot be read.
    """
    highest: dict[str, int] = {}
    for record in records:
        for file in part_files(root, record.path):
            try:
                keys = pq.read_table(file, columns=["source", "seq"])
            except (OSError, pa.ArrowException) as exc:
                raise ArchiveError(f"cannot read {file}: {exc}") from exc
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


def _encodings(schema: pa.Schema) -> dict[str, Any]:
    """The writer's options: zstd; integers delta-encoded, the other columns by dictionary.

    A day file's rows are by symbol and time, so each integer column (times, seqs, prices,
    cumulative volumes) moves by small steps from row to row: DELTA_BINARY_PACKED stores the
    steps. Text, flags and decimals repeat: a dictionary stores each value once.
    """
    integers = [f.name for f in schema if pa.types.is_integer(f.type)]
    return {
        "compression": "zstd",
        "compression_level": 9,  # written once a night, read often: bytes over write time
        "use_dictionary": [f.name for f in schema if f.name not in integers],
        "column_encoding": dict.fromkeys(integers, "DELTA_BINARY_PACKED"),
    }


class _SymbolGroups:
    """Writes a day's batches (rows in symbol order) as row groups that end with a symbol.

    A row group ends where a symbol's rows end once it holds ``least_rows``, and holds at
    most ``most_rows`` (a symbol of more rows spans several): a reader of one symbol decodes
    its rows and few others'.
    """

    def __init__(
        self, writer: pq.ParquetWriter, most_rows: int, least_rows: int = GROUP_MIN_ROWS
    ) -> None:
        self._writer = writer
        self._most = most_rows
        self._least = least_rows
        self._held: list[pa.RecordBatch] = []
        self._rows = 0
        self._last: str | None = None  # the symbol of the last row held

    def add(self, batch: pa.RecordBatch) -> None:
        """Take a batch, writing each row group it completes."""
        if not batch.num_rows:
            return
        symbols = batch.column("symbol")
        ends = pc.indices_nonzero(pc.not_equal(symbols[1:], symbols[:-1])).to_pylist()
        starts = [0, *(end + 1 for end in ends), batch.num_rows]
        for first, stop in itertools.pairwise(starts):
            if self._rows >= self._least and symbols[first].as_py() != self._last:
                self.flush()
            while first < stop:
                taken = min(stop - first, self._most - self._rows)
                self._held.append(batch.slice(first, taken))
                self._rows += taken
                first += taken
                if self._rows == self._most:
                    self.flush()
            self._last = symbols[stop - 1].as_py()

    def flush(self) -> None:
        """Write what is held as one row group."""
        if self._rows:
            table = pa.Table.from_batches(self._held)
            self._writer.write_table(table, row_group_size=self._most)
            self._held, self._rows = [], 0


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
    """Check a record's files against it, read whole; return what is wrong, or None.

    ``progress`` is called as it reads, as `write_day`'s is.
    """
    where = root / record.path
    files = part_files(root, record.path)
    if not files:
        return f"{where} is missing"
    size = sum(file.stat().st_size for file in files)
    if size != record.bytes:
        return f"{where} has {size} bytes, {record.bytes} recorded"
    hashes = [(file.name, sha256_of(file, progress)) for file in files]
    digest = part_digest(hashes) if is_part(record.path) else hashes[0][1]
    if digest != record.sha256:
        return f"{where} does not match its recorded sha256"
    progress()
    rows = 0
    for file in files:
        try:
            rows += pq.read_table(file).num_rows
        except (OSError, pa.ArrowException) as exc:
            return f"{file} cannot be read: {exc}"
        progress()
    if rows != record.rows:
        return f"{where} holds {rows} rows, {record.rows} recorded"
    return None


def glance_file(
    root: Path, record: ArchiveRecord, progress: Callable[[], None] = lambda: None
) -> str | None:
    """`verify_file`'s cheap part: what is wrong with a record's files at a glance, or None.

    The files are there, have their recorded size, and their Parquet footers (a few KiB
    read each, no page decoded) give the recorded row count. The archive job looks at every
    recent day's files this way each night; reading them whole is the weekly ``archive
    verify``'s work, and retention's before a pruning.
    """
    where = root / record.path
    files = part_files(root, record.path)
    if not files:
        return f"{where} is missing"
    size = rows = 0
    for file in files:
        try:
            size += file.stat().st_size
            rows += pq.read_metadata(file).num_rows
        except (OSError, pa.ArrowException) as exc:
            return f"{file} cannot be read: {exc}"
        finally:
            progress()
    if size != record.bytes:
        return f"{where} has {size} bytes, {record.bytes} recorded"
    if rows != record.rows:
        return f"{where} holds {rows} rows, {record.rows} recorded"
    return None


def sha256_of(path: Path, progress: Callable[[], None] = lambda: None) -> str:
    """The hex sha256 of a file's bytes (``progress`` called after each chunk)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            progress()
    return digest.hexdigest()
