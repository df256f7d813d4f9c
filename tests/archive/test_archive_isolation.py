"""Exact decimals held alike on both databases, and a table's day that cannot be archived
failing alone: the job archived nothing after it, and that day and every later one were
never pruned."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select, text

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import DayArchived, Event, PruneRequested
from harness.loadgen import synthetic_tick
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.archive_layout import day_folder, part_path
from observer.db.engine import make_engine
from observer.db.models import ExactDecimal
from observer.db.retention_queries import ARCHIVED_TABLES, day_bounds
from observer.writer.store import Store
from tests.archive.test_archive import file_rows
from tests.archive.test_archive_writer import run_job
from tests.support import WriterProcess, db_rows, wait_until

# Ties and near-ties at the 9th place, both signs, a negative that rounds to zero, and
# values with 8 places or fewer (kept as they are).
VALUES = [
    "0.123456785",
    "-0.123456785",
    "0.123456775",
    "0.1234567849999",
    "-0.000000005",
    "-0.000000001",
    "0.123456789",
    "12345678.123456785",
    "1.23",
    "-7.5",
    "0.12345678",
]


def decimals_table() -> Table:
    return Table(
        "decimals",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("value", ExactDecimal()),
    )


def round_trip(url: str) -> list[Decimal]:
    table = decimals_table()
    engine = create_engine(url)
    try:
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert(), [{"id": i, "value": Decimal(v)} for i, v in enumerate(VALUES)]
            )
        with engine.connect() as conn:
            return [row.value for row in conn.execute(select(table).order_by(table.c.id))]
    finally:
        engine.dispose()


def test_exact_decimals_are_rounded_on_sqlite_as_postgresql_rounds_them(
    tmp_path: Path, pg_url: str
) -> None:
    """SQLite kept 0.123456785 whole in a column of 8 places (PostgreSQL rounds it): the
    archive's decimal128(24, 8) could not hold it."""
    on_postgres = round_trip(pg_url)
    on_sqlite = round_trip(f"sqlite:///{tmp_path / 'd.db'}")
    assert on_sqlite == on_postgres
    assert on_postgres[:6] == [
        Decimal("0.12345679"),
        Decimal("-0.12345679"),
        Decimal("0.12345678"),
        Decimal("0.12345678"),
        Decimal("-0.00000001"),
        Decimal("0"),
    ]
    engine = create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT value FROM decimals ORDER BY id"))]
    engine.dispose()
    assert stored[:6] == [
        "0.12345679",
        "-0.12345679",
        "0.12345678",
        "0.12345678",
        "-0.00000001",
        "0.00000000",
    ]
    assert stored[-3:] == ["1.23", "-7.5", "0.12345678"]  # 8 places or fewer: as they were


def test_a_decimal_stored_with_more_places_before_is_read_rounded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    table = decimals_table()
    engine = create_engine(url)
    table.metadata.create_all(engine)
    with engine.begin() as conn:  # as an earlier version stored it
        conn.execute(text("INSERT INTO decimals VALUES (1, '0.123456785'), (2, '1.5')"))
    with engine.connect() as conn:
        assert [r.value for r in conn.execute(select(table).order_by(table.c.id))] == [
            Decimal("0.12345679"),
            Decimal("1.5"),
        ]
        assert conn.execute(text("SELECT value FROM decimals WHERE id = 1")).scalar() == (
            "0.123456785"  # read rounded, never rewritten
        )
    engine.dispose()


def tick_envelopes(source: str, days: list[date], per_day: int) -> list[Envelope]:
    envelopes = []
    for day in days:
        start = day_bounds(day)[0] + 9 * 3600 * 10**9
        for n in range(per_day):
            seq = len(envelopes) + 1
            envelopes.append(Envelope(source, seq, start, synthetic_tick(n, start + n * 10**6)))
    return envelopes


def block(root: Path, day: date) -> None:
    """A file where each table's folder of the day goes: its files cannot be written."""
    for table in ARCHIVED_TABLES:
        folder = root / day_folder(table, day)
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_text("not a folder")


def unblock(root: Path, day: date) -> None:
    """Remove what `block` put in the way."""
    for table in ARCHIVED_TABLES:
        (root / day_folder(table, day)).unlink()


def test_a_table_day_that_cannot_be_archived_fails_alone(tmp_path: Path) -> None:
    from workers.archive.job import archive_day, keep_retention

    url = f"sqlite:///{tmp_path / 'observer.db'}"
    today = date(2026, 11, 20)
    old = [today - timedelta(days=n) for n in (42, 41, 40)]
    migrate.upgrade(url)
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(tick_envelopes("t", [*old, today], 20)))])
    with engine.begin() as conn:  # a rate an earlier version stored with 9 places
        conn.exec_driver_sql("UPDATE trade_ticks SET change_rate = '0.123456785' WHERE seq = 41")
    root = tmp_path / "archive"
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path}"\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "{url}"\n[retention]\ndir = "{root}"\n'
    )
    settings = load_settings(config)
    block(root, old[1])
    sent: list[Event] = []
    outcome = archive_day(engine, settings.retention, root, today, sent.append)
    keep_retention(engine, settings.retention, root, today, sent.append, outcome)
    engine.dispose()
    ((failed),) = outcome.failed
    assert failed.startswith(f"trade_ticks of {old[1]}: cannot write")
    requested = [(e.table, e.trade_date) for e in sent if isinstance(e, PruneRequested)]
    assert requested == [("trade_ticks", old[0]), ("trade_ticks", old[2])]  # not the blocked
    archived = {(e.table, e.trade_date) for e in sent if isinstance(e, DayArchived)}
    assert ("trade_ticks", old[1]) not in archived and ("trade_ticks", today) in archived
    rows = file_rows(root, part_path("trade_ticks", old[2]))
    first = next(r for r in rows if r["seq"] == 41)  # the day's first row
    assert first["change_rate"] == Decimal("0.12345679")


def test_the_job_alerts_the_table_day_it_could_not_archive_and_prunes_the_others(
    sqlite_url: str, tmp_path: Path
) -> None:
    today = datetime.now(KST).date()
    old = [today - timedelta(days=n) for n in (41, 40)]
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    store = Store(engine)
    store.apply([decode_parts(encode_frame(tick_envelopes("t", old, 30)))])
    engine.dispose()
    root = tmp_path / "archive"
    block(root, old[0])
    writer = WriterProcess(tmp_path, sqlite_url, extra=f'[retention]\ndir = "{root}"\n').start()
    count = "SELECT count(*) FROM trade_ticks"
    try:
        done = run_job(writer.config, today)
        assert done.returncode == 1, done.stderr
        summary = json.loads(done.stdout)
        ((failed),) = summary["failed"]
        assert failed.startswith(f"trade_ticks of {old[0]}: cannot write")
        assert summary["prune_requested"] == [f"trade_ticks:{old[1]}"]
        wait_until(lambda: db_rows(sqlite_url, count) == [(30,)], 60, "the other day pruned")
    finally:
        assert writer.terminate() == 0
    alerts = db_rows(
        sqlite_url, "SELECT severity, message FROM alerts WHERE code = 'archive_failed'"
    )
    ((severity, message),) = alerts
    assert severity == "critical"
    assert message.startswith(f"archive of {today}: trade_ticks of {old[0]} not written")
