"""What the check reads of the configured database, and why where it reads nothing.

The check holds KIS's answers against what the product stored (the investor job's postings,
the day's universe); a database that is absent or refuses is said in the row, never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from observer.db.readers import read_once
from observer.db.settings import DatabaseSettings
from observer.errors import NoDatabase, StoreError

__all__ = ["read_stored"]

T = TypeVar("T")


def read_stored(
    database: DatabaseSettings, read: Callable[[Connection], T]
) -> tuple[T | None, str]:
    """``read`` of ``database`` and "", or None and why it was not read; never raises for it."""
    try:
        return read_once(database, "kis_check", read), ""
    except NoDatabase:
        return None, "no database where [database] url says"
    except (SQLAlchemyError, StoreError) as exc:
        return None, f"the database not read: {type(exc).__name__}"
