"""The rows of one transaction: append-only rows by table, then in-place changes in seq order.

Append-only rows go to ``Batch.inserts`` (executed as one executemany per table); changes to
tables kept in place go to ``Batch.upserts`` and run in seq order after them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from bus.events import PruneRequested
from observer.db import models as m

__all__ = ["Batch", "Columns", "Row", "Upsert"]

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert ``values`` into ``table``, or update ``update`` where ``keys`` match."""

    table: Table
    keys: tuple[str, ...]
    values: Row
    update: tuple[str, ...]


Columns = tuple[str, ...]


@dataclass(slots=True)
class Batch:
    """Rows of one transaction, grouped by table and column list for one executemany each."""

    inserts: dict[tuple[Table, Columns], list[tuple[Any, ...]]] = field(default_factory=dict)
    upserts: list[Upsert] = field(default_factory=list)
    requests: list[PruneRequested] = field(default_factory=list)  # acted upon after commit

    def insert(self, model: type[m.Base], row: Mapping[str, Any]) -> None:
        """Queue one append-only row given as a dict."""
        self.add(model.__table__, tuple(row), tuple(row.values()))  # type: ignore[arg-type]

    def add(self, table: Table, columns: Columns, values: tuple[Any, ...]) -> None:
        """Queue one append-only row given as values in ``columns`` order."""
        self.inserts.setdefault((table, columns), []).append(values)

    def extend(self, table: Table, columns: Columns, rows: list[tuple[Any, ...]]) -> None:
        """Queue append-only rows given as values in ``columns`` order."""
        self.inserts.setdefault((table, columns), []).extend(rows)

    def upsert(
        self, model: type[m.Base], keys: tuple[str, ...], values: Row, update: tuple[str, ...]
    ) -> None:
        """Queue one in-place change."""
        self.upserts.append(Upsert(model.__table__, keys, values, update))  # type: ignore[arg-type]
