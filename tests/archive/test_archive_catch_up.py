"""Each archive run brings the days before it up to date.

A day's file was written only by that day's run: a run missed (or caught up after midnight,
which archives the new day), rows committed after the run (a recovery) or a table's day that
failed were never written again. Ticks and books were mended at day 30 by the retention;
snapshots and bars, kept forever, stayed without a whole archive for good, and ``verify``
passed because each file matched its record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import event, update

from bus.events import Bar, DayArchived, Event, MinuteBars, PruneRequested
from harness.loadgen import synthetic_tick
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db.archive_layout import part_files, part_path
from observer.db.audit_queries import audit_sources
from observer.db.models import PrunedChunk
from observer.db.retention_queries import ARCHIVED_TABLES, days_with_rows, newest_archive
from observer.writer.partitions import Partitions
from observer.writer.retention import Pruner
from observer.writer.store import Store
from tests.archive.test_archive import (
    DAY,
    NEXT,
    alerts,
    apply,
    day_ns,
    file_rows,
    market_events,
    prune_all,
)
from tests.archive.test_archive import db_rows as day_rows
from tests.archive.test_archive_isolation import block, unblock
from tests.archive.test_archive_writer import run_job
from tests.support import WriterProcess, db_rows
from workers.archive.job import (
    LOOK_BACK_DAYS,
    ArchiveOutcome,
    archive_day,
    keep_journal,
    keep_retention,
    verify_archives,
)

TABLES = ["minute_bars", "order_books", "price_snapshots", "trade_ticks"]
PER_DAY = {"trade_ticks": 30, "order_books": 5, "price_snapshots": 3, "minute_bars": 4}


@pytest.fixture
def settings(store: Store, tmp_path: Path) -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[retention]\ndir = "{tmp_path / "a"}"\n')
    return load_settings(config)


def committing(store: Store, sent: list[Event]) -> Callable[[Event], None]:
    """The job's send: what it sends is committed, as the writer would."""

    def send(e: Event) -> None:
        sent.append(e)
        apply(store, [e], "archive")

    return send


def nightly(store: Store, settings: Settings, today: date) -> tuple[ArchiveOutcome, list[Event]]:
    """The job's run on ``today``."""
    sent: list[Event] = []
    send = committing(store, sent)
    root = Path(settings.retention.dir)
    outcome = archive_day(store.engine, settings.retention, root, today, send)
    keep_retention(store.engine, settings.retention, root, today, send, outcome)
    return outcome, sent


def files(settings: Settings, day: date) -> list[str]:
    """The tables with files of ``day``."""
    root = Path(settings.retention.dir)
    return sorted(t for t in ARCHIVED_TABLES if part_files(root, part_path(t, day)))


def archived(sent: list[Event]) -> list[tuple[str, date]]:
    return sorted((e.table, e.trade_date) for e in sent if isinstance(e, DayArchived))


def late_bars(day: date, n: int) -> MinuteBars:
    bars = tuple(
        Bar(minute_ns=day_ns(day, 600_000 + i * 60_000), open=1, high=2, low=1, close=2, volume=9)
        for i in range(n)
    )
    return MinuteBars(symbol="000660", quality="recovered", gap_id="g1", bars=bars)


def test_a_missed_day_is_archived_by_the_next_run(store: Store, settings: Settings) -> None:
    """(a) The 21:30 run of DAY missed; caught up after midnight, it archives NEXT."""
    apply(store, market_events(DAY, PER_DAY["trade_ticks"]) + market_events(NEXT, 30))
    outcome, sent = nightly(store, settings, NEXT)
    assert not outcome.failed and not outcome.problems
    assert files(settings, DAY) == TABLES  # the day before, every table
    assert archived(sent) == sorted((t, d) for t in TABLES for d in (DAY, NEXT))
    with store.engine.connect() as conn:
        for table in TABLES:
            record = newest_archive(conn, table, DAY)
            assert record is not None
            assert len(file_rows(Path(settings.retention.dir), record.path)) == record.rows > 0
    assert f"minute_bars of {DAY}: written (no archive)" in outcome.notes
    # The next run finds every day up to date: it writes only its own day, prunes nothing.
    outcome, sent = nightly(store, settings, NEXT + timedelta(days=1))
    assert sent == [] and outcome.written == [] and not outcome.failed
    # Forty nights on: ticks and books pruned, snapshots and bars never asked for.
    outcome, sent = nightly(store, settings, NEXT + timedelta(days=40))
    pruned = {(e.table, e.trade_date) for e in sent if isinstance(e, PruneRequested)}
    assert pruned == {(t, d) for t in ("trade_ticks", "order_books") for d in (DAY, NEXT)}
    assert archived(sent) == []  # verified as they are


