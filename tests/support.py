"""Helpers for tests that run real processes: wait on conditions, writer and producer processes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self, cast

import httpx
from aiohttp import web
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from bus.codec import DIGEST_BYTES
from harness.sim.market import Market
from harness.sim.server import SimConfig, Simulator
from observer.calendar.clock import SimulatedClock
from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.db.models import AUDITED_MODELS, AuditedMany
from observer.db.queries import committed_offsets
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.supervisor.program import Program, State
from tests.migrated import seed

ROOT = Path(__file__).resolve().parent.parent


# A wait's deadline guards against a hang and times nothing: it is at least this long, and
# `DEADLINE_SLACK` times what the test asked, since a test runs at a low CPU priority beside a
# ``timed`` one (tests/conftest.py sets the slack) and may be slowed many times over
# meanwhile: on 2 cores in CI a supervisor's start once took over 60 s.
DEADLINE_FLOOR_S = 30.0
DEADLINE_SLACK = 1.0


# A ``timed`` or ``exclusive`` test's hold on the cores, set by tests/conftest.py while it runs.
_timing_over: Callable[[], None] | None = None


def timing_over() -> None:
    """The calling ``timed`` or ``exclusive`` test's part timed against a simulated clock is
    over: it lets the cores go (the next such test may start) and goes on at the lower
    priority, its waits stretched as any other test's. Nothing in any other test, or twice."""
    global _timing_over
    release, _timing_over = _timing_over, None
    if release is not None:
        release()


