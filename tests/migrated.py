"""New databases at the newest revision, copied from one migrated once per test process.

Running the migrations makes a SQLite file in about a fifth of a second of CPU (a writer
started on a new file imports alembic first: another fifth), and a PostgreSQL database in
over a second of wall time; some 400 times in a run, on a machine whose two cores the suite
keeps busy. A copy is what `migrate.upgrade` made, so a test sees the database it would have
had: the file copied, or the empty PostgreSQL database made again from a migrated template
(``CREATE DATABASE ... TEMPLATE``, as PostgreSQL copies any database). The migrations run for
real in the tests marked ``migrations`` (`tests/db/test_migrations.py`), for a database already
holding tables (an upgrade from an older revision), and for any that cannot be copied.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import NullPool, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from observer.db import migrate
from observer.db.engine import sqlite_file

__all__ = ["real_upgrade", "seed", "upgrade_from_template"]

real_upgrade = migrate.upgrade  # before conftest puts `upgrade_from_template` in its place
_sqlite_template: Path | None = None
_pg_templates: dict[str, str] = {}  # a server's admin URL: its migrated template database


def _migrated_sqlite() -> Path:
    global _sqlite_template
    if _sqlite_template is None:
        folder = tempfile.mkdtemp(prefix="observer-template-")
        atexit.register(shutil.rmtree, folder, True)
        path = Path(folder) / "observer.db"
        real_upgrade(f"sqlite:///{path}")
        # Every connection closed: nothing of it is left in a write-ahead log beside it.
        assert not path.with_name(path.name + "-wal").exists()
        _sqlite_template = path
    return _sqlite_template


def _seed_sqlite(url: str, mode: int | None) -> bool:
    """Make ``url``'s file a copy of the migrated template if it is new SQLite; whether it did."""
    path = sqlite_file(url)
    if path is None or "?" in url or path.exists() or not os.access(path.parent, os.W_OK):
        return False
    template = _migrated_sqlite()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    with os.fdopen(fd, "wb") as out, template.open("rb") as source:
        shutil.copyfileobj(source, out)
    return True


def _admin(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


def _execute(url: str, statement: str) -> int:
    """Run ``statement`` outside a transaction; its one value, if it returns a row."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(statement))
            return int(result.scalar_one()) if result.returns_rows else 0
    finally:
        engine.dispose()


def _migrated_postgres(admin: str) -> str:
    if admin not in _pg_templates:
        name = f"observer_template_{uuid.uuid4().hex[:10]}"
        _execute(admin, f'CREATE DATABASE "{name}"')
        atexit.register(_execute, admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        real_upgrade(make_url(admin).set(database=name).render_as_string(hide_password=False))
        _pg_templates[admin] = name
    return _pg_templates[admin]


# A database's own relations (outside the system's schemas), and extensions beyond plpgsql.
_OWNED = """
select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp%')
     + (select count(*) from pg_extension where extname <> 'plpgsql')
"""


def _copy_postgres(url: str) -> bool:
    """Make ``url``'s empty PostgreSQL database again from the migrated template.

    Only while nobody is connected to it (the drop refuses otherwise, and the database is
    left as it was); whether it did.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = _admin(url)
    # (A drop waits 5 s for the sessions of its database before it refuses.)
    sessions = f"select count(*) from pg_stat_activity where datname = '{parsed.database}'"
    try:
        if _execute(admin, sessions) or _execute(url, _OWNED):
            return False
    except SQLAlchemyError:
        return False  # a server not there: what a test asking for it sees comes from the code
    template = _migrated_postgres(admin)
    try:
        _execute(admin, f'DROP DATABASE "{parsed.database}"')
    except SQLAlchemyError:
        return False  # somebody is connected: the migrations run instead
    _execute(admin, f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"')
    return True


def seed(url: str, mode: int | None = None) -> bool:
    """Make ``url``'s database a migrated copy if it is new (see above); whether it did.

    A new SQLite file is created as the process would create it (its umask), or ``mode``.
    """
    return _seed_sqlite(url, mode) or _copy_postgres(url)


def upgrade_from_template(url: str, revision: str = "head") -> None:
    """`migrate.upgrade`, a new database brought to the newest revision by a copy."""
    if revision != "head" or not seed(url):
        real_upgrade(url, revision)
