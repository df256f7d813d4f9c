"""``observer bench data``: `observer.data`'s reads against the floors measured in the same run.

A real-size day of ticks (``ticks`` over ``symbols``, the busiest holding ``busiest`` of them,
interleaved in time as a market's are) is committed through the writer's store into a scratch
database (SQLite, or PostgreSQL with ``--db postgres``) and archived as the archive job does.
Then, for the median and the busiest symbol, the best of ``rounds``:

* from the database, `Catalog.ticks` against the bare query of the same rows and columns into
  Arrow over the same driver (ADBC): the price of one schema and its types;
* from the archive (its database empty), `Catalog.ticks` against pyarrow reading a file that
  holds only that symbol's rows: the price of the archive's layout;

and the archive's bytes per tick. Then a day of ``books`` order books over the same symbols is
stored as revision 0024 stored them (levels as JSON arrays), the mean best spread of every
symbol queried in SQL, the database migrated (levels as columns, the top of the book in the
symbol's index: its duration reported) and the same query run again: the JSON text's cost
against the columns' (on PostgreSQL each after a ``VACUUM ANALYZE``, as autovacuum leaves a
written day). The same comparison over
the day's archive: its files as the archive job writes them, against the same rows with
their levels as JSON text (revision 0024's layout), each read and reduced by pyarrow alone.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import TradeTick
from harness.bench.bus import POSTGRES_ADMIN_URL
from harness.loadgen import synthetic_tick
from observer.data import Catalog
from observer.data.datasets import TICKS
from observer.db import migrate
from observer.db.archive import write_day
from observer.db.engine import make_engine
from observer.db.models import BOOK_DEPTH, BOOK_LEVEL_COLUMNS
from observer.db.retention_queries import ARCHIVED_TABLES, day_bounds
from observer.db.scratch import scratch_postgres
from observer.writer.store import Store

__all__ = ["DataBenchReport", "day_counts", "run_data_bench"]

DAY = date(2026, 11, 20)  # a Friday session
_FRAME = 2_000  # events per frame the store applies
_SESSION_NS = 23_400 * 10**9  # 09:00-15:30
# The targets: at most these multiples of the floor (and 150 ms from the database).
ARCHIVE_RATIO_MAX = 2.0
DATABASE_RATIO_MAX = 3.0
DATABASE_MS_MAX = 150.0
SPREAD_SPEEDUP_MIN = 10.0  # the columns' best-spread query against the JSON text's
_JSON_REVISION = "0024"  # the last revision that stored a book's levels as JSON arrays


@dataclass
class DataBenchReport:
    """Figures of one run: milliseconds by read, best of the rounds."""

    db: str
    ticks: int
    symbols: int
    load_s: float = 0.0
    archive_bytes: int = 0
    reads: dict[str, dict[str, float]] = field(default_factory=dict)  # what -> ms and floor
    spread: dict[str, float] = field(default_factory=dict)  # books: columns against JSON

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        return {
            "db": self.db,
            "ticks": self.ticks,
            "symbols": self.symbols,
            "load_s": round(self.load_s, 1),
            "archive_bytes_per_tick": round(self.archive_bytes / self.ticks, 1),
            "reads": self.reads,
            "spread": self.spread,
        }

    def lines(self) -> list[str]:
        """Human-readable report, each read beside its floor and the ratio's target."""
        lines = [
            f"data bench ({self.db}): {self.ticks:,} ticks of {self.symbols} symbols loaded in "
            f"{self.load_s:.1f} s; archive {self.archive_bytes / self.ticks:.1f} bytes per tick"
        ]
        for what, read in self.reads.items():
            target = ARCHIVE_RATIO_MAX if what.startswith("archive") else DATABASE_RATIO_MAX
            lines.append(
                f"  {what:<28} {read['rows']:>8,.0f} rows {read['ms']:8.1f} ms, floor "
                f"{read['floor_ms']:7.1f} ms: {read['ratio']:5.2f}x (target <= {target:g}x)"
            )
        if self.spread:
            spread = self.spread
            lines.append(
                f"  books: {spread['books']:,.0f} of a day, migrated to level columns in "
                f"{spread['migration_s']:.1f} s; every symbol's mean best spread"
            )
            for where in ("database", "archive"):
                lines.append(
                    f"    {where + ',':<9} {spread[where + '_columns_ms']:8.1f} ms over columns, "
                    f"{spread[where + '_json_ms']:8.1f} ms over JSON text: "
                    f"{spread[where + '_speedup']:5.1f}x (target >= {SPREAD_SPEEDUP_MIN:g}x)"
                )
        return lines


