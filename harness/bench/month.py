"""``observer bench month``: a month of real-size days stored, archived, pruned and read back.

``days`` trading days (weekdays from `FIRST_DAY`), each of ``ticks`` trades over ``symbols``
(the busiest holding ``busiest``: `observer bench data`'s day) and ``snapshots`` of Track A's
(a cycle of ``universe`` names every ten minutes from 08:00), are committed through the
writer's store into a scratch database (SQLite, or PostgreSQL with ``db="postgres"``). Each
night runs the archive job's own code (`workers.archive.job.archive_day` and
`keep_retention`, the trades' and books' retention ``keep_days`` calendar days, the snapshots'
the shipped 0: kept) and the writer's `Pruner` on what it asked, as the writer runs it (on
PostgreSQL, each day's partitions made before it, as the writer makes them days ahead). After
each day: the database's bytes, the day's archive bytes, the load and the night's times, and,
best of ``rounds``, the median symbol's day read (`Catalog.ticks`: from the database while
the day is kept, then from the archive) and that symbol over every day so far (both
together). The raw journal too: each trade as Track B's would journal its frame (an H0STCNT0
frame of one record, `harness.bench.journal.trade_frame`, through `Journal` itself), its day's
bytes, and its days older than ``keep_days`` removed each night (`keep_journal`, as the
archive job does; the shipped `[kis.journal] keep_days` is 30).
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Event, PriceSnapshot, TradeTick
from harness.bench.bus import POSTGRES_ADMIN_URL
from harness.bench.data import day_counts
from harness.bench.journal import trade_frame
from harness.loadgen import synthetic_tick
from observer.config.tree import Settings
from observer.config.workers import RetentionSettings
from observer.data import Catalog
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.retention_queries import day_bounds
from observer.db.scratch import scratch_postgres
from observer.kis.journal import KST, Journal
from observer.writer.retention import Pruner
from observer.writer.store import Store
from workers.archive.job import ArchiveOutcome, archive_day, keep_journal, keep_retention

__all__ = ["FIRST_DAY", "HEADER", "MonthBenchReport", "MonthDay", "run_month_bench"]

FIRST_DAY = date(2026, 10, 5)  # a Monday; the month's days are the weekdays from it
_FRAME = 2_000  # events per frame the store applies
_OPEN_NS, _CLOSE_NS = 8 * 3600 * 10**9, 20 * 3600 * 10**9  # both venues' day, KST
_CYCLE_NS = 600 * 10**9  # Track A's cycle


@dataclass
class MonthDay:
    """One day's figures, taken after its night."""

    day: date
    load_s: float
    night_s: float  # archive, retention and the writer's pruning
    db_bytes: int
    archive_bytes: int  # the day's files
    journal_bytes: int  # the day's raw journal
    journal_kept: int  # the journal's bytes on disk after the night
    pruned_rows: int  # deleted that night (an older day's)
    day_ms: float  # the median symbol's day
    month_ms: float  # the median symbol, every day so far
    month_rows: int

    def line(self) -> str:
        """The day's row under `HEADER`."""
        return (
            f"  {self.day}  {self.load_s:6.1f}  {self.night_s:7.1f}  "
            f"{self.db_bytes / 1e6:12.1f}  {self.archive_bytes / 1e6:10.1f}  "
            f"{self.journal_bytes / 1e6:10.1f}  {self.journal_kept / 1e6:10.1f}  "
            f"{self.pruned_rows:9,}  {self.day_ms:7.1f}  {self.month_ms:8.1f}  "
            f"{self.month_rows:10,}"
        )


HEADER = (
    "  day         load s  night s   database MB  archive MB  journal MB     kept MB     "
    "pruned   day ms  month ms  month rows"
)


