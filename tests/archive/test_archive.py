"""Day archives and retention: Parquet round trip, verification, pruning only what was archived."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import (
    Bar,
    Event,
    MinuteBars,
    OrderBook,
    PriceSnapshot,
    PruneRequested,
)
from harness.loadgen import synthetic_tick
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db.archive import ArchiveWouldShrink, _SymbolGroups, verify_file, write_day
from observer.db.archive_layout import (
    PER_SYMBOL,
    day_folder,
    legacy_path,
    part_files,
    part_path,
    symbol_files,
)
from observer.db.audit_queries import audit_sources
from observer.db.models import PrunedChunk
from observer.db.retention_queries import (
    ARCHIVED_TABLES,
    archive_order,
    archive_records,
    day_bounds,
    day_filter,
    newest_archive,
)
from observer.writer.retention import Pruner
from observer.writer.store import Store
from tests.samples import SAMPLES
from tests.support import ROOT
from workers.archive import job

DAY = date(2026, 11, 18)
NEXT = DAY + timedelta(days=1)


def day_ns(day: date, n: int) -> int:
    """An instant inside ``day`` (KST): 09:00 plus ``n`` milliseconds."""
    return day_bounds(day)[0] + 9 * 3600 * 10**9 + n * 10**6


def market_events(day: date, ticks: int) -> list[Event]:
    """Ticks, books, snapshots and bars of one day."""
    book: OrderBook = SAMPLES[3]  # type: ignore[assignment]
    snapshot: PriceSnapshot = SAMPLES[0]  # type: ignore[assignment]
    events: list[Event] = [synthetic_tick(n, day_ns(day, n)) for n in range(ticks)]
    events += [msgspec.structs.replace(book, exchange_ns=day_ns(day, n)) for n in range(5)]
    events += [msgspec.structs.replace(snapshot, observed_ns=day_ns(day, n)) for n in range(3)]
    bars = tuple(
        Bar(minute_ns=day_ns(day, n * 60_000), open=1, high=2, low=1, close=2, volume=n)
        for n in range(4)
    )
    events.append(MinuteBars(symbol="005930", quality="live", gap_id="", bars=bars))
    return events


def apply(store: Store, events: list[Event], source: str = "track_b") -> None:
    first = store.marks.get(source, 0) + 1
    envelopes = [Envelope(source, first + i, day_ns(DAY, i), e) for i, e in enumerate(events)]
    for i in range(0, len(envelopes), 500):
        store.apply([decode_parts(encode_frame(envelopes[i : i + 500]))])


def archive(store: Store, root: Path, day: date, source: str = "archive") -> None:
    """Write every table's file of ``day`` and record it, as the archive job does."""
    events: list[Event] = []
    for spec in ARCHIVED_TABLES.values():
        with store.engine.connect() as conn:
            written = write_day(conn, spec, day, root, 1000)
        if written is not None:
            events.append(written.event())
    apply(store, events, source)


def archive_and_request(store: Store, root: Path, tables: tuple[str, ...]) -> None:
    """Archive DAY, then ask the writer to prune ``tables``'s DAY, as the archive job does."""
    archive(store, root, DAY)
    with store.engine.connect() as conn:
        records = {r.table: r for r in archive_records(conn, DAY)}
    requests: list[Event] = [
        PruneRequested(table=t, trade_date=DAY, rows=records[t].rows, sha256=records[t].sha256)
        for t in tables
    ]
    apply(store, requests, "archive")


def store_settings(store: Store, root: Path) -> Settings:
    """Settings of ``store``'s database, archiving under ``root``."""
    url = store.engine.url.render_as_string(hide_password=False)
    config = root.parent / f"{root.name}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[retention]\ndir = "{root}"\n')
    return load_settings(config)


def db_rows(store: Store, table: str, day: date) -> list[dict[str, Any]]:
    """The rows of ``table``'s ``day``, in the order of its day file."""
    spec = ARCHIVED_TABLES[table]
    query = select(spec.table).where(day_filter(spec, day)).order_by(*archive_order(spec))
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def file_rows(root: Path, relative: str) -> list[dict[str, Any]]:
    """The rows of a record's files (a part's, a file per symbol, in symbol order)."""
    return [row for file in part_files(root, relative) for row in pq.read_table(file).to_pylist()]


