"""Engines for processes that only read: a psycopg pool on PostgreSQL, bounded and timed.

Each reading process gets one engine drawing on a `psycopg_pool.ConnectionPool` of
``[database] reader_pool_min..max``, so a daemon reuses open connections and never holds more
than ``reader_pool_max``. A read that waits ``reader_pool_timeout_s`` for a connection fails with
a `StoreError` saying whether the pool was exhausted or the database refused, never hangs.
SQLite has no connections to share: its readers get `make_engine(read_only=True)`.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from observer.db.engine import display_url, libpq_params, make_engine, normalize_url
from observer.db.settings import DatabaseSettings
from observer.errors import StoreError

if TYPE_CHECKING:  # imported when a pool is made: a process on SQLite never loads them
    from psycopg import Connection
    from psycopg.errors import Diagnostic
    from psycopg_pool import ConnectionPool

__all__ = ["pool_stats", "read_once", "reader_engine"]

_T = TypeVar("_T")

_pools: weakref.WeakKeyDictionary[Engine, ConnectionPool[Connection[Any]]] = (
    weakref.WeakKeyDictionary()
)


def reader_engine(
    settings: DatabaseSettings,
    name: str,
    *,
    url: str | URL | None = None,
    timeout_s: float | None = None,
) -> Engine:
    """A read-only engine for the process ``name`` (its pool's and connections' name).

    ``url`` defaults to the primary's (``settings.url``); ``timeout_s`` to
    ``reader_pool_timeout_s``. Disposing of the engine closes its pool.

    psycopg_pool rather than SQLAlchemy's QueuePool: it keeps ``min`` connections open and
    replaces lost ones in the background, checks a connection before handing it out, retires
    idle and old ones, and counts waits and failures (`pool_stats`). SQLAlchemy takes
    connections from it through ``creator`` with its own pooling off (NullPool): closing one
    gives it back (``close_returns``), as psycopg documents for use with SQLAlchemy.
    """
    parsed = normalize_url(url if url is not None else settings.url)
    if parsed.get_backend_name() != "postgresql":
        return make_engine(parsed, read_only=True)
    # deferred: psycopg (about 0.17 s) for a PostgreSQL database only
    from psycopg_pool import ConnectionPool, PoolTimeout

    timeout = settings.reader_pool_timeout_s if timeout_s is None else timeout_s
    pool: ConnectionPool[Connection[Any]] = ConnectionPool(
        _conninfo(parsed),
        kwargs={
            "application_name": f"observer {name}"[:63],
            "options": "-c default_transaction_read_only=on",
            **_dead_link_params(timeout),
        },
        min_size=settings.reader_pool_min,
        max_size=settings.reader_pool_max,
        timeout=timeout,
        connection_class=_reader_connection_class(),
        check=ConnectionPool.check_connection,  # a dropped connection is replaced, not used
        close_returns=True,
        name=f"{name} readers",
        open=True,
    )
    where = display_url(parsed)

    def connect() -> Connection[Any]:
        try:
            return pool.getconn()
        except PoolTimeout:
            raise StoreError(_timeout_message(pool, where, timeout)) from None

    engine = create_engine(parsed, creator=connect, poolclass=NullPool)
    _pools[engine] = pool
    event.listen(engine, "engine_disposed", lambda _engine: pool.close())
    return engine


def read_once(
    settings: DatabaseSettings, name: str, read: Callable[[sqlalchemy.Connection], _T]
) -> _T:
    """``read`` on one connection of a reader engine of ``name``'s, disposed after (a job's)."""
    engine = reader_engine(settings, name)
    try:
        with engine.connect() as conn:
            return read(conn)
    finally:
        engine.dispose()


def _dead_link_params(timeout_s: float) -> dict[str, int]:
    """The libpq parameters that end a connection the network stops answering, in ~``timeout_s``.

    A cut link or a host gone answers nothing, neither refusal nor reset: without these a
    connect waits for the kernel's SYN retries, and a query sent on an open connection for
    its retransmissions, about 15 minutes, with the daemon that reads. ``tcp_user_timeout``
    bounds data the server's kernel has not acknowledged (a query sent into the cut), and
    keepalives a connection waiting for an answer with nothing unacknowledged (the link cut
    after the query arrived). A slow query is not cut: the server's kernel answers the
    probes while its backend works.
    """
    seconds = max(1, round(timeout_s))
    return {
        "connect_timeout": seconds,
        "tcp_user_timeout": seconds * 1000,
        "keepalives": 1,
        "keepalives_idle": max(1, seconds // 3),
        "keepalives_interval": max(1, seconds // 3),
        "keepalives_count": 3,
    }


def pool_stats(engine: Engine) -> dict[str, int]:
    """The reader pool's counters (size, available, waiting, errors); empty on SQLite."""
    pool = _pools.get(engine)
    return {} if pool is None else pool.get_stats()


def _conninfo(url: URL) -> str:
    """The libpq connection string for ``url`` (its query's parameters included)."""
    # deferred: psycopg (about 0.17 s) for a PostgreSQL database only
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**libpq_params(url))


@functools.cache
def _reader_connection_class() -> type[Connection[Any]]:
    # deferred: psycopg (about 0.17 s) for a PostgreSQL database only
    from psycopg import Connection

    class ReaderConnection(Connection[Any]):
        """A psycopg connection that keeps one copy of each notice handler.

        SQLAlchemy sees every checkout as a new connection (NullPool) and adds its notice
        logger each time: on a pooled connection the list would grow by one per read, without
        end in a daemon, and a notice be logged as many times.
        """

        def add_notice_handler(self, callback: Callable[[Diagnostic], None]) -> None:
            with contextlib.suppress(ValueError):  # not there yet
                self.remove_notice_handler(callback)
            super().add_notice_handler(callback)

    return ReaderConnection


def _timeout_message(pool: ConnectionPool[Connection[Any]], where: str, timeout: float) -> str:
    stats = pool.get_stats()
    size, free = stats.get("pool_size", 0), stats.get("pool_available", 0)
    if size >= pool.max_size and free == 0:
        return (
            f"no reader connection to {where} within {timeout:g} s: all {pool.max_size} of "
            f"the pool's connections are in use ([database] reader_pool_max)"
        )
    return (
        f"no reader connection to {where} within {timeout:g} s: the database did not "
        f"accept one ({stats.get('connections_errors', 0)} failed attempts)"
    )