@dataclass
class MonthBenchReport:
    """The month's figures, a row a day (see the module)."""

    db: str
    ticks: int
    snapshots: int
    symbols: int
    keep_days: int
    symbol: str = ""  # the median symbol read
    day_rows: int = 0  # its ticks a day
    days: list[MonthDay] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        days = self.days
        return {
            "db": self.db,
            "days": len(days),
            "ticks_per_day": self.ticks,
            "snapshots_per_day": self.snapshots,
            "keep_days": self.keep_days,
            "archive_bytes_per_day": round(sum(d.archive_bytes for d in days) / len(days)),
            "journal_bytes_per_day": round(sum(d.journal_bytes for d in days) / len(days)),
            "journal_kept_bytes": [d.journal_kept for d in days],
            "db_bytes": [d.db_bytes for d in days],
            "load_s_per_day": round(sum(d.load_s for d in days) / len(days), 2),
            "night_s_per_day": round(sum(d.night_s for d in days) / len(days), 2),
            "day_ms": [round(d.day_ms, 1) for d in days],
            "month_ms": [round(d.month_ms, 1) for d in days],
            "month_rows": days[-1].month_rows,
            "day_rows": self.day_rows,
            "pruned_rows": [d.pruned_rows for d in days],
        }

    def lines(self) -> list[str]:
        """Human-readable: a row a day, then what grows and what stays flat."""
        out = [
            f"month bench ({self.db}): {len(self.days)} days of {self.ticks:,} ticks and "
            f"{self.snapshots:,} snapshots over {self.symbols} symbols; trades and books kept "
            f"{self.keep_days} days in the database, snapshots for ever; {self.symbol} read",
            HEADER,
            *(d.line() for d in self.days),
        ]
        first, last = self.days[0], self.days[-1]
        archived = sum(d.archive_bytes for d in self.days) / len(self.days)
        journaled = sum(d.journal_bytes for d in self.days) / len(self.days)
        out.append(
            f"  per day: archive {archived / 1e6:.1f} MB, journal {journaled / 1e6:.1f} MB "
            f"({last.journal_kept / 1e6:.1f} MB kept after the last); the database "
            f"{first.db_bytes / 1e6:.1f} MB after the first day, "
            f"{last.db_bytes / 1e6:.1f} MB after the last; the symbol's day "
            f"{first.day_ms:.1f} -> {last.day_ms:.1f} ms, its month {last.month_ms:.1f} ms "
            f"for {last.month_rows:,} rows"
        )
        return out