def test_rows_committed_after_the_run_are_archived_by_the_next(
    store: Store, settings: Settings
) -> None:
    """(b) Gap recovery commits two bars of DAY after DAY's run."""
    apply(store, market_events(DAY, 50))
    nightly(store, settings, DAY)
    root = Path(settings.retention.dir)
    (bars,) = part_files(root, part_path("minute_bars", DAY))  # bars: one file a day
    assert pq.read_metadata(bars).num_rows == 4
    apply(store, [late_bars(DAY, 2)], "gap_recovery")
    outcome, sent = nightly(store, settings, NEXT)
    assert archived(sent) == [("minute_bars", DAY)]  # the other tables are up to date
    assert f"minute_bars of {DAY}: written (4 rows archived, 6 known)" in outcome.notes
    assert pq.read_metadata(bars).num_rows == 6
    assert not list(root.rglob(".*"))  # written aside, then renamed over the old
    with store.engine.connect() as conn:
        record = newest_archive(conn, "minute_bars", DAY)
    assert record is not None and record.rows == 6
    # A file gone or replaced is written again too (its size, its footer's row count).
    bars.unlink()
    _, sent = nightly(store, settings, NEXT)
    assert archived(sent) == [("minute_bars", DAY)] and bars.is_file()
    (ticks, *_) = part_files(root, part_path("trade_ticks", DAY))  # a symbol's ticks
    ticks.write_bytes(b"not parquet")
    outcome, sent = nightly(store, settings, NEXT)
    assert archived(sent) == [("trade_ticks", DAY)]
    assert pq.read_metadata(ticks).num_rows > 0


def test_a_day_that_failed_is_tried_again_until_written(store: Store, settings: Settings) -> None:
    """(c) A table's day that could not be written was never tried again."""
    apply(store, market_events(DAY, 50) + market_events(NEXT, 50))
    root = Path(settings.retention.dir)
    block(root, DAY)
    outcome, _ = nightly(store, settings, DAY)
    assert sorted(f.split(": ")[0] for f in outcome.failed) == [f"{t} of {DAY}" for t in TABLES]
    outcome, sent = nightly(store, settings, NEXT)
    assert sorted(f.split(": ")[0] for f in outcome.failed) == [f"{t} of {DAY}" for t in TABLES]
    assert archived(sent) == [(t, NEXT) for t in TABLES]
    unblock(root, DAY)
    outcome, sent = nightly(store, settings, NEXT + timedelta(days=1))
    assert not outcome.failed and archived(sent) == [(t, DAY) for t in TABLES]
    assert files(settings, DAY) == TABLES


def test_the_look_back_is_bounded_and_a_pruned_table_stays_within_its_retention(
    store: Store, settings: Settings
) -> None:
    old = DAY - timedelta(days=LOOK_BACK_DAYS + 1)
    apply(store, market_events(old, 20) + market_events(DAY, 20))
    root, today = Path(settings.retention.dir), DAY + timedelta(days=1)
    sent: list[Event] = []
    kept = settings.retention
    keep_retention(store.engine, kept, root, today, committing(store, sent), ArchiveOutcome())
    # The old day: ticks and books past their retention (archived, then pruning asked);
    # snapshots and bars beyond the look-back (an outage longer: `archive run --look-back`).
    assert archived(sent) == sorted(
        [(t, DAY) for t in TABLES] + [("order_books", old), ("trade_ticks", old)]
    )
    sent.clear()
    send = committing(store, sent)
    keep_retention(store.engine, kept, root, today, send, ArchiveOutcome(), look_back=60)
    assert archived(sent) == [("minute_bars", old), ("price_snapshots", old)]


