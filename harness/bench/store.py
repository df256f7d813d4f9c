"""``observer bench store``: the writer's commit path on PostgreSQL with a month of ticks stored.

The writer's commit path (`Store.apply`, batches of 20,000 events) runs in turns on two scratch
databases of the same server, one empty and one preloaded with ``preload`` ticks over the days
before today; the ratio full / empty is the figure. Then, on the full one: a day archived, that
day pruned by the writer's pruner (the pause it costs), and ``observer db backup``
(`run_store_bench`).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bus.codec import BusFrame, decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import PruneRequested
from harness.bench.bus import POSTGRES_ADMIN_URL
from harness.loadgen import synthetic_tick
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.archive import write_day
from observer.db.backup import make_backup
from observer.db.engine import make_engine
from observer.db.retention_queries import ARCHIVED_TABLES, day_bounds
from observer.db.scratch import scratch_postgres
from observer.writer.partitions import Partitions
from observer.writer.retention import Pruner
from observer.writer.store import Store

__all__ = ["StoreBenchReport", "run_store_bench"]

_BATCH = 20_000  # events per transaction, the writer's batch_events
_FRAME = 1_000  # events per frame, a producer's batch
_SESSION_NS = 23_400 * 10**9  # 09:00-15:30


@dataclass
class StoreBenchReport:
    """Figures of one run."""

    preload: int
    events: int
    plain: bool = False  # the preloaded table is not partitioned
    preload_s: float = 0.0
    empty_per_s: list[float] = field(default_factory=list)
    full_per_s: list[float] = field(default_factory=list)
    archive: dict[str, Any] = field(default_factory=dict)
    prune: dict[str, Any] = field(default_factory=dict)
    backup: dict[str, Any] = field(default_factory=dict)
    table_bytes: int = 0

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        empty, full = statistics.median(self.empty_per_s), statistics.median(self.full_per_s)
        return {
            "preload": self.preload,
            "events": self.events,
            "plain": self.plain,
            "preload_s": round(self.preload_s, 1),
            "table_bytes": self.table_bytes,
            "empty_per_s": [round(r) for r in self.empty_per_s],
            "full_per_s": [round(r) for r in self.full_per_s],
            "ratio": round(full / empty, 3),
            "archive": self.archive,
            "prune": self.prune,
            "backup": self.backup,
        }

    def lines(self) -> list[str]:
        """Human-readable report."""
        s = self.summary()
        kind = "one unpartitioned table (0012)" if self.plain else "day partitions"
        return [
            f"store bench (PostgreSQL): {self.preload:,} ticks preloaded in {s['preload_s']} s "
            f"into {kind} ({self.table_bytes / 1e9:.2f} GB with indexes), "
            f"{self.events:,} events a run",
            f"  writer commit path, empty tables   {s['empty_per_s']} events/s",
            f"  writer commit path, preloaded      {s['full_per_s']} events/s",
            f"  ratio preloaded / empty (medians)  {s['ratio']}",
            *(
                []
                if self.plain
                else [
                    f"  archive of one day: {self.archive}",
                    f"  prune of that day (partition drop): {self.prune}",
                    f"  backup (pg_dump -Fc, verified by restore): {self.backup}",
                ]
            ),
        ]


def run_store_bench(
    preload: int, events: int, per_day: int, rounds: int, backup: bool = True, plain: bool = False
) -> StoreBenchReport:
    """Preload, measure the commit path in turns, archive, prune and back up; see the module.

    Both databases are migrated (day partitions); the preload, ``per_day`` ticks a day, is
    written with ``generate_series`` straight into the day partitions, not through the bus.
    Each of ``rounds`` turns commits today's ticks (decode, rows, ``COPY``, marks and digests
    in one transaction). The backup is ``pg_dump -Fc`` and its verification by restoring it.

    With ``plain`` the preloaded database stays at the schema before partitioning (0012):
    the same runs against one unpartitioned table, for comparison (no archive, prune or
    backup then).
    """
    report = StoreBenchReport(preload=preload, events=events, plain=plain)
    today = datetime.now(KST).date()
    with (
        scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_empty") as empty_url,
        scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench_full") as full_url,
        tempfile.TemporaryDirectory(prefix="observer-bench-store-") as tmp,
    ):
        stores = {}
        for name, url in (("empty", empty_url), ("full", full_url)):
            unpartitioned = plain and name == "full"
            migrate.upgrade(url, "0012" if unpartitioned else "head")
            stores[name] = Store(make_engine(url))
            stores[name].load_marks()
            if not unpartitioned:
                Partitions(stores[name].engine, 1).maintain(today)
        try:
            started = time.monotonic()
            days = _preload(stores["full"].engine, preload, per_day, today, not plain)
            report.preload_s = time.monotonic() - started
            report.table_bytes = _table_bytes(stores["full"].engine)
            for store in stores.values():  # warm up: first statements, caches
                _commit_rate(store, "warm-up", _BATCH)
            if plain:
                for n in range(rounds):
                    report.empty_per_s.append(_commit_rate(stores["empty"], f"b-{n}", events))
                    report.full_per_s.append(_commit_rate(stores["full"], f"b-{n}", events))
                return report
            for n in range(rounds):
                report.empty_per_s.append(_commit_rate(stores["empty"], f"b-{n}", events))
                report.full_per_s.append(_commit_rate(stores["full"], f"b-{n}", events))
            day = days[len(days) // 2]
            report.archive, report.prune = _archive_and_prune(stores["full"], day, Path(tmp))
            if backup:
                report.backup = _backup(full_url, Path(tmp))
        finally:
            for store in stores.values():
                store.engine.dispose()
    return report


def _preload(
    engine: Engine, total: int, per_day: int, today: date, partitioned: bool
) -> list[date]:
    """``total`` ticks over the weekdays before ``today``, one INSERT per day (partition)."""
    days: list[date] = []
    day = today
    while len(days) * per_day < total:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    keeper = Partitions(engine, 0)
    first = 1
    for day in reversed(days):
        if partitioned:
            keeper.ensure(ARCHIVED_TABLES["trade_ticks"], day)
        count = min(per_day, total - first + 1)
        opens = day_bounds(day)[0] + 9 * 3600 * 10**9
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO trade_ticks (symbol, exchange_ns, received_ns, price, qty, "
                    "cum_volume, cum_value, change_rate, ask1, bid1, strength, side, session, "
                    "halted, account, source, seq, produced_ns) "
                    "SELECT lpad((5930 + g % 800)::text, 6, '0'), t, t + 3000000, "
                    "70000 + g * 37 % 5000, 1 + g % 97, g * 50, g * 50 * 70000, "
                    "((g % 300) - 150) / 100.0, 70100, 70000, 101.25, '1', 'regular', false, "
                    "'acct1', 'preload', g, t + 5000000 "
                    "FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g, "
                    "LATERAL (SELECT :opens + (g - :first) * :step AS t) x"
                ),
                {
                    "first": first,
                    "last": first + count - 1,
                    "opens": opens,
                    "step": _SESSION_NS // per_day,
                },
            )
        first += count
    with engine.begin() as conn:  # the mark the audit (and a backup's check) expects
        conn.execute(
            text("INSERT INTO bus_offsets (source, seq, updated_ns) VALUES ('preload', :n, 0)"),
            {"n": total},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) trade_ticks"))  # a month-old table is vacuumed
    return days


def _table_bytes(engine: Engine) -> int:
    """``trade_ticks`` with its indexes (its partitions', when it has some)."""
    with engine.connect() as conn:
        query = text(
            "SELECT pg_total_relation_size('trade_ticks') + coalesce(sum("
            "pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'trade_ticks'::regclass"
        )
        return int(conn.execute(query).scalar_one())


def _frames(source: str, events: int) -> list[list[BusFrame]]:
    """Today's ticks as the writer receives them: frames of 1,000, batches of 20,000."""
    now = time.time_ns()
    envelopes = [Envelope(source, n + 1, now, synthetic_tick(n, now + n)) for n in range(events)]
    frames = [
        decode_parts(encode_frame(envelopes[i : i + _FRAME])) for i in range(0, events, _FRAME)
    ]
    per = _BATCH // _FRAME
    return [frames[i : i + per] for i in range(0, len(frames), per)]


def _commit_rate(store: Store, source: str, events: int) -> float:
    batches = _frames(source, events)  # encoded beforehand: only the writer's part is timed
    started = time.perf_counter()
    for batch in batches:
        store.apply(batch)
    return events / (time.perf_counter() - started)


def _archive_and_prune(
    store: Store, day: date, root: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = ARCHIVED_TABLES["trade_ticks"]
    with store.engine.connect() as conn:
        written = write_day(conn, spec, day, root, 50_000)
    assert written is not None
    archive = {
        "rows": written.rows,
        "seconds": written.elapsed_ms / 1000,
        "bytes": written.bytes,
        "arrow_bytes": written.raw_bytes,
        "ratio": round(written.raw_bytes / written.bytes, 2),
    }
    request = PruneRequested(
        table=spec.name, trade_date=day, rows=written.rows, sha256=written.sha256
    )
    now = time.time_ns()
    envelopes = [Envelope("archive", 1, now, written.event()), Envelope("archive", 2, now, request)]
    store.apply([decode_parts(encode_frame(envelopes))])
    pruner = Pruner(store, 1_000)
    assert pruner.partitions is not None
    pruner.partitions.next_at = float("inf")  # the prune alone is timed
    steps: list[float] = []
    while pruner.pending():
        started = time.perf_counter()
        pruner.step()
        steps.append(time.perf_counter() - started)
    return archive, {
        "rows": pruner.pruned,
        "steps": len(steps),
        "longest_step_ms": round(max(steps) * 1000, 1),
    }


def _backup(url: str, tmp: Path) -> dict[str, Any]:
    config = tmp / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp / "data"}"\nrun_dir = "{tmp / "run"}"\n'
        f'[database]\nurl = "{url}"\n[backup]\ndir = "{tmp / "backups"}"\n'
    )
    started = time.monotonic()
    dump = tmp / "alone.pgdump"  # pg_dump alone, then the whole command (dump and verify)
    subprocess.run(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            f"--file={dump}",
            url.replace("postgresql+psycopg://", "postgresql://"),
        ],
        check=True,
    )
    dumped = time.monotonic() - started
    dump.unlink()
    started = time.monotonic()
    made = make_backup(load_settings(config), config)
    part = next(part for part in made.parts if part.name == "database.pgdump")
    return {
        "pg_dump_s": round(dumped, 1),
        "backup_s": round(time.monotonic() - started, 1),
        "dump_bytes": part.size,
    }
