"""A file per dataset, symbol and day: ``<out>/<dataset>/date=YYYY-MM-DD/symbol=S.parquet``.

Hive-style paths, so DuckDB, Polars and Spark read a folder of them without knowing this
schema (``read_parquet('out/ticks/*/*.parquet', hive_partitioning = true)``) and a reader of
one symbol's day opens one file. Each file is written under a temporary name and renamed: a
file at its final name is whole. ``bars`` are each minute's best bar (`Catalog.bars`),
or on request only those KIS gave back for gaps, as stored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from observer.data.catalog import Catalog
from observer.data.datasets import DATASETS
from observer.data.span import DataRequestError, span_of

__all__ = ["EXPORTED", "Exported", "export"]

# What `export` writes by default: the datasets kept per symbol and instant.
EXPORTED = ("ticks", "books", "bars", "snapshots")


@dataclass(frozen=True, slots=True)
class Exported:
    """One file written."""

    dataset: str
    day: date
    symbol: str
    path: Path
    rows: int


def export(
    catalog: Catalog,
    out: Path,
    first: date,
    last: date,
    symbols: Iterable[str] | None = None,
    datasets: Iterable[str] = EXPORTED,
    venue: str | None = None,
    bars: Literal["best", "stored"] = "best",
) -> Iterator[Exported]:
    """Write each dataset's rows of each day ``first``..``last`` (KST, both included).

    A file per symbol, in the catalog's types (its ``decimals``). ``bars``: each minute's
    best bar, or the bars as stored (`Catalog.bars`). A file already there is replaced.
    Yields each file as it is written.

    Raises
    ------
    DataRequestError
        A dataset that is not kept per symbol and instant, or ``last`` before ``first``.
    """
    chosen = list(datasets)
    unknown = [d for d in chosen if d not in DATASETS or DATASETS[d].kind != "instants"]
    if unknown:
        raise DataRequestError(
            f"not a dataset kept per symbol and instant: {', '.join(unknown)} "
            f"(these are: {', '.join(EXPORTED)})"
        )
    if last < first:
        raise DataRequestError(f"--to {last} is before --from {first}")
    wanted = None if symbols is None else list(symbols)
    for day in _days(first, last):
        for name in chosen:
            if name == "bars":
                table = catalog.bars(wanted, day, None, venue, source=bars)
            else:
                table = catalog.read(name, span_of(wanted, day, None, venue))
            for symbol, rows in _by_symbol(table):
                path = out / name / f"date={day.isoformat()}" / f"symbol={symbol}.parquet"
                _write(rows, path)
                yield Exported(name, day, symbol, path, rows.num_rows)


def _days(first: date, last: date) -> Iterator[date]:
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        yield date.fromordinal(ordinal)


def _by_symbol(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """Each symbol's rows of ``table`` (sorted by symbol: its runs)."""
    if not table.num_rows:
        return
    runs = pc.run_end_encode(table["symbol"].combine_chunks())
    start = 0
    for symbol, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        yield symbol, table.slice(start, end - start)
        start = end


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    os.replace(temporary, path)