def _deadline_s(timeout: float) -> float:
    return max(timeout * DEADLINE_SLACK, DEADLINE_FLOOR_S)


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds
    (stretched by `_deadline_s`)."""
    timeout = _deadline_s(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)  # the poll interval of a deadline-bound wait


async def until(condition: Callable[[], Any], what: str = "", timeout: float = 30.0) -> Any:
    """`wait_until` on a running event loop: poll ``condition`` until it returns something
    truthy, and return it; fail after ``timeout`` seconds (stretched by `_deadline_s`)."""
    timeout = _deadline_s(timeout)
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)  # the poll interval of a deadline-bound wait
    return value


def free_port() -> int:
    """A loopback port free now, below the kernel's range of ephemeral ports.

    A port the kernel hands out (a bind to port 0) can be handed out again as the local
    port of any outgoing connection (a database's, another test's) before the server under
    test binds it; a port below that range never is.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for port in random.sample(range(10_000, low), min(200, max(0, low - 10_000))):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
            return port
    with socket.socket() as sock:  # no such range here: the kernel's choice
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def db_rows(url: str, sql: str, *, until_schema: bool = False) -> list[Any]:
    """The rows of ``sql``; with ``until_schema``, [] while the writer has not made the schema."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    except OperationalError:
        if until_schema:
            return []
        raise
    finally:
        engine.dispose()


class WriterProcess:
    """``python -m observer writer`` in a test directory, with its own config and log."""

    def __init__(
        self, workdir: Path, url: str, *, capture: Path | None = None, extra: str = ""
    ) -> None:
        self.workdir = workdir
        self.url = url
        self.run_dir = workdir / "run"
        self.capture = capture
        self.config = workdir / "writer.toml"
        self.config.write_text(
            f'[paths]\nrun_dir = "{self.run_dir}"\n[database]\nurl = "{url}"\n{extra}'
        )
        self.log = workdir / "writer.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def ingest(self) -> str:
        return f"ipc://{self.run_dir / 'ingest.sock'}"

    @property
    def feed(self) -> str:
        return f"ipc://{self.run_dir / 'feed.sock'}"

    def start(self, wait: bool = True) -> WriterProcess:
        if self.starts == 0:  # a new database: a migrated copy (a file owner-only, as the writer's)
            seed(self.url, 0o600)
        args = [sys.executable, "-m", "observer", "writer", "--config", str(self.config)]
        if self.capture is not None:
            args += ["--capture", str(self.capture)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT)
        self.starts += 1
        if wait:
            wait_until(
                lambda: (
                    self.log.read_text().count("writer ready") >= self.starts
                    or self.proc.poll() is not None
                ),  # type: ignore[union-attr]
                60,
                "writer ready",
            )
            assert self.proc.poll() is None, self.log.read_text()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def offsets(self) -> dict[str, int]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return committed_offsets(conn)
        except Exception:
            return {}  # schema not there yet, or the database is being cut
        finally:
            engine.dispose()


class ProducerProcess:
    """``python -m harness.loadgen``: N trade ticks from one source, waits for every ack."""

    live: list[ProducerProcess] = []  # reaped after every test by conftest

    def __init__(self, workdir: Path, source: str, endpoint: str) -> None:
        self.workdir = workdir
        self.source = source
        self.endpoint = endpoint
        self.outbox = workdir / "outbox" / source
        self.proc: subprocess.Popen[bytes] | None = None
        ProducerProcess.live.append(self)

    @classmethod
    def reap_all(cls) -> None:
        """Kill whatever a failed test left running and close its pipes."""
        for producer in cls.live:
            if producer.proc is not None and producer.proc.returncode is None:
                producer.proc.kill()
                producer.proc.communicate(timeout=30)
        cls.live.clear()

    def start(self, events: int, rate: float = 0, drain_timeout: float = 120) -> ProducerProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.loadgen",
                "--source",
                self.source,
                "--endpoint",
                self.endpoint,
                "--outbox",
                str(self.outbox),
                "--events",
                str(events),
                "--rate",
                str(rate),
                "--drain-timeout",
                str(drain_timeout),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=30)

    def result(self, timeout: float = 180) -> dict[str, Any]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err.decode()
        report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return report


@contextmanager
def database_down(url: str) -> Iterator[None]:
    """Refuse new connections to ``url``'s PostgreSQL database and end the open ones; allow
    connections again on leaving.

    A terminated backend ends a moment after it is signalled (each is waited for, 5 s at
    most): they are ended until none is left. A connection still opening at the refusal can
    pass its check and show in pg_stat_activity only after none was left, and live through
    the outage: a test whose pool opens connections in the background waits for them first.
    """
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    database = url.rsplit("/", 1)[1]
    end_all = text(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = :db"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            wait_until(
                lambda: not conn.execute(end_all, {"db": database}).all(),
                30,
                f"no session left on {database}",
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def audit(url: str) -> dict[str, Any]:
    """Per-source audit rows of the database at ``url``."""
    engine: Engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {a.source: a for a in audit_sources(conn)}
    finally:
        engine.dispose()


def audit_command(config: Path) -> subprocess.CompletedProcess[str]:
    """``observer audit --config`` as an operator runs it: its output and exit code."""
    return subprocess.run(
        [sys.executable, "-m", "observer", "audit", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def assert_exactly_once(url: str, expected: dict[str, int], *, real: bool = False) -> None:
    """Every source holds seqs 1..N exactly once, and nothing else is there.

    Each committed seq has its digest (one run per commit, runs back to back) and no resend
    conflicted with what was committed. With ``real`` (the workers' own events, not a load
    program's) one event may store rows in several tables, and several rows in a table of
    its members (`AuditedMany`: a batch's bars, a universe's members, numbered by ``idx``):
    then no table holds a seq of a source twice, nor a member of it.
    """
    found = audit(url)
    assert set(found) == set(expected), (found, expected)
    for source, count in expected.items():
        a = found[source]
        assert (a.min_seq, a.max_seq, a.distinct, a.committed) == (1, count, count, count), a
        assert a.rows >= count if real else a.rows == count, a
    if real:
        for model in AUDITED_MODELS:
            key = "source, seq, idx" if issubclass(model, AuditedMany) else "source, seq"
            twice = db_rows(
                url,
                f"SELECT {key} FROM {model.__tablename__} "
                f"GROUP BY {key} HAVING count(*) > 1 LIMIT 5",
            )
            assert twice == [], (model.__tablename__, twice)
    runs = db_rows(
        url,
        "SELECT source, first_seq, last_seq, length(digests) FROM bus_digests "
        "ORDER BY source, first_seq",
    )
    covered: dict[str, int] = {}
    for source, first, last, size in runs:
        assert first == covered.get(source, 0) + 1 and size == (last - first + 1) * DIGEST_BYTES
        covered[source] = last
    assert covered == expected
    assert db_rows(url, "SELECT source, seq FROM bus_conflicts") == []


_RUNS_A_WRITER = 'command = ["observer", "writer"]'
WRITER_PROGRAM = """
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]
"""


def load_program(name: str = "load", rate: int = 200, extra: str = "") -> str:
    """A loadgen daemon publishing ``rate`` ticks/s as source ``name`` until SIGTERM."""
    return f"""
