"""``observer bench bus``: the bus and writer against raw baselines measured in the same run.

Throughput (producer processes -> one writer -> the database, audited after) and produce-to-feed
latency, over ipc and, with ``--endpoint tcp``, over loopback tcp with CURVE; against a bare
pyzmq+msgspec loop, bare storage of the same rows, the writer alone and this machine's CPU bound
(`run_bus_bench`). Everything runs as ``[bus] fsync`` says (``--fsync`` or ``--no-fsync``), so
the ratios compare like with like and two runs show what durability costs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil
import zmq
from sqlalchemy.engine import make_url

from bus.codec import decode_frame, encode_frame
from bus.curve import ClientCurve, generate_key_pair, load_key_pair, load_public_key
from bus.endpoints import Endpoints, local_endpoints
from bus.envelope import Envelope
from bus.events import TradeTick
from bus.feed import FeedSubscriber
from harness.bench.writer_alone import writer_alone
from harness.loadgen import synthetic_tick
from observer.calendar.phases import KST
from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.db.models import TradeTickRow
from observer.db.retention_queries import ARCHIVED_TABLES
from observer.db.scratch import scratch_postgres
from observer.errors import ConfigError
from observer.process.stats import percentile
from observer.runtime import poll_until
from observer.writer.partitions import Partitions

__all__ = ["BusBenchReport", "RawStore", "ServerCpu", "check_options", "run_bus_bench"]

POSTGRES_ADMIN_URL = os.environ.get(
    "OBSERVER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
_FRAME_EVENTS = 1000


@dataclass
class BusBenchReport:
    """Numbers of one run; `lines` for people, `summary` for machines."""

    db: str
    events: int
    producers: int
    events_per_s: float = 0.0
    transport_baseline_per_s: float = 0.0
    storage_baseline_per_s: float = 0.0
    # Events per CPU second: the writer process in the throughput run, and the storage
    # baseline's own process. Contention on a shared host stretches wall time far more than
    # CPU time, so this ratio shows the writer's cost beyond the store's even under load
    # (PostgreSQL: the client's side on both, the server's COPY work is the same).
    writer_cpu_per_s: float = 0.0
    storage_cpu_per_s: float = 0.0
    # CPU seconds per event of every process in the run (PostgreSQL: its server's too):
    # `cores` of them bound the rate this machine can reach.
    cores: int = 1
    bus_cpu_us: float = 0.0  # writer + producers + database server
    writer_cpu_us: float = 0.0
    producers_cpu_us: float = 0.0
    server_cpu_us: float = 0.0
    storage_total_cpu_us: float = 0.0  # the raw store: its client + database server
    # The writer's decode-and-commit path alone, on ready frames (`harness.bench.writer_alone`):
    # what bounds a store host whose producers run on other hosts.
    alone_per_s: float = 0.0
    alone_cpu_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    latency_rate: int = 0
    latency_s: float = 5.0  # how long the latency run sends
    latency_samples: int = 0
    writer_rss_mb: float = 0.0
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)
    endpoint: str = "ipc"
    tcp_events_per_s: float = 0.0  # with endpoint "tcp": the same runs over tcp+CURVE
    tcp_p50_ms: float = 0.0
    tcp_p99_ms: float = 0.0
    fsync: bool = True  # the writer, the producers' outboxes and the raw SQLite store flush

    @property
    def machine_bound_per_s(self) -> float:
        """The most events/s this machine's cores can carry at the bus's CPU per event."""
        return self.cores * 1e6 / self.bus_cpu_us if self.bus_cpu_us else 0.0

    @property
    def baseline_per_s(self) -> float:
        """The slower raw path bounds what the bus can reach: compare against it."""
        return min(self.transport_baseline_per_s, self.storage_baseline_per_s)

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        return {
            "db": self.db,
            "events": self.events,
            "producers": self.producers,
            "events_per_s": round(self.events_per_s),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "latency_rate": self.latency_rate,
            "baseline_per_s": round(self.baseline_per_s),
            "ratio": round(self.events_per_s / self.baseline_per_s, 3),
            "transport_baseline_per_s": round(self.transport_baseline_per_s),
            "transport_ratio": round(self.events_per_s / self.transport_baseline_per_s, 3),
            "storage_baseline_per_s": round(self.storage_baseline_per_s),
            "storage_ratio": round(self.events_per_s / self.storage_baseline_per_s, 3),
            "writer_cpu_per_s": round(self.writer_cpu_per_s),
            "storage_cpu_per_s": round(self.storage_cpu_per_s),
            "cpu_ratio": round(self.writer_cpu_per_s / self.storage_cpu_per_s, 3),
            "cores": self.cores,
            "bus_cpu_us": round(self.bus_cpu_us, 2),
            "writer_cpu_us": round(self.writer_cpu_us, 2),
            "producers_cpu_us": round(self.producers_cpu_us, 2),
            "server_cpu_us": round(self.server_cpu_us, 2),
            "storage_total_cpu_us": round(self.storage_total_cpu_us, 2),
            "machine_bound_per_s": round(self.machine_bound_per_s),
            "bound_ratio": round(self.events_per_s / self.machine_bound_per_s, 3)
            if self.machine_bound_per_s
            else 0.0,
            "bound_to_storage": round(self.machine_bound_per_s / self.storage_baseline_per_s, 3),
            "alone_per_s": round(self.alone_per_s),
            "alone_ratio": round(self.alone_per_s / self.storage_baseline_per_s, 3),
            "alone_cpu_ratio": round(self.alone_cpu_per_s / self.storage_cpu_per_s, 3),
            "writer_rss_mb": round(self.writer_rss_mb, 1),
            "lost": self.lost,
            "duplicated": self.duplicated,
            "endpoint": self.endpoint,
            "fsync": self.fsync,
        } | self._tcp_summary()

    def _tcp_summary(self) -> dict[str, Any]:
        if self.endpoint != "tcp":
            return {}
        return {
            "tcp_events_per_s": round(self.tcp_events_per_s),
            "tcp_p50_ms": round(self.tcp_p50_ms, 2),
            "tcp_p99_ms": round(self.tcp_p99_ms, 2),
            "tcp_to_ipc_ratio": round(self.tcp_events_per_s / self.events_per_s, 3),
        }

    def lines(self) -> list[str]:
        """Human-readable report."""
        s = self.summary()
        storage = "COPY into PostgreSQL" if self.db == "postgres" else "executemany into SQLite"
        return [
            f"bus bench: {self.events} events, {self.producers} producers, db={self.db}, "
            f"fsync={'on' if self.fsync else 'off'}",
            f"  bus (outbox+acks)   {s['events_per_s']:>10,} events/s",
            f"  raw pyzmq+msgspec   {s['transport_baseline_per_s']:>10,} events/s  "
            f"ratio {s['transport_ratio']}",
            f"  raw {storage:24}{s['storage_baseline_per_s']:>6,} events/s  "
            f"ratio {s['storage_ratio']}",
            f"  writer alone        {s['alone_per_s']:>10,} events/s  ratio {s['alone_ratio']} "
            f"(per CPU second {s['alone_cpu_ratio']}): its decode and commit of ready frames, "
            "one process, no producers beside it",
            f"  per CPU second: writer {s['writer_cpu_per_s']:,}, raw store "
            f"{s['storage_cpu_per_s']:,} events  ratio {s['cpu_ratio']}",
            f"  CPU per event: bus {s['bus_cpu_us']} us (writer {s['writer_cpu_us']}, producers "
            f"{s['producers_cpu_us']}, database server {s['server_cpu_us']}); raw store "
            f"{s['storage_total_cpu_us']} us (client and server)",
            f"  machine bound ({self.cores} cores / the bus's CPU per event) "
            f"{s['machine_bound_per_s']:>8,} events/s  ratio {s['bound_ratio']}; the bound is "
            f"{s['bound_to_storage']} of the raw store",
            *(
                [
                    "  (this machine cannot carry the bus at more than that share of the raw "
                    "store: more cores, or producers on other hosts, raise the bound)"
                ]
                if s["bound_to_storage"] < 1
                else []
            ),
            f"  latency at {self.latency_rate} events/s: p50 {s['p50_ms']} ms, "
            f"p99 {s['p99_ms']} ms ({self.latency_samples} samples)",
            *(
                [
                    f"  tcp+CURVE (loopback) {s['tcp_events_per_s']:>9,} events/s  "
                    f"ratio to ipc {s['tcp_to_ipc_ratio']}; latency p50 {s['tcp_p50_ms']} ms, "
                    f"p99 {s['tcp_p99_ms']} ms"
                ]
                if self.endpoint == "tcp"
                else []
            ),
            f"  writer peak RSS {s['writer_rss_mb']} MB; lost {self.lost}, "
            f"duplicated {self.duplicated}",
            *self.notes,
        ]


# ------------------------------------------------------------------ baselines


def _raw_sender(endpoint: str, events: int, start: Any) -> None:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.connect(endpoint)
    start.wait()  # every sender started and connected: the clock runs from here
    now = time.time_ns()
    source = f"raw-{os.getpid()}"
    for start in range(0, events, _FRAME_EVENTS):
        batch = [
            Envelope(source, n + 1, now, synthetic_tick(n, now))
            for n in range(start, min(start + _FRAME_EVENTS, events))
        ]
        push.send(encode_frame(batch))
    push.close(linger=-1)
    context.term()


def transport_baseline(events: int, producers: int, run_dir: Path) -> float:
    """Bare PUSH/PULL of msgspec frames over ipc, decoded by the receiver: events/s."""
    endpoint = f"ipc://{run_dir / 'raw.sock'}"
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)
    share = events // producers
    ctx = multiprocessing.get_context("spawn")
    # A spawned sender imports this module (SQLAlchemy included) before it sends: timing
    # that would charge the baseline a second of start, so all start first, then go at once.
    start = ctx.Barrier(producers + 1)
    procs = [
        ctx.Process(target=_raw_sender, args=(endpoint, share, start)) for _ in range(producers)
    ]
    for proc in procs:
        proc.start()
    start.wait()
    started = time.perf_counter()
    received = 0
    while received < share * producers:
        received += len(decode_frame(pull.recv()))
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    pull.close()
    context.term()
    return received / elapsed


def _tick_rows(events: int) -> list[tuple[Any, ...]]:
    now = time.time_ns()
    rows = []
    for n in range(events):
        row = msgspec.structs.asdict(synthetic_tick(n, now))
        rows.append((f"raw-{n % 2}", n + 1, now, *row.values()))
    return rows


_TICK_COLUMNS = "source, seq, produced_ns, " + ", ".join(TradeTick.__struct_fields__)


def _create_tick_table(url: str) -> None:
    """The real ``trade_ticks`` DDL (keys and indexes), so the baseline pays what we pay.

    On PostgreSQL the table is partitioned by day: the writer's default and today's
    partitions are made as the writer makes them, so the rows land where the writer's do.
    """
    engine = make_engine(url)
    TradeTickRow.__table__.create(engine)  # type: ignore[attr-defined]
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE trade_ticks_default PARTITION OF trade_ticks DEFAULT"
            )
        Partitions(engine, days_ahead=0).ensure(ARCHIVED_TABLES["trade_ticks"], _today())
    engine.dispose()


def _today() -> date:
    """The KST day of the rows `_tick_rows` makes (stamped now)."""
    return datetime.now(KST).date()


@dataclass(frozen=True)
class RawStore:
    """One raw store run: its rate and the CPU seconds of its client and database server."""

    events: int
    elapsed_s: float
    client_cpu_s: float
    server_cpu_s: float = 0.0  # PostgreSQL's server processes; SQLite runs in the client

    @property
    def per_s(self) -> float:
        """Events per wall second."""
        return self.events / self.elapsed_s

    @property
    def client_per_cpu_s(self) -> float:
        """Events per CPU second of the client alone."""
        return self.events / self.client_cpu_s

    @property
    def total_cpu_us(self) -> float:
        """CPU microseconds an event, client and server."""
        return (self.client_cpu_s + self.server_cpu_s) * 1e6 / self.events


def sqlite_baseline(events: int, path: Path, fsync: bool = True) -> RawStore:
    """Bare ``executemany`` into a WAL SQLite ``trade_ticks`` table (``FULL`` with fsync)."""
    rows = _tick_rows(events)
    _create_tick_table(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
    sql = f"INSERT INTO trade_ticks ({_TICK_COLUMNS}) VALUES ({','.join('?' * len(rows[0]))})"  # noqa: S608
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, events, 20_000):
        conn.executemany(sql, rows[start : start + 20_000])
        conn.commit()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return RawStore(events, elapsed, cpu)


def postgres_baseline(events: int, url: str) -> RawStore:
    """Bare ``COPY`` into a PostgreSQL table like ``trade_ticks``."""
    import psycopg

    rows = _tick_rows(events)
    _create_tick_table(url)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        started, cpu, server = time.perf_counter(), time.process_time(), ServerCpu(url)
        for start in range(0, events, 20_000):
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY trade_ticks ({_TICK_COLUMNS}) FROM STDIN") as copy,
            ):
                for row in rows[start : start + 20_000]:
                    copy.write_row(row)
            conn.commit()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_s = server.spent()
        conn.execute("DROP TABLE trade_ticks")
        conn.commit()
    return RawStore(events, elapsed, cpu, server_s)


class ServerCpu:
    """CPU seconds PostgreSQL's server spends for one database from now on (0 for SQLite).

    The processes counted: the backends of ``url``'s database (a backend's title names its
    database) and the WAL writer, checkpointer and background writer that its commits keep
    busy; other databases' backends (other work on the same server) are not. A process that
    starts meanwhile counts whole; one that ends meanwhile is lost, so this never overcounts.
    /proc shows them to any user.
    """

    _SHARED = ("walwriter", "checkpointer", "background writer")

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._database = parsed.database if parsed.get_backend_name() == "postgresql" else None
        self._start = self._read()

    def _read(self) -> dict[int, float]:
        if self._database is None:
            return {}
        found = {}
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] not in ("postgres", "postmaster"):
                continue
            title = " ".join(process.info["cmdline"] or ())
            if f" {self._database} " not in f" {title} " and not any(
                shared in title for shared in self._SHARED
            ):
                continue
            try:
                times = process.cpu_times()
            except psutil.Error:  # ended, or hidden from this user: not ours to count
                continue
            found[process.pid] = times.user + times.system
        return found

    def spent(self) -> float:
        """CPU seconds of those processes since this was made."""
        return sum(cpu - self._start.get(pid, 0.0) for pid, cpu in self._read().items())


# ------------------------------------------------------------------ the bus itself


@contextmanager
def _database(db: str, workdir: Path) -> Iterator[str]:
    if db == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
    elif db == "postgres":
        with scratch_postgres(POSTGRES_ADMIN_URL, "observer_bench") as url:
            yield url
    else:  # check_options refused it before any run
        raise ConfigError(f"--db must be sqlite or postgres, not {db!r}")


@dataclass(frozen=True)
class _Transport:
    """Where one series of runs sends: ipc by default; tcp with the settings of its keys."""

    endpoints: Endpoints
    name: str = "ipc"
    config: str = ""  # extra settings of the writer and the producers (tcp: [bus] and keys)
    curve: ClientCurve | None = None
    fsync: bool = True

    def settings(self) -> str:
        """The writer's and the producers' extra settings, ``[bus] fsync`` among them."""
        rest = self.config.removeprefix("[bus]\n")
        return f"[bus]\nfsync = {'true' if self.fsync else 'false'}\n{rest}"


def _tcp_transport(workdir: Path, fsync: bool) -> _Transport:
    """A loopback tcp bus with CURVE: the writer's pair and one client pair."""
    keys = workdir / "keys"
    generate_key_pair(keys, "writer")
    generate_key_pair(keys, "bench")
    ports = []
    for _ in range(2):
        with socket.socket() as probe:  # a free loopback port for the writer to bind
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    endpoints = Endpoints(f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}")
    config = (
        f'[bus]\ningest_endpoint = "{endpoints.ingest}"\nfeed_endpoint = "{endpoints.feed}"\n'
        f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "bench"\n'
        '[bus.curve.clients]\nbench = ["*"]\n'
    )
    curve = ClientCurve(load_key_pair(keys, "bench"), load_public_key(keys / "writer.key"))
    return _Transport(endpoints, "tcp", config, curve, fsync)


