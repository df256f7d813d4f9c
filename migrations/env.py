"""Alembic environment bound to the observer models (driven by `observer.db.migrate`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from observer.db.engine import make_engine
from observer.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the URL the caller put in the config."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "observer.db.migrate sets sqlalchemy.url"
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    partitions = _partitions(connection)

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        # A day's partition (observer.writer.partitions) is its table's storage, not a model.
        return not (type_ == "table" and name in partitions)

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def _partitions(connection: Connection) -> set[str]:
    """The names of the partitions of partitioned tables (PostgreSQL)."""
    if connection.dialect.name != "postgresql":
        return set()
    found = connection.exec_driver_sql(
        "SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'"
    )
    return set(found.scalars())


run_migrations_online()
