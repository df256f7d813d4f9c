"""One Arrow schema per dataset, whatever the rows were read from.

SQLite hands decimals back as their exact text and flags as 0/1; either database and the
archives hand a book's levels back as JSON text; a column that is NULL in every row comes back
typed as the reader guessed. `conform` turns each into the dataset's type (`Dataset.schema`)
and adds the KST view of each instant.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from observer.data.datasets import DECIMAL, KST_TIME, Dataset
from observer.db.models import ExactDecimal

__all__ = ["conform", "empty"]

_LEVELS = msgspec.json.Decoder(list[int] | None)


def empty(dataset: Dataset) -> pa.Table:
    """No rows, in the dataset's schema."""
    return dataset.schema.empty_table()


def conform(table: pa.Table, dataset: Dataset) -> pa.Table:
    """``table`` (the dataset's stored columns, as read) in the dataset's schema."""
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for name, kind in dataset.columns:
        column = _as(table.column(name), kind, name)
        arrays.append(column)
        if name in dataset.views:
            arrays.append(column.cast(pa.timestamp("ns", tz="UTC")).cast(KST_TIME))
    return pa.Table.from_arrays(arrays, schema=dataset.schema)


def _as(column: pa.ChunkedArray, kind: pa.DataType, name: str) -> pa.ChunkedArray:
    if isinstance(column.type, pa.BaseExtensionType):  # PostgreSQL's JSON: arrow.json, text
        column = pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    if column.type == kind:
        return column
    if column.null_count == len(column):
        return pa.chunked_array([pa.nulls(len(column), kind)])
    if kind == DECIMAL and pa.types.is_string(column.type):
        return _decimals(column)
    if pa.types.is_list(kind) and pa.types.is_string(column.type):
        levels = [_LEVELS.decode(v) if v is not None else None for v in column.to_pylist()]
        return pa.chunked_array([pa.array(levels, kind)])
    if pa.types.is_boolean(kind) and pa.types.is_integer(column.type):
        return pc.not_equal(column, 0)
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TypeError(f"column {name}: {column.type} is not {kind}: {exc}") from exc


def _decimals(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Decimal text as decimal128(24, 8), rounded as the database rounds a longer value."""
    try:
        return column.cast(DECIMAL)
    except pa.ArrowInvalid:  # more places than 8 (stored before the column rounded them)
        values = [
            None if v is None else ExactDecimal.rounded(Decimal(v)) for v in column.to_pylist()
        ]
        return pa.chunked_array([pa.array(values, DECIMAL)])