def _start_writer(
    url: str, run_dir: Path, workdir: Path, transport: _Transport
) -> subprocess.Popen[bytes]:
    config = workdir / f"bench-{transport.name}.toml"
    # The writer is the CURVE server: its own pair, the same allow-list.
    writer_config = transport.settings().replace('key = "bench"', 'key = "writer"')
    config.write_text(f'[paths]\nrun_dir = "{run_dir}"\n[database]\nurl = "{url}"\n{writer_config}')
    log_path = workdir / f"writer-{transport.name}.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        writer = subprocess.Popen(
            [sys.executable, "-m", "observer", "writer", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    poll_until(
        lambda: b"writer ready" in log_path.read_bytes(), f"writer (see {log_path})", child=writer
    )
    return writer


def _loadgens(
    sources: list[str], transport: _Transport, workdir: Path, events: int, rate: float
) -> list[subprocess.Popen[bytes]]:
    env = None
    if transport.config:  # keys come from settings: the producers get their own config
        config = workdir / f"producers-{transport.name}.toml"
        config.write_text(f'[paths]\nrun_dir = "{workdir / "run"}"\n{transport.settings()}')
        env = {**os.environ, "OBSERVER_CONFIG": str(config)}

    def where(source: str) -> list[str]:  # ipc: the endpoint and outbox on the command line
        if env is not None:
            return []
        return [
            "--endpoint",
            transport.endpoints.ingest,
            "--outbox",
            str(workdir / "outbox" / source),
            *(["--sync"] if transport.fsync else []),
        ]

    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.loadgen",
                "--source",
                source,
                *where(source),
                "--events",
                str(events),
                "--rate",
                str(rate),
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        for source in sources
    ]