def prune_all(pruner: Pruner) -> list[Any]:
    """Run the pruner until it has nothing due; the alert frames it committed."""
    frames = []
    for _ in range(10_000):
        if not pruner.pending():
            return frames
        frame = pruner.step()
        if frame is not None:
            frames.append(frame)
    raise AssertionError("the pruner never finished")


def alerts(frames: list[Any]) -> list[tuple[str, str]]:
    return [(f.envelopes[0].event.code, f.envelopes[0].event.message) for f in frames]


def test_round_trip_rows_equal_and_duckdb_reads(store: Store, tmp_path: Path) -> None:
    apply(store, market_events(DAY, 2500) + market_events(NEXT, 100))
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        records = {r.table: r for r in archive_records(conn, DAY)}
    assert {t: r.rows for t, r in records.items()} == {
        "trade_ticks": 2500,
        "order_books": 5,
        "price_snapshots": 3,
        "minute_bars": 4,
    }
    for table, record in records.items():
        time_column = ARCHIVED_TABLES[table].time_column
        files = part_files(tmp_path, record.path)
        rows = file_rows(tmp_path, record.path)
        assert rows == db_rows(store, table, DAY)  # the next day is not in it
        if table in PER_SYMBOL:
            # A file per symbol, its rows in time order: a reader of one symbol opens its file
            assert record.path == f"{table}/date={DAY.isoformat()}/{{symbol}}.parquet"
            assert [f.stem for f in files] == sorted({r["symbol"] for r in rows})
            for file in files:
                held = pq.read_table(file).to_pylist()
                assert {r["symbol"] for r in held} == {file.stem}
                assert [r[time_column] for r in held] == sorted(r[time_column] for r in held)
        else:
            # One file, by symbol and time: a reader of one symbol skips the others' groups
            assert record.path == f"{table}/date={DAY.isoformat()}/day.parquet"
            instants = [(r["symbol"], r[time_column]) for r in rows]
            assert instants == sorted(instants) and len(files) == 1
        for file in files:
            assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "ZSTD"
        assert verify_file(tmp_path, record) is None
    # Hive-style folders: DuckDB reads the table as one dataset, the day as a column.
    ticks = tmp_path / "trade_ticks" / "*" / "*.parquet"
    analyst = duckdb.connect()
    ((count, total, symbols, day),) = analyst.execute(
        "SELECT count(*), sum(price), count(DISTINCT symbol), min(date) "
        f"FROM read_parquet('{ticks}', hive_partitioning = true)"
    ).fetchall()
    stored = db_rows(store, "trade_ticks", DAY)
    assert (count, total) == (2500, sum(r["price"] for r in stored)) and symbols == 8
    assert day == DAY
    ((rate,),) = analyst.execute(
        f"SELECT change_rate FROM read_parquet('{ticks}') ORDER BY seq LIMIT 1"
    ).fetchall()
    analyst.close()
    assert rate == min(stored, key=lambda r: r["seq"])["change_rate"]  # exact, not floats
    assert not list(tmp_path.rglob(".*.tmp"))  # no temporary file left
    archive(store, tmp_path, date(2020, 1, 2))  # a day without rows: no file, no folders
    assert not list(tmp_path.rglob("date=2020-01-02"))
    assert (tmp_path / "trade_ticks" / f"date={DAY.isoformat()}").is_dir()


def test_a_day_is_written_and_checked_with_a_beat_for_every_batch(
    store: Store, tmp_path: Path
) -> None:
    # The archive job beats there: a day of ticks takes minutes, and a job silent for half
    # its heartbeat timeout shows as hung in `ctl status`.
    apply(store, market_events(DAY, 2500))
    beats: list[int] = []
    with store.engine.connect() as conn:
        written = write_day(
            conn, ARCHIVED_TABLES["trade_ticks"], DAY, tmp_path, 1000, lambda: beats.append(1)
        )
    assert written is not None and written.rows == 2500
    assert len(beats) >= 3 + 8  # three batches of 1000, a file per symbol, their hashes
    archive(store, tmp_path, DAY)  # recorded by the writer
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None
    beats.clear()
    assert verify_file(tmp_path, record, lambda: beats.append(1)) is None
    assert len(beats) >= 2  # the hash, the read-back


