"""Engine and session factories: SQLite (WAL) by default, PostgreSQL through psycopg."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from observer.db.settings import url_shape_problem
from observer.errors import NoDatabase
from observer.process.logs import mask_secrets

__all__ = [
    "display_url",
    "error_reason",
    "libpq_params",
    "make_engine",
    "normalize_url",
    "read_only_sessions",
    "require_database",
    "sqlite_file",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
_CONNECT_TIMEOUT_S = 5  # a PostgreSQL server that does not answer a connection (see make_engine)

# The places ExactDecimal keeps (NUMERIC(24, 8)); models/base.py's SCALE, not imported here
# because the models are not loaded by everything that makes an engine.
_DECIMAL_PLACES = 8


def _decimal_text(value: Decimal) -> str:
    """What ExactDecimal stores on SQLite: the exact text, rounded to its places if longer.

    Most values have 8 places or fewer and no exponent: their ``str`` is the text. A text of
    10 characters or fewer cannot hold more places ("-0.1234567"), which settles most values
    at once (sqlite3 calls this for each value it binds: 0.1 µs more than ``str`` per value);
    only values with more places or an exponent pay for ``ExactDecimal.sqlite_text``.
    """
    text = str(value)
    if "E" not in text:
        if len(text) <= _DECIMAL_PLACES + 2:
            return text
        point = text.find(".")
        if point < 0 or len(text) - point - 1 <= _DECIMAL_PLACES:
            return text
    # deferred: the models (about 0.2 s) only for the rare value to round
    from observer.db.models import ExactDecimal

    return ExactDecimal.sqlite_text(value)


# sqlite3 adapters for the writer's driver-level inserts: Decimal as ExactDecimal stores it
# and date as ISO text (what SQLAlchemy's Date stores; the stdlib's own date adapter is
# deprecated). Process-wide, and only ever set to these values.
sqlite3.register_adapter(Decimal, _decimal_text)
sqlite3.register_adapter(date, date.isoformat)


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; plain ``postgresql://`` means the psycopg 3 driver.

    Raises
    ------
    sqlalchemy.exc.ArgumentError
        Not a database URL (`url_shape_problem`: the message never quotes it).
    """
    if isinstance(url, str) and (problem := url_shape_problem(url)) is not None:
        raise ArgumentError(problem)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with its password masked, for logs and errors (``?password=`` too)."""
    return mask_secrets(normalize_url(url).render_as_string(hide_password=True))


def libpq_params(url: str | URL) -> dict[str, str]:
    """The libpq connection parameters a PostgreSQL URL's engine connects with.

    Taken from the driver's dialect, so a client run beside the engine (``pg_dump``, a
    reader pool) reaches the same server as the same user: the query's options included
    (``?host=/run/postgresql``, ``sslmode``, several hosts), and no defaults of our own.
    """
    parsed = normalize_url(url)
    _, kwargs = parsed.get_dialect()().create_connect_args(parsed)  # psycopg: no args
    return {key: str(value) for key, value in kwargs.items() if value is not None}


def make_engine(
    url: str | URL, *, read_only: bool = False, durable: bool = True, **kwargs: Any
) -> Engine:
    """Create an engine with the project's connection settings.

    SQLite gets WAL, a busy timeout and foreign keys, and ``synchronous=FULL``: a commit
    returns once it is on the disk, so what the writer acknowledges survives a power cut
    (``durable=False``: ``NORMAL``, which survives a process crash but may lose the last
    commits in a power cut, never corrupt). PostgreSQL gets pre-ping so a dropped
    connection is replaced, and ``synchronous_commit=on`` whatever the server's default,
    after the URL's own ``options`` (``durable=False`` leaves the server's). ``read_only``
    makes every transaction refuse writes, for workers that only read, and a missing SQLite
    file an error (`require_database`); otherwise a SQLite file's folder is created.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file(parsed)
        if database is not None and not read_only:
            database.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        if read_only:
            event.listen(engine, "do_connect", lambda *_: require_database(parsed))
        event.listen(engine, "connect", _sqlite_pragmas(read_only, durable))
        return engine
    connect_args = kwargs.setdefault("connect_args", {})
    # libpq waits for a server that does not answer (a host gone, a cut link) as long as the
    # kernel's SYN retries, about two minutes: the writer's start would hang on it unbeaten.
    connect_args.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    elif durable:  # after the URL's own options, which connect_args would replace
        given = parsed.query.get("options", ())
        own = " ".join((given,) if isinstance(given, str) else given)
        connect_args["options"] = f"{own} -c synchronous_commit=on".strip()
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for another database or one in memory)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def error_reason(exc: BaseException) -> str:
    """One line for a database error, without the SQL or its parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"


def require_database(url: str | URL) -> None:
    """Raise `NoDatabase` if ``url`` names a SQLite file that does not exist.

    Whatever only reads checks this first: sqlite3 would create the file, so a mistyped
    ``--db`` or a command run from another folder (relative paths) would leave an empty
    database behind and fail on a missing table.
    """
    database = sqlite_file(url)
    if database is not None and not database.is_file():
        raise NoDatabase(f"no database at {database.absolute()}")


def _sqlite_pragmas(read_only: bool, durable: bool) -> Any:
    synchronous = "FULL" if durable else "NORMAL"

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


def read_only_sessions(url: str | URL) -> sessionmaker[Session]:
    """Session factory for workers: reads only, never writes."""
    return sessionmaker(make_engine(url, read_only=True), expire_on_commit=False)