def run_data_bench(
    ticks: int = 800_000,
    symbols: int = 200,
    busiest: int = 130_000,
    rounds: int = 5,
    db: str = "sqlite",
    books: int = 300_000,
) -> DataBenchReport:
    """Load, archive and read a day; see the module."""
    report = DataBenchReport(db=db, ticks=ticks, symbols=symbols)
    with tempfile.TemporaryDirectory(prefix="observer-bench-data-") as tmp:
        folder = Path(tmp)
        with _databases(db, folder) as (full, empty):
            counts = day_counts(ticks, symbols, busiest)
            started = time.monotonic()
            _load(full, counts)
            report.load_s = time.monotonic() - started
            root = folder / "archive"
            engine = make_engine(full)
            try:
                with engine.connect() as conn:
                    written = write_day(conn, ARCHIVED_TABLES["trade_ticks"], DAY, root, 50_000)
            finally:
                engine.dispose()
            assert written is not None
            report.archive_bytes = written.bytes
            ranked = sorted(counts, key=counts.__getitem__)
            chosen = {"median": ranked[len(ranked) // 2], "busiest": ranked[-1]}
            with (
                Catalog(full, folder / "no-archive") as from_db,
                Catalog(empty, root) as from_archive,
            ):
                _measure(report, folder, chosen, from_db, from_archive, rounds)
        if books:
            with _json_era_database(db, folder) as url:
                report.spread = _spread(url, list(counts), books, rounds)
                report.spread |= _archived_spread(url, folder, rounds)
    return report


@contextmanager
def _json_era_database(db: str, folder: Path) -> Iterator[str]:
    """A database at the revision that stored a book's levels as JSON arrays."""
    if db == "sqlite":
        url = f"sqlite:///{folder / 'books.db'}"
        migrate.upgrade(url, _JSON_REVISION)
        yield url
        return
    with scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_books") as url:
        migrate.upgrade(url, _JSON_REVISION)
        yield url


def _spread(url: str, symbols: list[str], books: int, rounds: int) -> dict[str, float]:
    """The mean best spread of every symbol, over JSON arrays, then over level columns."""
    _load_json_books(url, symbols, books)
    postgres = url.startswith("postgresql")
    best = "({0}->>0)::bigint" if postgres else "json_extract({0}, '$[0]')"
    over_json = (
        f"SELECT symbol, avg({best.format('ask_prices')} - {best.format('bid_prices')}) "  # noqa: S608
        "FROM order_books GROUP BY symbol ORDER BY symbol"
    )
    over_columns = (
        "SELECT symbol, avg(ask_price_1 - bid_price_1) FROM order_books "
        "GROUP BY symbol ORDER BY symbol"
    )
    _vacuumed(url)
    json_ms, by_json = _best_of(url, over_json, rounds)
    started = time.monotonic()
    migrate.upgrade(url)
    migration_s = time.monotonic() - started
    _vacuumed(url)
    columns_ms, by_columns = _best_of(url, over_columns, rounds)
    if [(s, round(float(v), 6)) for s, v in by_json] != [
        (s, round(float(v), 6)) for s, v in by_columns
    ]:
        raise AssertionError("the migrated columns give other spreads than the JSON arrays")
    return {
        "books": books,
        "migration_s": round(migration_s, 2),
        "database_json_ms": round(json_ms, 2),
        "database_columns_ms": round(columns_ms, 2),
        "database_speedup": round(json_ms / columns_ms, 1),
    }


def _vacuumed(url: str) -> None:
    """On PostgreSQL, the books as autovacuum leaves a day's partition once it is written.

    Its visibility map set, an index-only scan (the top of the book, revision 0036) reads
    no row (at once after the load: 174 ms, 63 ms so); its statistics for the planner.
    """
    if not url.startswith("postgresql"):
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE order_books")
    finally:
        engine.dispose()


def _archived_spread(url: str, folder: Path, rounds: int) -> dict[str, float]:
    """The same spreads over the day's archive files, and over its rows with JSON levels.

    The day's books as the archive job writes them, against the same rows with their levels
    as JSON text.
    """
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            written = write_day(conn, ARCHIVED_TABLES["order_books"], DAY, folder / "books", 50_000)
    finally:
        engine.dispose()
    assert written is not None
    as_columns = folder / "books" / written.path  # books: one file a day (`archive_layout`)
    as_json = folder / "books-json.parquet"
    current = pq.read_table(as_columns)
    older = current.drop_columns(list(BOOK_LEVEL_COLUMNS))
    for group, array in enumerate(("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")):
        names = BOOK_LEVEL_COLUMNS[group * BOOK_DEPTH : (group + 1) * BOOK_DEPTH]
        levels = zip(*(current[name].to_pylist() for name in names), strict=True)
        texts = [json.dumps([v for v in side if v is not None]) for side in levels]
        older = older.append_column(array, pa.array(texts, pa.string()))
    pq.write_table(older, as_json, compression="zstd", row_group_size=50_000)
    json_ms, by_json = _best_read(partial(_spread_of_json, as_json), rounds)
    columns_ms, by_columns = _best_read(partial(_spread_of_columns, as_columns), rounds)
    if not by_json.equals(by_columns):
        raise AssertionError("the archive's columns give other spreads than its JSON text")
    return {
        "archive_json_ms": round(json_ms, 2),
        "archive_columns_ms": round(columns_ms, 2),
        "archive_speedup": round(json_ms / columns_ms, 1),
    }


def _best_read(read: Callable[[], pa.Table], rounds: int) -> tuple[float, pa.Table]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        found = read()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, found


def _spread_of_columns(path: Path) -> pa.Table:
    day = pq.read_table(path, columns=["symbol", "ask_price_1", "bid_price_1"])
    spread = pc.subtract(day["ask_price_1"], day["bid_price_1"])
    return _mean_by_symbol(day["symbol"], spread)


def _spread_of_json(path: Path) -> pa.Table:
    """The best level of each side out of its JSON text, vectorised (no Python per row)."""
    day = pq.read_table(path, columns=["symbol", "ask_prices", "bid_prices"])
    best = [
        pc.struct_field(pc.extract_regex(day[side], r"^\[(?P<best>-?\d+)"), "best").cast(pa.int64())
        for side in ("ask_prices", "bid_prices")
    ]
    return _mean_by_symbol(day["symbol"], pc.subtract(best[0], best[1]))


def _mean_by_symbol(symbols: pa.ChunkedArray, spread: pa.ChunkedArray) -> pa.Table:
    table = pa.table({"symbol": symbols, "spread": spread})
    return table.group_by("symbol").aggregate([("spread", "mean")]).sort_by("symbol")


def _best_of(url: str, sql: str, rounds: int) -> tuple[float, list[Any]]:
    """The query's best time of ``rounds`` in ms, and its rows."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            times = []
            rows: list[Any] = []
            for _ in range(rounds):
                started = time.perf_counter()
                rows = list(conn.exec_driver_sql(sql).all())
                times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return min(times) * 1000, rows


def _load_json_books(url: str, symbols: list[str], books: int) -> None:
    """``books`` ten-level books over ``symbols``, stored as revision 0024 stored them."""
    arrays = ("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")
    table = sa.table(
        "order_books",
        *(sa.column(c) for c in _BOOK_COLUMNS),
        *(sa.column(c, sa.JSON()) for c in arrays),
    )
    start = day_bounds(DAY)[0] + 9 * 3600 * 10**9
    step = _SESSION_NS // books
    draw = random.Random(2)
    engine = make_engine(url, durable=False)
    try:
        for first in range(0, books, _FRAME * 5):
            rows = []
            for n in range(first, min(first + _FRAME * 5, books)):
                bid = 10_000 + 10 * draw.randrange(1_000)
                asks = [bid + 10 * (level + draw.randrange(1, 3)) for level in range(BOOK_DEPTH)]
                bids = [bid - 10 * level for level in range(BOOK_DEPTH)]
                quantities = [draw.randrange(1, 5_000) for _ in range(BOOK_DEPTH)]
                at = start + n * step
                rows.append(
                    {
                        "source": "track_b",
                        "seq": n + 1,
                        "produced_ns": at,
                        "symbol": symbols[n % len(symbols)],
                        "exchange_ns": at,
                        "received_ns": at,
                        "total_ask_qty": sum(quantities),
                        "total_bid_qty": sum(quantities),
                        "expected_price": 0,
                        "expected_qty": 0,
                        "account": "bench",
                        "ask_prices": asks,
                        "ask_qtys": quantities,
                        "bid_prices": bids,
                        "bid_qtys": quantities,
                    }
                )
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


_BOOK_COLUMNS = (
    "source",
    "seq",
    "produced_ns",
    "symbol",
    "exchange_ns",
    "received_ns",
    "total_ask_qty",
    "total_bid_qty",
    "expected_price",
    "expected_qty",
    "account",
)


def _measure(
    report: DataBenchReport,
    folder: Path,
    chosen: dict[str, str],
    from_db: Catalog,
    from_archive: Catalog,
    rounds: int,
) -> None:
    """Each chosen symbol's day from the database and from the archive, and their floors."""
    for name, symbol in chosen.items():
        report.reads[f"database, {name} symbol"] = _compare(
            partial(_day_rows, from_db, symbol), partial(_bare_query, from_db, symbol), rounds
        )
        alone = folder / f"{symbol}.parquet"
        pq.write_table(from_archive.ticks(symbol, DAY), alone, compression="zstd")
        report.reads[f"archive, {name} symbol"] = _compare(
            partial(_day_rows, from_archive, symbol), partial(_file_rows, alone), rounds
        )


def _compare(read: Callable[[], int], floor: Callable[[], int], rounds: int) -> dict[str, float]:
    """The best of ``rounds`` of each, alternated (a busy moment costs both alike)."""
    times: list[float] = []
    floors: list[float] = []
    rows = 0
    for _ in range(rounds):
        started = time.perf_counter()
        rows = read()
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        floor_rows = floor()
        floors.append(time.perf_counter() - started)
        if floor_rows != rows:
            raise AssertionError(f"the floor read {floor_rows} rows, the catalog {rows}")
    best, best_floor = min(times) * 1000, min(floors) * 1000
    return {
        "rows": rows,
        "ms": round(best, 2),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "floor_ms": round(best_floor, 2),
        "ratio": round(best / best_floor, 2),
    }


def _day_rows(catalog: Catalog, symbol: str) -> int:
    rows: int = catalog.ticks(symbol, DAY).num_rows
    return rows


def _file_rows(path: Path) -> int:
    rows: int = pq.read_table(path).num_rows
    return rows


def _bare_query(catalog: Catalog, symbol: str) -> int:
    """The same rows and columns, straight from the driver into Arrow, nothing converted."""
    lo, hi = day_bounds(DAY)
    reader = catalog.database
    marks = [reader.placeholder(n) for n in (1, 2, 3)]
    sql = (
        f"SELECT {', '.join(TICKS.stored)} FROM trade_ticks WHERE symbol = {marks[0]} "  # noqa: S608
        f"AND exchange_ns >= {marks[1]} AND exchange_ns < {marks[2]}"
    )
    rows: int = reader.query(sql, (symbol, lo, hi)).num_rows
    return rows


@contextmanager
def _databases(db: str, folder: Path) -> Iterator[tuple[str, str]]:
    """A database to fill and an empty one (the archive's reads), both migrated."""
    if db == "sqlite":
        full, empty = f"sqlite:///{folder / 'full.db'}", f"sqlite:///{folder / 'empty.db'}"
        for url in (full, empty):
            migrate.upgrade(url)
        yield full, empty
        return
    with (
        scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_data") as full,
        scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_data_empty") as empty,
    ):
        for url in (full, empty):
            migrate.upgrade(url)
        yield full, empty


def day_counts(ticks: int, symbols: int, busiest: int) -> dict[str, int]:
    """Ticks per symbol: the busiest ``busiest``, the rest shared, the smaller ones less."""
    rest = ticks - busiest
    weights = [1 / (n + 1) ** 0.5 for n in range(symbols - 1)]
    scale = rest / sum(weights)
    counts = {f"{100_000 + n:06d}": max(1, int(w * scale)) for n, w in enumerate(weights)}
    counts["005930"] = busiest
    return counts


def _load(url: str, counts: dict[str, int]) -> None:
    """Commit the day's ticks through the writer's store, interleaved in time."""
    order = [symbol for symbol, n in counts.items() for _ in range(n)]
    random.Random(1).shuffle(order)
    start = day_bounds(DAY)[0] + 9 * 3600 * 10**9
    step = _SESSION_NS // len(order)
    engine = make_engine(url, durable=False)
    try:
        store = Store(engine)
        store.load_marks()
        for first in range(0, len(order), _FRAME):
            events = []
            for n in range(first, min(first + _FRAME, len(order))):
                tick = synthetic_tick(n, start + n * step)
                events.append(_as_symbol(tick, order[n]))
            envelopes = [Envelope("track_b", first + i + 1, start, e) for i, e in enumerate(events)]
            store.apply([decode_parts(encode_frame(envelopes))])
    finally:
        engine.dispose()


def _as_symbol(tick: TradeTick, symbol: str) -> TradeTick:
    return msgspec.structs.replace(tick, symbol=symbol)
