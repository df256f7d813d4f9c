"""``observer bench data``: `observer.data`'s reads against the floors measured in the same run.

A real-size day of ticks (``ticks`` over ``symbols``, the busiest holding ``busiest`` of them,
interleaved in time as a market's are) is committed through the writer's store into a scratch
database (SQLite, or PostgreSQL with ``--db postgres``) and archived as the archive job does.
Then, for the median and the busiest symbol, the best of ``rounds``:

* from the database, `Catalog.ticks` against the bare query of the same rows and columns into
  Arrow over the same driver (ADBC): the price of one schema and its types;
* from the archive (its database empty), `Catalog.ticks` against pyarrow reading a file that
  holds only that symbol's rows: the price of the archive's layout;

and the archive's bytes per tick.
"""

from __future__ import annotations

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
import pyarrow.parquet as pq

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
from observer.db.retention_queries import ARCHIVED_TABLES, day_bounds
from observer.db.scratch import scratch_postgres
from observer.writer.store import Store

__all__ = ["DataBenchReport", "run_data_bench"]

DAY = date(2026, 11, 20)  # a Friday session
_FRAME = 2_000  # events per frame the store applies
_SESSION_NS = 23_400 * 10**9  # 09:00-15:30
# The targets: at most these multiples of the floor (and 150 ms from the database).
ARCHIVE_RATIO_MAX = 2.0
DATABASE_RATIO_MAX = 3.0
DATABASE_MS_MAX = 150.0


@dataclass
class DataBenchReport:
    """Figures of one run: milliseconds by read, best of the rounds."""

    db: str
    ticks: int
    symbols: int
    load_s: float = 0.0
    archive_bytes: int = 0
    reads: dict[str, dict[str, float]] = field(default_factory=dict)  # what -> ms and floor

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        return {
            "db": self.db,
            "ticks": self.ticks,
            "symbols": self.symbols,
            "load_s": round(self.load_s, 1),
            "archive_bytes_per_tick": round(self.archive_bytes / self.ticks, 1),
            "reads": self.reads,
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
        return lines


def run_data_bench(
    ticks: int = 800_000,
    symbols: int = 200,
    busiest: int = 130_000,
    rounds: int = 5,
    db: str = "sqlite",
) -> DataBenchReport:
    """Load, archive and read a day; see the module."""
    report = DataBenchReport(db=db, ticks=ticks, symbols=symbols)
    with tempfile.TemporaryDirectory(prefix="observer-bench-data-") as tmp:
        folder = Path(tmp)
        with _databases(db, folder) as (full, empty):
            counts = _counts(ticks, symbols, busiest)
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
    return report


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


def _counts(ticks: int, symbols: int, busiest: int) -> dict[str, int]:
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
