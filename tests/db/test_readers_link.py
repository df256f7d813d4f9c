"""A reader on one host, PostgreSQL on another, and the link between them cut.

A collectors host reads the store host's PostgreSQL (the universe, Track A's resume, gap
recovery's sweeps). A cut link (a switch, a cable, a host gone) answers nothing: no refusal,
no reset. A query sent on a connection already open then waited for the kernel to give up
retransmitting it, about 15 minutes, and the daemon with it. The reader's connections now
say the link is dead within about ``reader_pool_timeout_s`` (`observer.db.readers`), and
the reads work again once the link is back.

Host A (namespace ``pgl-a-*``) runs a reading process; host B (``pgl-b-*``) a forwarder
from B's veth address to the server's Unix socket (the server listens on the root
namespace's loopback only). The test cuts B's end of the link.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.cluster.test_multihost import HOST_B, namespaces
from tests.support import db_rows, free_port, wait_until

pytestmark = pytest.mark.postgres

SERVER_SOCKET = "/run/postgresql/.s.PGSQL.5432"
TIMEOUT_S = 2.0  # the reader's reader_pool_timeout_s
QUERY_S = 1.0  # how long each read's query takes on the server

# Host B: bytes from B's veth address to the server's socket and back.
FORWARDER = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def serve(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_unix_connection(sys.argv[3])
    await asyncio.gather(
        pipe(client_reader, server_writer), pipe(server_reader, client_writer),
        return_exceptions=True,
    )

async def main():
    server = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    print("listening", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""

# Host A: reads through the product's reader engine, each a query of QUERY_S. With its
# connection checked out (the pool checked it), a read says so and waits for a line on its
# stdin before it sends the query: the test cuts the link before or after that. Each read's
# outcome is a line.
READER = """
import json, sys, time
from sqlalchemy import text
from observer.db.outages import DATABASE_ERRORS
from observer.db.readers import reader_engine
from observer.db.settings import DatabaseSettings

settings = DatabaseSettings(url=sys.argv[1], reader_pool_timeout_s=float(sys.argv[2]))
engine = reader_engine(settings, "link reader")
while True:
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            print(json.dumps({"checked_out": time.monotonic()}), flush=True)
            sys.stdin.readline()
            sent = time.monotonic()
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": float(sys.argv[3])}).scalar_one()
        error = ""
    except DATABASE_ERRORS as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    took = time.monotonic() - started
    print(json.dumps({"at": time.monotonic(), "took": took, "error": error}), flush=True)
"""


class Lines:
    """A process's stdout lines, read by a thread, taken with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def next(self, deadline: float, what: str) -> str:
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {what}") from None


def start_in(namespace: str, code: str, *args: str) -> subprocess.Popen[str]:
    command = ["ip", "netns", "exec", namespace, sys.executable, "-c", code, *args]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop_process(process)


def stop_process(process: subprocess.Popen[str]) -> None:
    """Kill a process `start_in` started, and close its pipes."""
    process.kill()
    process.wait(timeout=30)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


class Reads:
    """The reading process: its reads' outcomes, each query sent when the test says."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines = Lines(process)
        assert process.stdin is not None
        self.stdin = process.stdin

    def send(self) -> None:
        """Let the read that has its connection send its query."""
        self.stdin.write("go\n")
        self.stdin.flush()

    def checked_out(self, deadline: float) -> None:
        """Wait for a read to have its connection (checked by the pool), its query unsent."""
        read = json.loads(self.lines.next(deadline, "a connection checked out"))
        assert "checked_out" in read, read

    def until(self, deadline: float, what: str, wanted: Any) -> list[dict[str, Any]]:
        """The outcomes up to the first ``wanted`` one; each read's query sent at once."""
        reads = []
        while True:
            read = json.loads(self.lines.next(deadline, what))
            if "checked_out" in read:
                self.send()
                continue
            reads.append(read)
            if wanted(read):
                return reads


def _running(pg_url: str) -> bool:
    """Whether the reader's query is running on the server (it arrived)."""
    rows = db_rows(
        pg_url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'observer link reader'"
        " AND state = 'active' AND query LIKE 'SELECT pg_sleep%'",
    )
    return bool(rows[0][0])


@pytest.mark.parametrize("cut", ["before the query", "with the query at the server"])
def test_a_cut_link_fails_a_read_within_the_pools_timeout_and_reads_resume_after(
    pg_url: str, processes: list[subprocess.Popen[str]], cut: str
) -> None:
    """Cut before the query leaves: its data is never acknowledged (``tcp_user_timeout``).
    Cut once it runs on the server: its answer never comes, and nothing of ours waits for
    an acknowledgement (the keepalives). The pool's check passed before either."""
    port = free_port()
    remote = make_url(pg_url).set(host=HOST_B, port=port).render_as_string(hide_password=False)
    with namespaces("pgl") as hosts:
        forwarder = start_in(hosts.b, FORWARDER, HOST_B, str(port), SERVER_SOCKET)
        processes.append(forwarder)
        assert Lines(forwarder).next(time.monotonic() + 30, "the forwarder") == "listening\n"
        reader = start_in(hosts.a, READER, remote, str(TIMEOUT_S), str(QUERY_S))
        processes.append(reader)
        reads = Reads(reader)
        for _ in range(3):
            [answered] = reads.until(time.monotonic() + 60, "a read", lambda r: True)
            assert answered["error"] == "", answered

        reads.checked_out(time.monotonic() + 30)
        if cut == "before the query":
            hosts.link(False)
            cut_at = time.monotonic()
            reads.send()
        else:
            reads.send()
            wait_until(lambda: _running(pg_url), 30, "the query running on the server")
            hosts.link(False)
            cut_at = time.monotonic()
        during = reads.until(cut_at + 60, "a read that fails", lambda r: r["error"] != "")
        failed = during[-1]
        # Before: the read in flight waited for TCP to give up, about 15 minutes.
        assert failed["at"] - cut_at < 3 * TIMEOUT_S + QUERY_S, during
        assert failed["error"].startswith("OperationalError"), during  # the query, not the pool

        hosts.link(True)
        restored_at = time.monotonic()
        after = reads.until(
            restored_at + 30, "a read after the link is back", lambda r: r["error"] == ""
        )
        print(
            f"\ncut {cut}: first failure {failed['at'] - cut_at:.1f} s after the cut "
            f"({failed['error']}); {len(after)} reads to the first answer "
            f"{after[-1]['at'] - restored_at:.1f} s after the link is back; longest read "
            f"{max(r['took'] for r in [*during, *after]):.1f} s"
        )
        # Every read that failed meanwhile failed in time: no read hangs on the dead link.
        assert max(r["took"] for r in [*during, *after]) < 3 * TIMEOUT_S + QUERY_S, after
        assert after[-1]["at"] - restored_at < 3 * TIMEOUT_S + QUERY_S, after
