"""Rows of the day archives (`observer.db.archive`): a day's file and its late files.

A day's rows are in ``<root>/YYYY/MM/DD/<table>.parquet``, and rows committed after the day
was pruned in ``<table>.late-N.parquet`` beside it. Only the columns asked for are read, and
the row groups whose statistics exclude the range or the symbols are skipped. Files written
before a column existed (a venue) read it as NULL.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from observer.data.datasets import Dataset
from observer.data.span import Span
from observer.db.archive import relative_path, schema_of
from observer.db.retention_queries import ARCHIVED_TABLES
from observer.errors import ArchiveError

__all__ = ["ArchiveReader"]


class ArchiveReader:
    """Reads a dataset's rows in a `Span` from the archive folder ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def files(self, dataset: Dataset, span: Span) -> list[Path]:
        """The archive files of the days ``span`` touches, each day's file before its late ones."""
        found: list[Path] = []
        for day in span.days():
            main = self.root / relative_path(dataset.table, day)
            if main.is_file():
                found.append(main)
            found.extend(sorted(main.parent.glob(f"{dataset.table}.late-*.parquet")))
        return found

    def read(self, dataset: Dataset, span: Span) -> pa.Table | None:
        """The dataset's stored columns of the archived rows in ``span`` (None: no file).

        Selected by the range and the symbols; the venue is the caller's to select.

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
        try:
            found = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
            return found.to_table(columns=dataset.stored, filter=condition)
        except (OSError, pa.ArrowException) as exc:
            raise ArchiveError(f"cannot read the archive of {dataset.table}: {exc}") from exc
