"""Alembic environment bound to the observer models (driven by `observer.db.migrate`)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine, event

from observer.db.engine import make_engine
from observer.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the URL the caller put in the config."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "observer.db.migrate sets sqlalchemy.url"
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _transactional_sqlite(engine)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    partitions = _partitions(connection)
    # Reading them began a transaction (SQLAlchemy's autobegin), which alembic would take as
    # the caller's and run every revision inside: ended, so each revision is its own.
    connection.commit()

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        # A day's partition (observer.writer.partitions) is its table's storage, not a model.
        return not (type_ == "table" and name in partitions)

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        include_name=include_name,
        # Each revision and its version row commit together or not at all, on SQLite too
        # (`_transactional_sqlite`): a writer killed mid-upgrade leaves the database at the
        # last whole revision, which the next start upgrades from.
        transactional_ddl=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _transactional_sqlite(engine: Engine) -> None:
    """Make SQLite's DDL transactional: Python's sqlite3 runs a CREATE or ALTER outside any
    transaction (it begins one only before DML), so a revision cut off halfway left its first
    tables behind without its version row, and every later upgrade failed on them ("table
    ... already exists"). The driver is put in autocommit and SQLAlchemy's begin emits
    ``BEGIN`` itself (SQLAlchemy's pysqlite notes, "Transactional DDL")."""

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _partitions(connection: Connection) -> set[str]:
    """The names of the partitions of partitioned tables (PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return set()
    found = connection.exec_driver_sql(
        "SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'"
    )
    return set(found.scalars())


run_migrations_online()