def test_rows_committed_after_their_day_was_pruned_are_archived_and_pruned(
    store: Store, settings: Settings
) -> None:
    """A row of a pruned day committed later (a recovery, a replay) was kept unarchived for
    good and made every nightly run a false critical archive_damaged (exit 1)."""
    apply(store, [synthetic_tick(n, day_ns(DAY, n)) for n in range(200)])
    root, today = Path(settings.retention.dir), DAY + timedelta(days=31)
    pruner = Pruner(store, 100)
    nightly(store, settings, today)
    assert [code for code, _ in alerts(prune_all(pruner))] == ["retention_pruned"]
    apply(store, [synthetic_tick(9000, day_ns(DAY, 9000))], "late")
    outcome, sent = nightly(store, settings, today + timedelta(days=1))
    assert not outcome.problems and not outcome.failed
    assert [(w.path, w.rows) for w in outcome.written] == [
        (part_path("trade_ticks", DAY, late=1), 1)
    ]
    assert f"trade_ticks of {DAY}: 1 rows committed after it was pruned" in outcome.notes[-1]
    assert [(r.table, r.rows) for r in sent if isinstance(r, PruneRequested)] == [
        ("trade_ticks", 1)
    ]
    # One more arrives before the writer takes the request: refused, nothing deleted ...
    apply(store, [synthetic_tick(9001, day_ns(DAY, 9001))], "late")
    assert [code for code, _ in alerts(prune_all(pruner))] == ["prune_refused"]
    assert len(day_rows(store, "trade_ticks", DAY)) == 2
    # ... and the next run writes only the row the late file lacks (its seq is above); the
    # day pruned, the refusal ends
    outcome, _ = nightly(store, settings, today + timedelta(days=2))
    assert not outcome.problems and [w.rows for w in outcome.written] == [1]
    assert [code for code, _ in alerts(prune_all(pruner))] == ["retention_pruned", "prune_refused"]
    assert day_rows(store, "trade_ticks", DAY) == []
    checked, problems = verify_archives(store.engine, root, DAY)
    assert (checked, problems) == (3, [])
    keys = [
        (r["source"], r["seq"])
        for late in (0, 1, 2)
        for r in file_rows(root, part_path("trade_ticks", DAY, late))
    ]
    assert len(keys) == len(set(keys)) == 202  # every row once, across the day's files
    with store.engine.connect() as conn:
        assert all(a.complete for a in audit_sources(conn))
    outcome, sent = nightly(store, settings, today + timedelta(days=3))
    assert sent == [] and not outcome.problems  # nothing left to do


def test_a_pruned_day_whose_rows_do_not_add_up_is_still_a_problem(
    store: Store, settings: Settings
) -> None:
    """Late rows are told apart from damage: rows the file holds that are neither pruned nor
    in the database are never written over nor pruned."""
    apply(store, [synthetic_tick(n, day_ns(DAY, n)) for n in range(200)])
    today = DAY + timedelta(days=31)
    pruner = Pruner(store, 100)
    nightly(store, settings, today)
    prune_all(pruner)
    apply(store, [synthetic_tick(9000, day_ns(DAY, 9000))], "late")
    with store.engine.begin() as conn:  # 50 archived rows neither pruned nor in the database
        conn.execute(update(PrunedChunk).values(rows=PrunedChunk.rows - 50))
    outcome, sent = nightly(store, settings, today + timedelta(days=1))
    ((problem,),) = [outcome.problems]
    assert problem.startswith(f"trade_ticks of {DAY} is pruned in part") and "1 of them" in problem
    assert sent == [] and len(day_rows(store, "trade_ticks", DAY)) == 1


@pytest.fixture
def statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The SQL the engine runs, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        seen.append((str(args[2]), args[3]))

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


