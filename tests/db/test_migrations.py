"""Migrations match the models exactly on SQLite and PostgreSQL; the CLI reports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, inspect, text

from observer.db import migrate
from observer.db.engine import make_engine, sqlite_file
from observer.db.models import BOOK_LEVEL_COLUMNS, Base
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


# Run as `python -c`: upgrade, and die by SIGKILL the moment revision 0012's second table is
# created (its first, enrichment_runs, already made): a writer killed or a power cut mid-upgrade.
_KILLED_MID_REVISION = """
import os, signal, sys
from sqlalchemy import Engine, event
from observer.db import migrate

def die(conn, cursor, statement, *args):
    if statement.lstrip().startswith("CREATE TABLE instrument_sectors"):
        os.kill(os.getpid(), signal.SIGKILL)

event.listen(Engine, "before_cursor_execute", die)
migrate.upgrade(sys.argv[1])
"""


def test_an_upgrade_killed_mid_revision_leaves_the_last_whole_one_and_resumes(
    db_url: str,
) -> None:
    """Each revision commits with its version row: killed inside 0012, the database is at
    0011 with none of 0012's tables, and the next upgrade reaches the head (before, SQLite
    kept 0012's first table and every later upgrade failed: "already exists")."""
    if (file := sqlite_file(db_url)) is not None:
        file.touch()
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_REVISION, db_url], cwd=ROOT, timeout=120
    )
    assert killed.returncode == -9
    assert migrate.current(db_url) == "0011"
    engine = make_engine(db_url)
    try:
        assert "enrichment_runs" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    assert migrate.check(db_url) == []


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


# Books stored with their levels as JSON arrays (revision 0024): every length a side may have
# had, the extreme integers, a level of 0 (a side KIS sent empty).
_BOOK_SIDES = [
    ([], [], [], []),
    ([73_200], [1], [73_100], [0]),
    (list(range(1, 11)), list(range(11, 21)), list(range(21, 31)), list(range(31, 41))),
    ([2**63 - 1] * 10, [0] * 10, [1] * 3, [2**62] * 7),
]


def _book_at_0024(seq: int, sides: tuple[list[int], ...]) -> dict[str, object]:
    ask_prices, ask_qtys, bid_prices, bid_qtys = sides
    return {
        "source": "track_b",
        "seq": seq,
        "produced_ns": seq,
        "symbol": "005930",
        "exchange_ns": 1_795_000_000_000_000_000 + seq,
        "received_ns": seq,
        "ask_prices": ask_prices,
        "ask_qtys": ask_qtys,
        "bid_prices": bid_prices,
        "bid_qtys": bid_qtys,
        "total_ask_qty": 1,
        "total_bid_qty": 2,
        "expected_price": 0,
        "expected_qty": 0,
        "account": "acct1",
    }


def test_book_levels_become_columns_and_back_with_nothing_lost(db_url: str) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import JSON, column, insert, select, table

    empty = sqlite_file(db_url)
    if empty is not None:
        empty.touch()
    migrate.upgrade(db_url, "0024")
    arrays = ("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")
    books = table(
        "order_books",
        *(column(c) for c in _book_at_0024(0, _BOOK_SIDES[0]) if c not in arrays),
        *(column(c, JSON()) for c in arrays),
    )
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(books), [_book_at_0024(n, s) for n, s in enumerate(_BOOK_SIDES)])
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            found = conn.execute(
                text(f"SELECT {', '.join(BOOK_LEVEL_COLUMNS)} FROM order_books ORDER BY seq")
            ).all()
        for row, sides in zip(found, _BOOK_SIDES, strict=True):
            padded = [side[n] if n < len(side) else None for side in sides for n in range(10)]
            assert list(row) == padded  # level n of each side in its column, NULL past them
        assert migrate.check(db_url) == []
        engine.dispose()
        config = Config()
        config.set_main_option("script_location", str(migrate.migrations_dir()))
        config.set_main_option("sqlalchemy.url", db_url)
        command.downgrade(config, "0024")
        with engine.connect() as conn:
            again = conn.execute(select(*(books.c[a] for a in arrays)).order_by("seq")).all()
        assert [tuple(r) for r in again] == [tuple(s) for s in _BOOK_SIDES]  # the arrays again
    finally:
        engine.dispose()