def test_a_day_archived_as_one_file_goes_on_as_one_file(store: Store, tmp_path: Path) -> None:
    """A day recorded before the per-symbol layout is written again in its own: a part beside
    its file would count the day's rows twice, and the day would never add up."""
    apply(store, market_events(DAY, 300))
    spec = ARCHIVED_TABLES["trade_ticks"]
    legacy = legacy_path("trade_ticks", DAY)
    with store.engine.connect() as conn:
        before = write_day(conn, spec, DAY, tmp_path, 1000, path=legacy)
    assert before is not None and before.path == f"{DAY:%Y/%m/%d}/trade_ticks.parquet"
    apply(store, [before.event()], "archive")
    apply(store, [synthetic_tick(9000, day_ns(DAY, 9000))], "late")  # a row since
    sent: list[Event] = []
    outcome = job.archive_day(
        store.engine, store_settings(store, tmp_path).retention, tmp_path, DAY, sent.append
    )
    assert [(w.path, w.rows) for w in outcome.written if w.table == "trade_ticks"] == [
        (legacy, 301)
    ]
    apply(store, sent, "archive")
    with store.engine.connect() as conn:
        records = archive_records(conn, DAY)
    assert [(r.path, r.rows) for r in records if r.table == "trade_ticks"] == [(legacy, 301)]
    assert file_rows(tmp_path, legacy) == db_rows(store, "trade_ticks", DAY)
    assert not (tmp_path / "trade_ticks").exists()
    # The other tables, recorded for the first time, are a file per symbol.
    assert {r.path for r in records} - {legacy} == {
        part_path(t, DAY) for t in ARCHIVED_TABLES if t != "trade_ticks"
    }


def test_what_a_crash_left_aside_is_never_read_and_the_next_write_clears_it(
    store: Store, tmp_path: Path
) -> None:
    """A day's files are written to a folder aside that then replaces the day's: a crash
    leaves that folder, or the old one moved aside, and neither is ever read."""
    apply(store, market_events(DAY, 300))
    archive(store, tmp_path, DAY)
    folder = tmp_path / day_folder("trade_ticks", DAY)
    aside = [folder.with_name(f".{folder.name}.{end}") for end in ("tmp", "old")]
    for left in aside:
        shutil.copytree(folder, left)
        (left / "999999.parquet").write_bytes(b"half a file")
    read = symbol_files(tmp_path, "trade_ticks", DAY, None)
    assert read == part_files(tmp_path, part_path("trade_ticks", DAY)) and read
    assert all(f.parent == folder for f in read)
    apply(store, [synthetic_tick(9000, day_ns(DAY, 9000))], "late")  # a row since
    with store.engine.connect() as conn:
        written = write_day(conn, ARCHIVED_TABLES["trade_ticks"], DAY, tmp_path, 1000)
    assert written is not None and written.rows == 301
    assert not any(left.exists() for left in aside)
    assert len(file_rows(tmp_path, written.path)) == 301


