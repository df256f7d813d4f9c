"""One Arrow schema per dataset, whatever the rows were read from.

SQLite hands decimals back as their exact text and flags as 0/1; a column that is NULL in
every row comes back typed as the reader guessed. `conform` turns each into the dataset's
type (`Dataset.schema`) and adds the KST view of each instant.
"""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from observer.data.datasets import DECIMAL, KST_TIME, Dataset
from observer.db.models import ExactDecimal

__all__ = ["conform", "empty"]


def empty(dataset: Dataset) -> pa.Table:
    """No rows, in the dataset's schema."""
    return dataset.schema.empty_table()


def conform(table: pa.Table, dataset: Dataset) -> pa.Table:
    """``table`` (the dataset's stored columns, as read) in the dataset's schema.

    Raises
    ------
    TypeError
        A stored value is not of its column's type (text in a price, a decimal that is no
        number): the message names the column.
    """
    arrays: list[pa.Array | pa.ChunkedArray] = []
    for name, kind in dataset.columns:
        column = _as(table.column(name), kind, name)
        arrays.append(column)
        if name in dataset.views:
            arrays.append(column.cast(pa.timestamp("ns", tz="UTC")).cast(KST_TIME))
    return pa.Table.from_arrays(arrays, schema=dataset.schema)


def _as(column: pa.ChunkedArray, kind: pa.DataType, name: str) -> pa.ChunkedArray:
    if column.type == kind:
        return column
    if column.null_count == len(column):
        return pa.chunked_array([pa.nulls(len(column), kind)])
    if kind == DECIMAL and pa.types.is_string(column.type):
        return _decimals(column, name)
    if pa.types.is_boolean(kind) and pa.types.is_integer(column.type):
        return pc.not_equal(column, 0)
    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TypeError(f"column {name}: {column.type} is not {kind}: {exc}") from exc


def _decimals(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Decimal text as decimal128(24, 8), rounded as the database rounds a longer value."""
    try:
        return column.cast(DECIMAL)
    except pa.ArrowInvalid:  # more places than 8 (stored before the column rounded them)
        pass
    values = []
    for value in column.to_pylist():
        try:
            values.append(None if value is None else ExactDecimal.rounded(Decimal(value)))
        except (ArithmeticError, ValueError) as exc:  # decimal.InvalidOperation: no number
            raise TypeError(f"column {name}: {value!r} is no decimal") from exc
    return pa.chunked_array([pa.array(values, DECIMAL)])