def test_a_day_count_reads_only_the_index_entries_of_the_days_asked(
    store: Store, statements: list[tuple[str, Any]]
) -> None:
    """On SQLite (keyed by source, seq) through the (symbol, time) index, never the table;
    on PostgreSQL only the days' partitions."""
    days = [DAY - timedelta(days=n) for n in (40, 2, 1, 0)]
    for day in days:
        apply(store, market_events(day, 30))
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        partitions = Partitions(store.engine, 1)
        for spec in ARCHIVED_TABLES.values():
            for day in days:
                partitions.ensure(spec, day)
    for spec in ARCHIVED_TABLES.values():
        statements.clear()
        with store.engine.connect() as conn:
            counts = days_with_rows(conn, spec, DAY, since=DAY - timedelta(days=30))
            expected = PER_DAY[spec.name]
            assert counts == {days[1]: expected, days[2]: expected}
            assert days_with_rows(conn, spec, DAY)[days[0]] == expected  # no lower bound
            ((sql, params), *_) = [s for s in statements if "count(" in s[0]]
            plan = "\n".join(
                " ".join(str(c) for c in row)
                for row in conn.exec_driver_sql(
                    ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql, params
                )
            )
        if postgres:
            assert f"{spec.name}_{days[1]:%Y%m%d}" in plan
            assert f"{spec.name}_{days[0]:%Y%m%d}" not in plan  # outside the window
            assert f"{spec.name}_{days[3]:%Y%m%d}" not in plan  # the run's own day
        else:
            assert "COVERING INDEX" in plan and f"SCAN {spec.name}" not in plan, plan


def test_the_job_keeps_archive_failed_open_while_a_day_is_not_written(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The next run that worked resolved archive_failed, the day never written."""
    from observer.db import migrate
    from observer.db.engine import make_engine

    today = datetime.now(KST).date()
    day, after = today - timedelta(days=3), today - timedelta(days=2)
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    store = Store(engine)
    store.load_marks()
    apply(store, market_events(day, 20) + market_events(after, 20))
    engine.dispose()
    root = tmp_path / "archive"
    block(root, day)
    writer = WriterProcess(tmp_path, sqlite_url, extra=f'[retention]\ndir = "{root}"\n').start()
    resolutions = "SELECT code FROM alert_resolutions WHERE source = 'archive'"
    failed = "SELECT message FROM alerts WHERE code = 'archive_failed' ORDER BY produced_ns"
    try:
        assert run_job(writer.config, day).returncode == 1
        done = run_job(writer.config, after)  # the day still cannot be written
        assert done.returncode == 1, done.stderr
        assert db_rows(sqlite_url, resolutions) == []
        messages = [m for (m,) in db_rows(sqlite_url, failed)]
        assert len(messages) == 2 and f"minute_bars of {day}" in messages[1]
        unblock(root, day)
        done = run_job(writer.config, today)
        assert done.returncode == 0, done.stderr
        assert db_rows(sqlite_url, resolutions) == [("archive_failed",)]
        summary = json.loads(done.stdout)
        assert sorted(f["table"] for f in summary["files"] if f["trade_date"] == str(day)) == (
            TABLES
        )
    finally:
        assert writer.terminate() == 0


def test_the_nightly_run_removes_the_journal_s_days_past_their_keep_and_says_so(
    tmp_path: Path,
) -> None:
    """`keep_journal`: the days older than ``keep_days`` before the run's day go, noted."""
    today = date(2026, 11, 20)
    for back in range(5):
        folder = tmp_path / f"date={(today - timedelta(days=back)).isoformat()}"
        folder.mkdir()
        (folder / "track_b.0.journal.zst").write_bytes(b"")
    outcome = ArchiveOutcome()
    keep_journal(tmp_path, 2, today, outcome)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f"date={(today - timedelta(days=b)).isoformat()}" for b in (2, 1, 0)]
    assert outcome.notes == ["the journal's days 2026-11-16 to 2026-11-17 removed (kept 2)"]
    assert not outcome.failed
    keep_journal(tmp_path, 2, today, outcome)  # nothing more to remove: nothing said
    assert len(outcome.notes) == 1