def test_verify_detects_a_damaged_or_truncated_file(store: Store, tmp_path: Path) -> None:
    apply(store, market_events(DAY, 300))
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None and verify_file(tmp_path, record) is None
    first = part_files(tmp_path, record.path)[0]
    good = first.read_bytes()
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    first.write_bytes(bytes(damaged))
    assert "sha256" in (verify_file(tmp_path, record) or "")
    first.write_bytes(good[: len(good) // 2])
    assert "bytes" in (verify_file(tmp_path, record) or "")
    first.unlink()  # one symbol's file gone: the part is short of it
    assert "bytes" in (verify_file(tmp_path, record) or "")
    first.with_name("999999.parquet").write_bytes(good)  # another in its place
    assert "sha256" in (verify_file(tmp_path, record) or "")
    for file in part_files(tmp_path, record.path):
        file.unlink()
    assert "missing" in (verify_file(tmp_path, record) or "")


def test_pruning_refuses_a_day_without_a_matching_archive(store: Store, tmp_path: Path) -> None:
    apply(store, market_events(DAY, 200))
    pruner = Pruner(store, 50)
    # No archive at all.
    apply(
        store,
        [PruneRequested(table="trade_ticks", trade_date=DAY, rows=200, sha256="0" * 64)],
        "archive",
    )
    assert [code for code, _ in alerts(prune_all(pruner))] == ["prune_refused"]
    # An archive, then a late row of the day that it does not hold.
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None
    apply(store, [synthetic_tick(9999, day_ns(DAY, 9999))], "late")
    request = PruneRequested(table="trade_ticks", trade_date=DAY, rows=200, sha256=record.sha256)
    apply(store, [request], "archive")
    ((code, message),) = alerts(prune_all(pruner))
    assert code == "prune_refused" and "201 rows" in message
    assert len(db_rows(store, "trade_ticks", DAY)) == 201  # nothing deleted
    # Another table's name is refused too.
    apply(store, [msgspec.structs.replace(request, table="alerts")], "archive")
    assert [code for code, _ in alerts(prune_all(pruner))] == ["prune_refused"]
    assert len(db_rows(store, "trade_ticks", DAY)) == 201
    # The archive written again holds the late row: the day is pruned, and its refusal ends
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        again = newest_archive(conn, "trade_ticks", DAY)
    assert again is not None and again.rows == 201
    request = msgspec.structs.replace(request, rows=201, sha256=again.sha256)
    apply(store, [request], "archive")
    ended = [f.envelopes[0].event for f in prune_all(pruner)]
    assert [(type(e).__name__, e.code) for e in ended] == [
        ("Alert", "retention_pruned"),
        ("AlertResolved", "prune_refused"),
    ]
    assert ended[1].subject == f"trade_ticks:{DAY}" and not db_rows(store, "trade_ticks", DAY)


SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # chunks (PG drops
# a day's partition: tests/writer/test_partitions.py)


@SQLITE_ONLY
def test_pruning_in_chunks_keeps_the_audit_whole_and_late_rows(
    store: Store, tmp_path: Path
) -> None:
    apply(store, market_events(DAY, 1000) + market_events(NEXT, 50))
    pruner = Pruner(store, 120)
    archive_and_request(store, tmp_path, ("trade_ticks", "minute_bars"))
    assert pruner.pending()
    assert pruner.step() is None  # the check: the rows to delete are fixed here
    assert pruner.step() is None  # the first chunk
    # A row of the day committed after the pruning started is not in the archive: it stays.
    apply(store, [synthetic_tick(5000, day_ns(DAY, 5000))], "late")
    found = alerts(prune_all(pruner))
    assert [code for code, _ in found] == ["retention_pruned", "retention_pruned"]
    assert "1000 rows in 9 chunks" in found[0][1]
    assert [r["source"] for r in db_rows(store, "trade_ticks", DAY)] == ["late"]
    assert db_rows(store, "minute_bars", DAY) == []
    assert len(db_rows(store, "trade_ticks", NEXT)) == 50  # the next day is untouched
    assert len(db_rows(store, "order_books", DAY)) == 5  # not asked
    with store.engine.connect() as conn:
        chunks = conn.execute(select(PrunedChunk.rows, PrunedChunk.seqs)).all()
    with store.engine.connect() as conn:
        audits = {a.source: a for a in audit_sources(conn)}
    assert sum(rows for rows, _ in chunks) == 1004 and sum(s for _, s in chunks) == 1000
    assert all(a.complete for a in audits.values()), audits
    assert audits["track_b"].max_seq == len(market_events(DAY, 1000)) + 59
    assert pruner.pruned == 1004


@SQLITE_ONLY
def test_a_pruning_cut_short_is_finished_by_the_next_request(store: Store, tmp_path: Path) -> None:
    apply(store, market_events(DAY, 500))
    archive(store, tmp_path, DAY)
    with store.engine.connect() as conn:
        record = newest_archive(conn, "trade_ticks", DAY)
    assert record is not None
    request = PruneRequested(table="trade_ticks", trade_date=DAY, rows=500, sha256=record.sha256)
    apply(store, [request], "archive")
    first = Pruner(store, 100)
    first.pending()
    first.step()
    first.step()
    first.step()  # two chunks done; the writer stops here
    assert len(db_rows(store, "trade_ticks", DAY)) == 300
    apply(store, [request], "archive")
    again = Pruner(store, 100)
    ((code, message),) = alerts(prune_all(again))
    assert code == "retention_pruned" and "300 rows" in message
    assert db_rows(store, "trade_ticks", DAY) == []
    with store.engine.connect() as conn:
        assert all(a.complete for a in audit_sources(conn))


def test_archiving_a_day_the_writer_starts_pruning_keeps_the_whole_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`archive --date D` checked that D was not pruned, then read it in another statement:
    the pruner's first chunk committed in between, the day's whole file was replaced by one
    without it, and the pruner then deleted every row it had fixed (100 of 500 lost)."""
    apply(store, [synthetic_tick(n, day_ns(DAY, n)) for n in range(500)])
    archive_and_request(store, tmp_path, ("trade_ticks",))
    pruner = Pruner(store, 100)
    real = job.write_day

    def pruned_meanwhile(conn: Any, spec: Any, day: date, *args: Any, **kwargs: Any) -> Any:
        if spec.name == "trade_ticks":  # after the job's check, before its read of the day
            assert pruner.pending()
            pruner.step()  # the check
            pruner.step()  # the first chunk (a partition dropped, on PostgreSQL)
        return real(conn, spec, day, *args, **kwargs)

    monkeypatch.setattr(job, "write_day", pruned_meanwhile)
    sent: list[Event] = []
    outcome = job.archive_day(
        store.engine, store_settings(store, tmp_path).retention, tmp_path, DAY, sent.append
    )
    monkeypatch.undo()
    apply(store, sent, "archive")
    prune_all(pruner)
    assert not outcome.problems and not outcome.failed
    assert [w.rows for w in outcome.written if w.table == "trade_ticks"] in ([500], [])
    ticks = part_path("trade_ticks", DAY)
    assert len(file_rows(tmp_path, ticks)) == 500 and db_rows(store, "trade_ticks", DAY) == []
    count, problems = job.verify_archives(store.engine, tmp_path, DAY)
    assert (count, problems) == (1, [])


def test_an_archive_file_is_never_replaced_by_one_with_fewer_rows(
    store: Store, tmp_path: Path
) -> None:
    """The day's rows gone from the database (pruned, a restore of an older backup): the
    file holding them was replaced by what was left, and `verify` said all was well."""
    apply(store, [synthetic_tick(n, day_ns(DAY, n)) for n in range(300)])
    apply(store, [synthetic_tick(n, day_ns(NEXT, n)) for n in range(300)])
    spec = ARCHIVED_TABLES["trade_ticks"]
    archive(store, tmp_path, DAY)  # recorded
    with store.engine.connect() as conn:
        unrecorded = write_day(conn, spec, NEXT, tmp_path, 1000)  # a file with no record
    assert unrecorded is not None
    paths = {d: part_path("trade_ticks", d) for d in (DAY, NEXT)}
    whole = {d: [f.read_bytes() for f in part_files(tmp_path, p)] for d, p in paths.items()}
    with store.engine.begin() as conn:  # rows lost, as an older backup restored would be
        conn.execute(delete(spec.table).where(spec.table.c.seq % 3 == 0))
    for file in part_files(tmp_path, paths[DAY]):
        file.unlink()  # the record still counts
    for day in (DAY, NEXT):
        with store.engine.connect() as conn, pytest.raises(ArchiveWouldShrink, match="300 rows"):
            write_day(conn, spec, day, tmp_path, 1000)
    assert [f.read_bytes() for f in part_files(tmp_path, paths[NEXT])] == whole[NEXT]
    assert not list(tmp_path.rglob(".*.tmp"))
    # The job calls it a problem (archive_damaged), never a failure to retry: nothing sent.
    sent: list[Event] = []
    settings = store_settings(store, tmp_path)
    outcome = job.archive_day(store.engine, settings.retention, tmp_path, NEXT, sent.append)
    assert [p.split(": ")[0] for p in outcome.problems] == [f"trade_ticks of {NEXT}"]
    assert "never shrinks" in outcome.problems[0] and not outcome.failed
    assert not [e for e in sent if getattr(e, "table", "") == "trade_ticks"]


@SQLITE_ONLY
def test_a_late_row_of_a_day_whose_pruning_was_cut_short_is_archived_apart(
    store: Store, tmp_path: Path
) -> None:
    """Pruned in part by a writer that stopped, then a late row: the row is told apart from
    the archived rows still there (its seq is above its source's in the file)."""
    apply(store, [synthetic_tick(n, day_ns(DAY, n)) for n in range(500)])
    archive_and_request(store, tmp_path, ("trade_ticks",))
    cut = Pruner(store, 100)
    for _ in range(3):  # the check and two chunks; then the writer stops
        cut.pending()
        cut.step()
    apply(store, [synthetic_tick(n, day_ns(DAY, 9000 + n)) for n in range(2)])  # same source
    sent: list[Event] = []
    outcome = job.ArchiveOutcome()
    settings = store_settings(store, tmp_path)
    job.keep_retention(
        store.engine, settings.retention, tmp_path, DAY + timedelta(days=31), sent.append, outcome
    )
    assert not outcome.problems and [(w.path, w.rows) for w in outcome.written] == [
        (part_path("trade_ticks", DAY, late=1), 2)
    ]
    apply(store, sent, "archive")
    ((code, message),) = alerts(prune_all(Pruner(store, 100)))
    assert code == "retention_pruned" and "302 rows" in message
    assert db_rows(store, "trade_ticks", DAY) == []
    late = file_rows(tmp_path, outcome.written[0].path)
    assert sorted(r["seq"] for r in late) == [501, 502]
    assert job.verify_archives(store.engine, tmp_path, DAY) == (2, [])


def _observer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_archive_verify_command_exits_1_on_a_damaged_file(store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    apply(store, market_events(DAY, 100))
    root = tmp_path / "archive"
    archive(store, root, DAY)
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[retention]\ndir = "{root}"\n')
    done = _observer("archive", "verify", "--json", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"checked": 4, "problems": []}
    (path,) = part_files(root, part_path("order_books", DAY))  # the one symbol's books
    path.write_bytes(path.read_bytes()[:-10])
    done = _observer("archive", "verify", "--date", str(DAY), "--config", str(config))
    assert done.returncode == 1 and "order_books/date=" in done.stderr
    assert (
        "4 archive records checked (their files read whole), 0 journal files read whole, "
        "1 problem" in done.stdout
    )


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    batch=st.integers(1, 30),
    least=st.integers(1, 25),
    most=st.integers(25, 60),
)
def test_row_groups_end_with_a_symbol(runs: list[int], batch: int, least: int, most: int) -> None:
    """Rows of symbols in order, in batches: each row group ends with a symbol's rows once it
    holds ``least``, never holds more than ``most``, and the rows come back in order."""
    symbols = [f"{n:06d}" for n, count in enumerate(runs) for _ in range(count)]
    rows = pa.table({"symbol": symbols, "n": list(range(len(symbols)))})
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, rows.schema) as writer:
        groups = _SymbolGroups(writer, most, least)
        for part in rows.to_batches(max_chunksize=batch):
            groups.add(part)
        groups.flush()
    written = pq.ParquetFile(io.BytesIO(sink.getvalue()))
    assert written.read().equals(rows)
    first = 0
    for g in range(written.num_row_groups):
        held = written.metadata.row_group(g).num_rows
        assert 0 < held <= most
        inside = symbols[first : first + held]
        after = symbols[first + held] if first + held < len(symbols) else None
        if held < most and after is not None:  # ended for a symbol's end, not for its size
            assert after != inside[-1] and held >= least
        # a symbol boundary inside a group only while it held fewer than ``least`` rows
        for n in range(1, held):
            if inside[n] != inside[n - 1]:
                assert n < least
        first += held
    assert first == len(symbols)
