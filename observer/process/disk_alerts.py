"""The disk alerts an earlier run of a process left open: what its `DiskWatch` takes over.

Read once at the start: by the writer before it serves, and for a producer by its process's
main thread once READY (`observer.runtime.take_over_disk_alerts`). A separate module so that
the settings (`observer.config.tree` imports `observer.process.disk`) need no database library.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from msgspec import structs
from sqlalchemy import Engine, event

from observer.alerts.states import Notice
from observer.alerts.stored import open_alerts
from observer.db.readers import reader_engine
from observer.db.settings import DatabaseSettings
from observer.process.disk import DISK_CODES

__all__ = ["open_disk_alerts", "stored_disk_alerts"]

log = logging.getLogger(__name__)

# The longest a producer waits for the database to read what its earlier run left open.
_TAKE_OVER_WAIT_S = 2.0


def open_disk_alerts(engine: Engine, source: str) -> list[Notice] | None:
    """``source``'s open disk alerts; None if they cannot be read.

    ``source`` as stored (the writer's ``writer``, never qualified; a producer's
    host-qualified name). Taking over is a convenience: any failure to read (a host without
    the database, a broken one) takes nothing over, and never ends the process that asked.
    """
    try:
        with engine.connect() as conn:
            return open_alerts(conn, source, DISK_CODES)
    except Exception as exc:
        log.info("%s: cannot read its open disk alerts, none taken over: %s", source, exc)
        return None


def stored_disk_alerts(
    database: DatabaseSettings, source: str
) -> Callable[[], list[Notice] | None]:
    """`open_disk_alerts` of a producer's ``source``, read through a reader engine of its own.

    One connection at most, and a short wait for it: a database that is down must not hold
    the process for the pool's whole timeout.
    """
    once = structs.replace(
        database,
        reader_pool_min=0,
        reader_pool_max=1,
        reader_pool_timeout_s=min(database.reader_pool_timeout_s, _TAKE_OVER_WAIT_S),
    )

    def read() -> list[Notice] | None:
        try:
            engine = reader_engine(once, source)
        except Exception as exc:  # as in open_disk_alerts
            log.info("%s: cannot read its open disk alerts, none taken over: %s", source, exc)
            return None
        event.listen(engine, "connect", _wait_briefly)
        try:
            return open_disk_alerts(engine, source)
        finally:
            engine.dispose()

    return read


def _wait_briefly(dbapi_connection: Any, _record: Any) -> None:
    """The take-over's statements wait `_TAKE_OVER_WAIT_S` at most, for a lock or an answer.

    A SQLite file a writer holds locked would otherwise keep the read (and the process, on
    its main thread after READY) for the 30 s busy timeout of each statement, and a stalled
    PostgreSQL for good.
    """
    ms = int(_TAKE_OVER_WAIT_S * 1000)
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout={ms}")
    else:
        dbapi_connection.execute(f"SET statement_timeout = {ms}")
        dbapi_connection.commit()
