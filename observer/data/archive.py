"""Rows of the day archives (`observer.db.archive`): a day's files and its late files.

A table's rows of a day are in ``<root>/<table>/date=YYYY-MM-DD/`` (`observer.db.archive_layout`):
ticks a file per symbol, so that a reader of some symbols opens their files alone; the other
tables one file, whose row groups the statistics on the symbol and the time skip, as they do
in a day archived before that layout (one file per table and day). Only the columns asked for
are read. Files written before a column existed (a venue) read it as NULL; books archived
with their levels as JSON arrays read as the level columns they are now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from observer.data.datasets import Dataset
from observer.data.span import Span
from observer.db.archive import schema_of
from observer.db.archive_layout import PER_SYMBOL, symbol_files
from observer.db.models import BOOK_DEPTH, BOOK_LEVEL_COLUMNS
from observer.db.retention_queries import ARCHIVED_TABLES, day_bounds
from observer.errors import ArchiveError

__all__ = ["ArchiveReader", "Archived"]

# Books archived before their levels were columns: four JSON arrays, best level first, in
# the order of `BOOK_LEVEL_COLUMNS`' groups.
_LEVEL_ARRAYS = ("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")
_LEVELS = msgspec.json.Decoder(list[int])


@dataclass(frozen=True, slots=True)
class Archived:
    """Archived rows of a dataset, and whether they are in its table's archive order.

    ``ordered``: by symbol, time and key (`archive_order`), as the files of one symbol's day
    are and their concatenation in symbol order is; a reader whose order is that one need
    not sort them again.
    """

    table: pa.Table
    ordered: bool


class ArchiveReader:
    """Reads a dataset's rows in a `Span` from the archive folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, dataset: Dataset, span: Span) -> list[Path]:
        """The archive files of ``span``'s symbols on the days it touches (`symbol_files`).

        By symbol, then day, when all are days' per-symbol files (no late or earlier-layout
        file): their rows are then in archive order as they stand.
        """
        found: list[Path] = []
        for day in span.days():
            found.extend(symbol_files(self.root, dataset.table, day, span.symbols))
        if all(_day_file(f) is not None for f in found):
            found.sort(key=lambda f: (f.stem, f.parent.name))
        return found

    def read(self, dataset: Dataset, span: Span) -> Archived | None:
        """The dataset's stored columns of the archived rows in ``span`` (None: no file).

        Selected by the range and the symbols; the venue is the caller's to select. A
        symbol's file of a day the range covers whole is read without a filter.

        Raises
        ------
        ArchiveError
            A file cannot be read.
        """
        files = self.files(dataset, span)
        if not files:
            return None
        instant = ds.field(dataset.time_column)
        condition = (instant >= span.lo_ns) & (instant < span.hi_ns)
        if span.symbols is not None:
            condition &= ds.field("symbol").isin(list(span.symbols))
        schema = schema_of(ARCHIVED_TABLES[dataset.table].table)
        whole = [f for f in files if _covered(f, span)]
        try:
            older = [f for f in files if dataset.table == "order_books" and _older_book(f)]
            current = [f for f in files if f not in older and f not in whole]
            parts = []
            if whole:
                parts.append(_read_whole(whole, schema, dataset.stored))
            if current:
                found = ds.dataset([str(f) for f in current], schema=schema, format="parquet")
                parts.append(found.to_table(columns=dataset.stored, filter=condition))
            if older:
                parts.append(_levels_as_columns(older, schema, dataset.stored, condition))
            table = pa.concat_tables(parts)
        except (OSError, pa.ArrowException, msgspec.DecodeError) as exc:
            raise ArchiveError(f"cannot read the archive of {dataset.table}: {exc}") from exc
        return Archived(table, ordered=len(whole) == len(files))


def _read_whole(files: list[Path], schema: pa.Schema, columns: list[str]) -> pa.Table:
    """Every row of ``files`` in ``columns`` of ``schema``.

    A file holding every column is read as it is (a dataset's set-up costs more than a
    small file's read); one written before a column existed reads it as NULL.
    """
    wanted = pa.schema([schema.field(c) for c in columns])
    tables = []
    for file in files:
        with pq.ParquetFile(file) as parquet:
            if set(columns) <= set(parquet.schema_arrow.names):
                tables.append(parquet.read(columns=columns).cast(wanted))
                continue
        found = ds.dataset(str(file), schema=schema, format="parquet")
        tables.append(found.to_table(columns=columns))
    return pa.concat_tables(tables)


def _day_file(file: Path) -> date | None:
    """The day of a symbol's file of a day; None for any other file.

    ``<table>/date=D/<symbol>.parquet`` of a table written a file per symbol (`PER_SYMBOL`).
    """
    folder = file.parent.name
    if file.parent.parent.name not in PER_SYMBOL or not folder.startswith("date="):
        return None
    if "." in file.name.removesuffix(".parquet"):  # a late file
        return None
    return date.fromisoformat(folder.removeprefix("date="))


def _covered(file: Path, span: Span) -> bool:
    """Whether ``file`` is a symbol's file of a day ``span``'s range holds whole."""
    day = _day_file(file)
    if day is None:
        return False
    start, end = day_bounds(day)
    return span.lo_ns <= start and end <= span.hi_ns


def _older_book(path: Path) -> bool:
    """Whether a book file holds its levels as JSON arrays (written before they were columns).

    Only a day file of the layout before the per-symbol one can (its folders are dates).
    """
    if path.parent.name.startswith("date="):
        return False
    return _LEVEL_ARRAYS[0] in pq.read_schema(path).names


def _levels_as_columns(
    files: list[Path], schema: pa.Schema, columns: list[str], condition: ds.Expression
) -> pa.Table:
    """Rows of book files whose levels are JSON arrays, with the level columns instead."""
    arrays = [pa.field(name, pa.string()) for name in _LEVEL_ARRAYS]
    kept = [f for f in schema if f.name not in BOOK_LEVEL_COLUMNS]
    read = [c for c in columns if c not in BOOK_LEVEL_COLUMNS] + list(_LEVEL_ARRAYS)
    found = ds.dataset([str(f) for f in files], schema=pa.schema(kept + arrays), format="parquet")
    table = found.to_table(columns=read, filter=condition)
    levels: dict[str, pa.Array] = {}
    for group, name in enumerate(_LEVEL_ARRAYS):
        sides = [_LEVELS.decode(text) if text else [] for text in table.column(name).to_pylist()]
        for n in range(BOOK_DEPTH):
            column = BOOK_LEVEL_COLUMNS[group * BOOK_DEPTH + n]
            levels[column] = pa.array([s[n] if n < len(s) else None for s in sides], pa.int64())
    return pa.table(
        {c: levels[c] if c in levels else table.column(c) for c in columns},
        schema=pa.schema([schema.field(c) for c in columns]),
    )
