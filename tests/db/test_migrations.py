"""Migrations match the models exactly on SQLite and PostgreSQL; the CLI reports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text

from observer.db import migrate
from observer.db.engine import make_engine, sqlite_file
from observer.db.models import Base
from observer.db.retention_queries import ARCHIVED_TABLES
from tests.migrated import seed
from tests.support import ROOT

pytestmark = pytest.mark.migrations  # the migrations run, never a copy of their result


def test_upgrade_then_autogenerate_finds_nothing(db_url: str) -> None:
    empty = sqlite_file(db_url)
    if empty is not None:
        empty.touch()  # an empty database (a missing file is refused: test_cli_errors.py)
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert migrate.check(db_url) == []
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            partitions = partitions_of(conn)
    finally:
        engine.dispose()
    assert tables - partitions == set(Base.metadata.tables) | {"alembic_version"}
    if db_url.startswith("postgresql"):  # each archived table: its default partition
        assert partitions == {f"{name}_default" for name in ARCHIVED_TABLES}
    else:
        assert partitions == set()


def partitions_of(conn: Connection) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    return set(
        conn.execute(
            text("SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r'")
        ).scalars()
    )


def test_check_reports_a_drifted_database(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_alerts_code")
    engine.dispose()
    assert any("ix_alerts_code" in line for line in migrate.check(sqlite_url))


def test_db_commands(sqlite_url: str) -> None:
    def observer(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "observer", "db", *args, "--db", sqlite_url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    missing = observer("current")
    assert missing.returncode == 2 and "no database at" in missing.stderr
    Path(sqlite_url.removeprefix("sqlite:///")).touch()
    assert observer("current").returncode == 1  # empty database is not at head
    upgraded = observer("upgrade")
    assert upgraded.returncode == 0 and migrate.head() in upgraded.stdout
    assert observer("current").returncode == 0
    checked = observer("check")
    assert checked.returncode == 0 and "match" in checked.stdout


def test_the_tests_copy_of_a_new_database_is_at_head_and_matches_the_models(
    db_url: str,
) -> None:
    """What the other tests get for a new database (`tests.migrated`) is a migrated one."""
    assert seed(db_url, 0o600)
    assert not seed(db_url)  # one already holding tables is left to the migrations
    if (file := sqlite_file(db_url)) is not None:
        assert file.stat().st_mode & 0o777 == 0o600
    assert migrate.current(db_url) == migrate.head()
    assert migrate.check(db_url) == []