[programs.{name}]
kind = "daemon"
command = ["python", "-m", "harness.loadgen", "--source", "{name}", "--events", "0",
           "--rate", "{rate}"]
depends_on = ["writer"]
{extra}
"""


class SupervisorProcess:
    """``observer supervise`` with its data dir, SQLite database and programs under ``workdir``."""

    live: list[SupervisorProcess] = []  # stopped after every test by conftest

    def __init__(
        self,
        workdir: Path,
        programs: str,
        *,
        clock: str = "system",
        settings: str = "",
        url: str | None = None,
        metrics_port: int = 0,
        args: list[str] | None = None,
        database: str = "",  # more lines of its [database] table
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.url = url or f"sqlite:///{self.data_dir / 'observer.db'}"
        self.config = workdir / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{self.data_dir}"\n[database]\nurl = "{self.url}"\n{database}\n'
            f"[supervisor]\nmetrics_port = {metrics_port}\n{settings}\n{programs}"
        )
        self.socket = self.data_dir / "run" / "control.sock"
        self.log = workdir / "supervisor.log"
        self.clock = clock
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        SupervisorProcess.live.append(self)

    def start(self, healthy: bool = True) -> SupervisorProcess:
        if self.proc is None and _RUNS_A_WRITER in self.config.read_text():
            # A new database: a migrated copy, as `WriterProcess` gives its writer. Migrating
            # took a start 2 CPU-s, and on a loaded machine past its ready timeout.
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            seed(self.url, 0o600)
        args = [
            *(sys.executable, "-m", "observer", "supervise", "--config", str(self.config)),
            *("--clock", self.clock, *self.args),
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=self.workdir)
        wait_until(lambda: self._answers() or self.proc.poll() is not None, 60, "socket")  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.log.read_text()
        if healthy:
            try:
                wait_until(lambda: self.status()["healthy"], 60, "a healthy supervisor")
            except AssertionError as exc:  # what kept it unhealthy, for the failure's reader
                tail = self.log.read_text(errors="replace")[-4000:]
                raise AssertionError(f"{exc}: {self.status()['problems']}\n{tail}") from None
        return self

    def _answers(self) -> bool:
        try:
            self.status()
        except (FileNotFoundError, ConnectionRefusedError):  # refused: a killed one's file
            return False
        return True

    def ctl(self, command: str, *args: str) -> Any:
        from observer.supervisor.control import request

        return request(self.socket, command, list(args), 60)

    def status(self) -> dict[str, Any]:
        reply = self.ctl("status")
        assert reply.ok, reply
        return reply.data  # type: ignore[no-any-return]

    def program(self, name: str) -> dict[str, Any]:
        return next(p for p in self.status()["programs"] if p["name"] == name)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    @classmethod
    def stop_all(cls) -> None:
        for sup in cls.live:
            if sup.proc is not None and sup.proc.poll() is None:
                sup.proc.send_signal(signal.SIGTERM)
                try:
                    sup.proc.wait(60)
                except subprocess.TimeoutExpired:
                    sup.proc.kill()
                    sup.proc.wait(30)
        cls.live.clear()

    def rows(self, sql: str, *, until_schema: bool = False) -> list[Any]:
        """The rows of ``sql``; with ``until_schema``, [] while the writer has not made the
        schema (a supervisor started without waiting for health may be polled before it)."""
        return db_rows(self.url, sql, until_schema=until_schema)


class AppThread:
    """An aiohttp application on a loopback port, served by an event loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # Its open WebSocket handlers end with the server; on a loaded machine that took >10 s.
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