def run_month_bench(
    days: int = 20,
    ticks: int = 800_000,
    symbols: int = 200,
    busiest: int = 130_000,
    snapshots: int = 82_000,
    universe: int = 1_050,
    keep_days: int = 7,
    rounds: int = 3,
    db: str = "sqlite",
    progress: Callable[[MonthDay], object] | None = None,
) -> MonthBenchReport:
    """Store, archive, prune and read ``days`` days; see the module.

    ``progress`` hears each day's figures as they are taken.
    """
    report = MonthBenchReport(db, ticks, snapshots, symbols, keep_days)
    counts = day_counts(ticks, symbols, busiest)
    ranked = sorted(counts, key=counts.__getitem__)
    report.symbol = symbol = ranked[len(ranked) // 2]
    report.day_rows = counts[symbol]
    names = [f"{200_000 + n:06d}" for n in range(universe)]
    with tempfile.TemporaryDirectory(prefix="observer-bench-month-") as tmp:
        folder = Path(tmp)
        root, journal = folder / "archive", folder / "journal"
        retention = RetentionSettings(dir=str(root), trade_ticks=keep_days, order_books=keep_days)
        settings = msgspec.structs.replace(Settings(), retention=retention)
        with _database(db, folder) as url:
            engine = make_engine(url, durable=False)
            try:
                store = Store(engine)
                store.load_marks()
                pruner = Pruner(store, retention.chunk_rows)
                seqs: dict[str, int] = {}
                trading = list(_weekdays(FIRST_DAY, days))
                for day in trading:
                    if pruner.partitions is not None:  # PostgreSQL: the day's made ahead, as live
                        pruner.partitions.maintain(day)
                    started = time.monotonic()
                    _load_day(store, seqs, day, counts, names, snapshots)
                    loaded = time.monotonic()
                    journaled = _journal_day(journal, day, counts)
                    written = time.monotonic()
                    outcome, pruned = _night(engine, settings, root, store, seqs, pruner, day)
                    keep_journal(journal, keep_days, day, outcome)
                    night = time.monotonic()
                    with Catalog(url, root) as catalog:
                        day_ms, _ = _best(catalog, symbol, day, day, rounds)
                        month_ms, rows = _best(catalog, symbol, trading[0], day, rounds)
                    report.days.append(
                        figures := MonthDay(
                            day=day,
                            load_s=loaded - started,
                            night_s=night - written,
                            db_bytes=_db_bytes(engine, url),
                            archive_bytes=sum(w.bytes for w in outcome.written),
                            journal_bytes=journaled,
                            journal_kept=_bytes_under(journal),
                            pruned_rows=pruned,
                            day_ms=day_ms,
                            month_ms=month_ms,
                            month_rows=rows,
                        )
                    )
                    if progress is not None:
                        progress(figures)
            finally:
                engine.dispose()
    return report


@contextmanager
def _database(db: str, folder: Path) -> Iterator[str]:
    """A scratch database, migrated: a SQLite file in ``folder``, or PostgreSQL's."""
    if db == "sqlite":
        url = f"sqlite:///{folder / 'month.db'}"
        migrate.upgrade(url)
        yield url
        return
    with scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_month") as url:
        migrate.upgrade(url)
        yield url


def _weekdays(first: date, count: int) -> Iterator[date]:
    day = first
    while count:
        if day.weekday() < 5:
            yield day
            count -= 1
        day += timedelta(days=1)


def _ticks(day: date, counts: dict[str, int]) -> Iterator[TradeTick]:
    """The day's ticks, interleaved in time over 08:00-20:00 (the same at every call)."""
    order = [symbol for symbol, n in counts.items() for _ in range(n)]
    random.Random(day.toordinal()).shuffle(order)
    opened = day_bounds(day)[0] + _OPEN_NS
    step = (_CLOSE_NS - _OPEN_NS) // len(order)
    return (
        msgspec.structs.replace(synthetic_tick(n, opened + n * step), symbol=order[n])
        for n in range(len(order))
    )


def _load_day(
    store: Store,
    seqs: dict[str, int],
    day: date,
    counts: dict[str, int],
    names: list[str],
    snapshots: int,
) -> None:
    """Commit the day's ticks and its snapshots (a cycle every ten minutes from 08:00)."""
    _apply(store, seqs, "track_b", _ticks(day, counts))
    opened = day_bounds(day)[0] + _OPEN_NS
    cycles = max(1, snapshots // len(names))
    shots = (
        _snapshot(names[n % len(names)], opened + (n // len(names)) * _CYCLE_NS)
        for n in range(cycles * len(names))
    )
    _apply(store, seqs, "track_a", shots)


def _snapshot(symbol: str, at_ns: int) -> PriceSnapshot:
    price = 10_000 + int(symbol) % 5_000
    return PriceSnapshot(
        cycle_id=str(at_ns // 10**9),
        symbol=symbol,
        market="KOSPI",
        observed_ns=at_ns,
        price=price,
        change=50,
        change_rate=Decimal("0.5"),
        open=price - 50,
        high=price + 100,
        low=price - 100,
        volume=1_000_000,
        traded_value=price * 1_000_000,
        base_price=price - 50,
        upper_limit=(price - 50) * 13 // 10,
        lower_limit=(price - 50) * 7 // 10,
    )


def _apply(store: Store, seqs: dict[str, int], source: str, events: Iterator[Event]) -> None:
    """Commit ``events`` of ``source`` through the store, a frame at a time."""
    frame: list[Envelope] = []
    for event in events:
        seqs[source] = seq = seqs.get(source, 0) + 1
        frame.append(Envelope(source, seq, 0, event))
        if len(frame) == _FRAME:
            store.apply([decode_parts(encode_frame(frame))])
            frame = []
    if frame:
        store.apply([decode_parts(encode_frame(frame))])


def _journal_day(root: Path, day: date, counts: dict[str, int]) -> int:
    """The day's trades journaled as Track B's frames (one record each); the file's bytes."""
    rng = random.Random(day.toordinal())
    journal = Journal(root, "track_b")
    for tick in _ticks(day, counts):
        at = datetime.fromtimestamp(tick.exchange_ns / 1e9, KST)
        frame = trade_frame(rng, tick.symbol, at, tick.price, tick.qty)
        journal.frame("acct1", frame, tick.exchange_ns)
    path = journal.path
    journal.close()
    return 0 if path is None else path.stat().st_size


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _night(
    engine: sa.Engine,
    settings: Settings,
    root: Path,
    store: Store,
    seqs: dict[str, int],
    pruner: Pruner,
    day: date,
) -> tuple[ArchiveOutcome, int]:
    """The archive job's run after ``day`` and the writer's pruning; rows pruned."""
    sent: list[Event] = []
    outcome = archive_day(engine, settings.retention, root, day, sent.append)
    keep_retention(engine, settings.retention, root, day, sent.append, outcome)
    if outcome.failed or outcome.problems:
        raise RuntimeError(f"the archive job failed: {outcome.failed + outcome.problems}")
    _apply(store, seqs, "archive", iter(sent))
    before = pruner.pruned
    for _ in range(1_000_000):
        if not pruner.pending():
            break
        pruner.step()
    return outcome, pruner.pruned - before


def _best(catalog: Catalog, symbol: str, first: date, last: date, rounds: int) -> tuple[float, int]:
    """The best of ``rounds`` reads of ``symbol``'s days ``first``-``last`` (ms), its rows."""
    best, rows = float("inf"), 0
    for _ in range(rounds):
        started = time.perf_counter()
        rows = catalog.ticks(symbol, first, last).num_rows
        best = min(best, (time.perf_counter() - started) * 1000)
    return best, rows


def _db_bytes(engine: sa.Engine, url: str) -> int:
    """The database's size on disk: SQLite's file and its WAL, PostgreSQL's database."""
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    with engine.connect() as conn:
        size: int = conn.execute(
            sa.text("select pg_database_size(current_database())")
        ).scalar_one()
    return size