def _finish(
    procs: list[subprocess.Popen[bytes]], writer: psutil.Process, peak: list[float]
) -> list[dict[str, Any]]:
    reports = []
    for proc in procs:
        while proc.poll() is None:
            peak[0] = max(peak[0], writer.memory_info().rss / 1e6)
            time.sleep(0.05)  # sampling RSS while the load runs
        out, _ = proc.communicate()
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


def check_options(events: int, producers: int, db: str, rate: int, endpoint: str) -> None:
    """Raise `ConfigError` (one line, exit 2) for an option no run can use.

    Checked before anything runs, so that a bad option costs no baseline run and shows no
    traceback.
    """
    if db not in ("sqlite", "postgres"):
        raise ConfigError(f"--db must be sqlite or postgres, not {db!r}")
    if endpoint not in ("ipc", "tcp"):
        raise ConfigError(f"--endpoint must be ipc or tcp, not {endpoint!r}")
    for name, value in (("--events", events), ("--producers", producers), ("--rate", rate)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, not {value}")


def run_bus_bench(
    events: int,
    producers: int,
    db: str,
    rate: int,
    endpoint: str = "ipc",
    latency_s: float = 5.0,
    fsync: bool = True,
) -> BusBenchReport:
    """Run baselines, the throughput run and the latency run (also over tcp); audit.

    * **bus**: ``producers`` processes (durable outbox, credits, acks) -> one writer process
      -> database; events/s from the first send to the last ack (the producers' own clocks:
      their interpreters' start is not timed), with the database audited after.
    * **latency**: one producer at ``rate``; from the envelope's ``ts`` to its arrival on a
      feed subscriber (the feed is published right after commit).
    * **baselines**: a bare pyzmq+msgspec PUSH/PULL loop (same events, same processes count,
      timed once every sender is up), and ``executemany`` into SQLite or ``COPY`` into
      PostgreSQL of the same rows, into the same ``trade_ticks`` table, 20,000 rows per
      transaction as the writer's ``batch_events``.
    * **writer alone**: the writer's decode-and-commit path on frames encoded beforehand
      (`harness.bench.writer_alone`): what bounds a store host whose producers run elsewhere.
    * **machine bound**: the CPU time every process of the throughput run spent (the writer,
      the producers, PostgreSQL's server processes for the bench's database: `ServerCpu`)
      per event; this machine's cores cannot carry more than ``cores / that`` events/s. The
      raw store's CPU is measured the same way, so the report says when the bus's work per
      event, not its design, keeps it under a share of the raw store.
    * **tcp** (``endpoint="tcp"``): the bus and latency runs again, in the same database (new
      sources), with the writer on a loopback tcp port and CURVE keys as between hosts.
    """
    check_options(events, producers, db, rate, endpoint)
    report = BusBenchReport(
        db=db,
        events=events,
        producers=producers,
        latency_rate=rate,
        latency_s=latency_s,
        endpoint=endpoint,
        fsync=fsync,
    )
    with tempfile.TemporaryDirectory(prefix="observer-bench-") as tmp:
        workdir = Path(tmp)
        run_dir = workdir / "run"
        transports = [_Transport(local_endpoints(run_dir), fsync=fsync)]  # (makes the folder)
        report.transport_baseline_per_s = transport_baseline(events, producers, run_dir)
        if endpoint == "tcp":
            transports.append(_tcp_transport(workdir, fsync))
        with _database(db, workdir) as url:
            if db == "postgres":
                raw = postgres_baseline(events, url)
            else:
                raw = sqlite_baseline(events, workdir / "raw.db", fsync)
            report.storage_baseline_per_s = raw.per_s
            report.storage_cpu_per_s = raw.client_per_cpu_s
            report.storage_total_cpu_us = raw.total_cpu_us
            expected: dict[str, int] = {}
            for transport in transports:
                expected |= _series(report, url, workdir, transport, rate)
            alone = [f"alone-{i}" for i in range(producers)]  # the schema is the writer's now
            measured = writer_alone(url, events, alone, fsync)
            report.alone_per_s, report.alone_cpu_per_s = measured.per_s, measured.per_cpu_s
            expected |= {source: events // producers for source in alone}
            report.lost, report.duplicated = _audit(url, expected)
    return report


def _series(
    report: BusBenchReport, url: str, workdir: Path, transport: _Transport, rate: int
) -> dict[str, int]:
    """The throughput and latency runs over one transport; the events each source sent."""
    writer = _start_writer(url, workdir / "run", workdir, transport)
    prefix = "" if transport.name == "ipc" else f"{transport.name}-"
    share = report.events // report.producers
    sources = [f"{prefix}bench-{i}" for i in range(report.producers)]
    sent = max(int(rate * report.latency_s), 1)  # by the latency run
    try:
        watched = psutil.Process(writer.pid)
        peak = [report.writer_rss_mb]
        started, cpu, server = time.perf_counter(), _cpu_s(watched), ServerCpu(url)
        reports = _finish(_loadgens(sources, transport, workdir, share, 0), watched, peak)
        cpu, server_s = _cpu_s(watched) - cpu, server.spent()
        spawned_s = time.perf_counter() - started
        # From the first send to the last ack, as the storage baseline times only its
        # inserts: the producers' interpreter start (0.4 s here) is no part of the bus.
        sending_s = (
            max(r["acked_ns"] for r in reports) - min(r["started_ns"] for r in reports)
        ) / 1e9
        per_s = share * report.producers / sending_s
        report.notes += [
            f"  {r['source']}: {r['resends']} resends, drained={r['drained']}" for r in reports
        ]
        report.notes.append(
            f"  {transport.name}: {sending_s:.2f} s from the first send to the last ack; "
            f"{spawned_s:.2f} s with the producers' start"
        )
        p50, p99, samples = _latency_run(
            transport, f"{prefix}latency", workdir, (sent, rate), watched, peak
        )
        report.writer_rss_mb = peak[0]
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(60)
    if transport.name == "ipc":
        report.events_per_s, report.p50_ms, report.p99_ms = per_s, p50, p99
        events = share * report.producers
        report.writer_cpu_per_s = events / cpu
        report.cores = len(os.sched_getaffinity(0))
        report.writer_cpu_us = cpu * 1e6 / events
        report.producers_cpu_us = sum(r["cpu_s"] for r in reports) * 1e6 / events
        report.server_cpu_us = server_s * 1e6 / events
        report.bus_cpu_us = report.writer_cpu_us + report.producers_cpu_us + report.server_cpu_us
        report.latency_samples = samples
    else:
        report.tcp_events_per_s, report.tcp_p50_ms, report.tcp_p99_ms = per_s, p50, p99
    return {s: share for s in sources} | {f"{prefix}latency": sent}


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _latency_run(
    transport: _Transport,
    source: str,
    workdir: Path,
    paced: tuple[int, int],  # events, at events/s
    writer: psutil.Process,
    peak: list[float],
) -> tuple[float, float, int]:
    context = zmq.Context()
    subscriber = FeedSubscriber(context, transport.endpoints.feed, ("trade_tick",), transport.curve)
    latencies: list[int] = []
    procs = _loadgens([source], transport, workdir, *paced)
    while procs[0].poll() is None or subscriber.socket.poll(0):
        envelopes = subscriber.recv(100)
        arrived = time.time_ns()
        for env in envelopes or ():
            if env.source == source:
                latencies.append(arrived - env.ts)
        peak[0] = max(peak[0], writer.memory_info().rss / 1e6)
    _finish(procs, writer, peak)
    subscriber.close()
    context.term()
    if not latencies:
        return 0.0, 0.0, 0
    p50 = percentile(latencies, 0.5) / 1e6
    p99 = percentile(latencies, 0.99) / 1e6
    return p50, p99, len(latencies)


def _audit(url: str, expected: dict[str, int]) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            found = {a.source: a for a in audit_sources(conn)}
    finally:
        engine.dispose()
    lost = duplicated = 0
    for source, count in expected.items():
        audit = found.get(source)
        distinct = audit.distinct if audit else 0
        lost += max(0, count - distinct)
        duplicated += (audit.rows - audit.distinct) if audit else 0
    return lost, duplicated