WEBHOOK_TOKEN = "hooktoken-7Qx9Lm2Vb8Rt"  # in a webhook's path: a secret, like a Slack token


class Receiver:
    """A webhook receiver on a fixed loopback port that can go down (refuse) and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        self.site: web.TCPSite | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.up()

    async def _handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.received.append(await request.json())
        return web.Response(text="ok")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def up(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self._run(self.site.start())

    def down(self) -> None:
        assert self.site is not None
        self._run(self.site.stop())

    def titles(self) -> list[str]:
        return [str(m["title"]) for m in list(self.received)]

    def close(self) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SimThread(AppThread):
    """The simulator on a loopback port, served by an event loop in a thread of the tests."""

    def __init__(
        self,
        market: Market,
        start: datetime,
        config: SimConfig | None = None,
        speed: float = 1.0,
        changes: tuple[tuple[datetime, float], ...] = (),  # (from, speed): a piecewise clock
    ) -> None:
        pieces = tuple((int(at.timestamp() * 1e9), to) for at, to in changes)
        clock = SimulatedClock(int(start.timestamp() * 1e9), speed, changes=pieces)
        self.sim = Simulator(market, clock, config)
        super().__init__(self.sim.app)


def sim_client(sim: SimThread, folder: Path, alias: str, environment: str = "real") -> KisClient:
    """A REST client of the simulator for one account: 200 calls/s, its token cached in
    ``folder``; ``environment`` "paper" makes it refuse what paper accounts lack."""
    http = httpx.AsyncClient(base_url=sim.url)
    key = f"PS{alias}TestAppKey".ljust(36, "0")
    creds = Credentials(alias, Secret(key), Secret(alias[0] * 180))
    tokens = TokenManager(http, creds, sim.sim.clock, folder, "sim", min_issue_interval_s=0)
    pace = RateLimits({alias: 200}).for_account(alias)
    return KisClient(http, creds, tokens, sim.sim.clock, pace, environment=environment)


def sim_accounts_config(
    tmp_path: Path, sim: SimThread, writer: WriterProcess, tables: str, *, account: str = ""
) -> Path:
    """``observer.toml``: two accounts on the simulator (each with the ``account`` lines),
    stored by ``writer``, then ``tables``."""
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{writer.url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
        f'[[kis.accounts]]\nalias = "acct1"\n{account}[[kis.accounts]]\nalias = "acct2"\n{account}'
        f"{tables}"
    )
    return config


def start_on_sim_clock(
    args: list[str],
    sim: SimThread,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """``python -m observer ARGS`` on the simulator's clock, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "observer", *args],
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env={**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec, **(env or {})},
            pass_fds=pass_fds,
        )


def beating(name: str, counters: dict[str, float]) -> Program:
    """A running daemon whose last heartbeat, just now, said ``counters``."""
    worker = SimpleNamespace(
        name=name,
        state=State.RUNNING,
        held=False,
        kind="daemon",
        failures=0,
        counters=counters,
        settings=SimpleNamespace(heartbeat_timeout_s=30.0),
        beat_age_s=lambda: 0.5,
    )
    return cast(Program, worker)


def set_aside(path: Path, data: bytes) -> Path:
    """Assert that ``path``, which held ``data``, was set aside once, owner-only; where to.

    The contract of `observer.process.state_files`: the bad file is kept whole beside its place
    (``<name>.bad-<UTC time>``) for a post-mortem.
    """
    (aside,) = path.parent.glob(f"{path.name}.bad-*")
    assert aside.read_bytes() == data
    assert aside.stat().st_mode & 0o777 == 0o600
    return aside
