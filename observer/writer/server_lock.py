"""One writer per server database, whatever host or run directory it runs from.

A flock only excludes writers that share a file, so the server itself holds this lock: a
session-level advisory lock, keyed by the schema the writer writes, on a connection of its own.
The server drops it with its holder's session (kill -9, a host gone), so it is never left behind;
a server restart or a cut link ends it too, and `ServerLock.held` takes it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import time

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from observer.db.engine import display_url, error_reason
from observer.errors import StoreError, WriterLocked

__all__ = ["CHECK_S", "ServerLock"]

log = logging.getLogger(__name__)

CHECK_S = 5.0  # wall seconds between looks at the lock's connection
# A writer restarted at once can find its predecessor's session still ending on the server
# (a killed process's socket is closed by the kernel; the server notices within a moment).
START_WAIT_S = 3.0
_RETRY_S = 0.1
_CONNECT_ARGS = {
    "connect_timeout": 5,  # a turn of the writer waits this long at most for a dead server
    # A cut link is noticed (and the lock released on the server) within about a minute.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class ServerLock:
    """The advisory lock of the writer of ``url``'s database and schema."""

    def __init__(self, url: URL) -> None:
        self.where = display_url(url)
        application = f"observer writer on {socket.gethostname()}"[:63]
        connect_args = {**_CONNECT_ARGS, "application_name": application}
        self._engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        self._conn: Connection | None = None
        self._next_look = 0.0
        try:
            self._conn = self._take_within(START_WAIT_S)
        except DBAPIError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot lock {self.where}: {error_reason(exc)}") from None
        except BaseException:
            self._engine.dispose()
            raise

    def held(self) -> bool:
        """Whether this writer still holds the lock; it looks every `CHECK_S` at most.

        A dropped connection is replaced and the lock taken again; False only if another
        writer took it meanwhile. While the server does not answer, True: nothing can be
        written anyway, and the next look tries again.
        """
        now = time.monotonic()
        if now < self._next_look:
            return True
        self._next_look = now + CHECK_S
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1"))
                return True
        except DBAPIError as exc:
            log.warning(
                "the connection holding the lock on %s failed: %s", self.where, error_reason(exc)
            )
        self._drop()
        try:
            self._conn = self._take()
        except WriterLocked as exc:
            log.critical("%s", exc)
            return False
        except DBAPIError as exc:
            # said once when the connection failed; the writer's commits say the rest
            log.debug("cannot take the lock on %s again yet: %s", self.where, error_reason(exc))
            return True
        log.warning("took the lock on %s again after its connection failed", self.where)
        return True

    def close(self) -> None:
        """Release the lock (closing its session)."""
        self._drop()
        self._engine.dispose()

    def _take_within(self, seconds: float) -> Connection:
        """`_take`, again while another holds the lock, for ``seconds`` of wall time."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self._take()
            except WriterLocked:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(_RETRY_S)  # the poll interval of a lock being let go

    def _take(self) -> Connection:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            key = _key(str(schema))
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
                return conn
            holder = conn.execute(
                text(
                    "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.database = (SELECT oid FROM pg_database"
                    "   WHERE datname = current_database())"
                    " AND l.classid::text::bigint = :hi AND l.objid::text::bigint = :lo"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            ).first()
        except BaseException:
            conn.close()
            raise
        conn.close()
        who = "another writer"
        if holder is not None:
            name, address, pid = holder
            origin = f", from {address}" if address else ""  # none: a local socket, or hidden
            who = f"{name or 'another writer'} (server pid {pid}{origin})"
        raise WriterLocked(f"{who} holds {self.where} (schema {schema})")

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(DBAPIError):
                self._conn.close()
            self._conn = None


def _key(schema: str) -> int:
    """The lock's 64-bit key: one per schema the writer writes (signed, as PostgreSQL's)."""
    digest = hashlib.sha256(f"observer writer:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
