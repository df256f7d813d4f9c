"""The writer's checks of values the database would take but must not, per column of a batch.

Both databases must keep the same rows: a value one of them refuses is refused on the other too,
and one that would break what is built on a day's rows (a NaN breaks its Parquet archive) on
both. Strings longer than their VARCHAR or holding a NUL (`check_strings`, SQLite only) and exact
decimals not finite or beyond NUMERIC(24, 8) (`check_decimals`) raise `UnstorableValue`, and the
store keeps the event alone in ``rejected_events`` under its seq.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from sqlalchemy import String, Table

from observer.db.models import ExactDecimal
from observer.writer.batch import Upsert

__all__ = [
    "Decimals",
    "Limits",
    "UnstorableValue",
    "check_decimals",
    "check_strings",
    "check_upsert",
    "decimal_columns",
    "string_limits",
]

Limits = tuple[tuple[int, str, int], ...]  # (index, column, VARCHAR length)
Decimals = tuple[tuple[int, str], ...]  # (index, column) of the exact-decimal columns

# NUMERIC(24, 8) holds 16 digits before the point: a value whose first digit is at 10^15 or
# below fits whatever its rounding; one at 10^15 may round up to 10^16 and is checked exactly.
_INTEGER_DIGITS = 24 - ExactDecimal.SCALE
_SURELY_FITS = _INTEGER_DIGITS - 1


class UnstorableValue(ValueError):
    """A value its column cannot hold the same on both databases (the event is rejected)."""


def varchar_length(table: Table, column: str) -> int | None:
    """The VARCHAR length of ``column``; None if it is no string column with a length."""
    kind = table.c[column].type
    return kind.length if isinstance(kind, String) else None


def string_limits(table: Table, columns: Sequence[str]) -> Limits:
    """The string columns among ``columns`` (by index in a row) and their lengths."""
    return tuple(
        (index, name, length)
        for index, name in enumerate(columns)
        if (length := varchar_length(table, name)) is not None
    )


def decimal_columns(table: Table, columns: Sequence[str]) -> Decimals:
    """The exact-decimal columns among ``columns``, by index in a row."""
    return tuple(
        (index, name)
        for index, name in enumerate(columns)
        if isinstance(table.c[name].type, ExactDecimal)
    )


def check_strings(table: Table, rows: list[tuple[Any, ...]], limits: Limits) -> None:
    """Refuse a batch holding a string longer than its column or with a NUL, as PostgreSQL does.

    One C-level pass per column for the lengths, one ``join`` for the NULs: about 2 % of a
    batch's time on SQLite.
    """
    for index, name, length in limits:
        values = list(filter(None, map(itemgetter(index), rows)))
        if max(map(len, values), default=0) > length:
            raise UnstorableValue(f"value too long for {table.name}.{name} VARCHAR({length})")
        if "\x00" in "".join(values):
            raise UnstorableValue(f"{table.name}.{name} holds a NUL character")


def check_decimals(table: Table, rows: list[tuple[Any, ...]], decimals: Decimals) -> None:
    """Refuse a batch holding a decimal NUMERIC(24, 8) cannot hold: not finite, or too large.

    Too large once rounded to 8 places: PostgreSQL's overflow, where SQLite would store
    ``1E+30`` as text. One C-level pass per column (``map``); the per-value loop runs only on
    a batch that holds a refused value, to name it.
    """
    for index, name in decimals:
        values = list(filter(None, map(itemgetter(index), rows)))  # zero always fits
        try:
            if all(map(Decimal.is_finite, values)) and (
                max(map(Decimal.adjusted, values), default=0) < _SURELY_FITS
            ):
                continue
        except TypeError:
            pass  # not all Decimal (an int from a handler): named one by one below
        for value in values:
            problem = decimal_problem(value)
            if problem:
                raise UnstorableValue(f"{table.name}.{name} = {str(value)[:40]}: {problem}")


def decimal_problem(value: object) -> str:
    """Why NUMERIC(24, 8) cannot hold ``value``; "" if it can."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        return f"not a number ({type(value).__name__})"
    if not number.is_finite():
        return "not a finite number"
    if not number.is_zero() and ExactDecimal.rounded(number).adjusted() >= _INTEGER_DIGITS:
        return f"beyond NUMERIC(24, {ExactDecimal.SCALE})"
    return ""


def check_upsert(upsert: Upsert, sqlite: bool) -> None:
    """`check_strings` (on SQLite) and `check_decimals` for one change kept in place."""
    table = upsert.table
    for name, value in upsert.values.items():
        if sqlite and isinstance(value, str):
            length = varchar_length(table, name)
            if length is not None and len(value) > length:
                raise UnstorableValue(f"value too long for {table.name}.{name} VARCHAR({length})")
            if "\x00" in value:
                raise UnstorableValue(f"{table.name}.{name} holds a NUL character")
        if value is not None and isinstance(table.c[name].type, ExactDecimal):
            problem = decimal_problem(value)
            if problem:
                raise UnstorableValue(f"{table.name}.{name} = {str(value)[:40]}: {problem}")
