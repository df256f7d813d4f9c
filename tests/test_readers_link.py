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

from tests.support import free_port
from tests.test_multihost import HOST_B, namespaces

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

# Host A: a read every 0.2 s through the product's reader engine, a query of QUERY_S that
# says when it is sent; each read's outcome a line.
READER = """
import json, sys, time
from sqlalchemy import text
from observer.db.outages import DATABASE_ERRORS
from observer.db.readers import reader_engine
from observer.db_settings import DatabaseSettings

settings = DatabaseSettings(url=sys.argv[1], reader_pool_timeout_s=float(sys.argv[2]))
engine = reader_engine(settings, "link reader")
while True:
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            print(json.dumps({"sending": time.monotonic()}), flush=True)
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": float(sys.argv[3])}).scalar_one()
        error = ""
    except DATABASE_ERRORS as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    took = time.monotonic() - started
    print(json.dumps({"at": time.monotonic(), "took": took, "error": error}), flush=True)
    time.sleep(0.2)
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
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _until(lines: Lines, deadline: float, what: str, wanted: Any) -> list[dict[str, Any]]:
    """The reads up to and including the first for which ``wanted`` is true."""
    reads = []
    while True:
        read = json.loads(lines.next(deadline, what))
        if "sending" in read:
            continue
        reads.append(read)
        if wanted(read):
            return reads


def _sending(lines: Lines, deadline: float) -> None:
    """Wait for a read to send its query (the connection is checked out and was checked)."""
    while "sending" not in json.loads(lines.next(deadline, "a query being sent")):
        pass


def test_a_cut_link_fails_a_read_within_the_pools_timeout_and_reads_resume_after(
    pg_url: str, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    remote = make_url(pg_url).set(host=HOST_B, port=port).render_as_string(hide_password=False)
    with namespaces("pgl") as hosts:
        forwarder = start_in(hosts.b, FORWARDER, HOST_B, str(port), SERVER_SOCKET)
        processes.append(forwarder)
        assert Lines(forwarder).next(time.monotonic() + 30, "the forwarder") == "listening\n"
        reader = start_in(hosts.a, READER, remote, str(TIMEOUT_S), str(QUERY_S))
        processes.append(reader)
        reads = Lines(reader)
        first = _until(reads, time.monotonic() + 60, "a read across the link", lambda r: True)
        assert first[-1]["error"] == "", first
        _until(reads, time.monotonic() + 30, "more reads", lambda r: r["error"] == "")

        # Cut while a query is on its way: the pool's check before it passed, so only the
        # connection's own limits can end it.
        _sending(reads, time.monotonic() + 30)
        hosts.link(False)
        cut_at = time.monotonic()
        during = _until(reads, cut_at + 60, "a read that fails", lambda r: r["error"] != "")
        failed = during[-1]
        # Before: the read in flight waited for TCP to give up, about 15 minutes.
        assert failed["at"] - cut_at < 3 * TIMEOUT_S + QUERY_S, during
        assert failed["error"].startswith("OperationalError"), during  # the query, not the pool

        hosts.link(True)
        restored_at = time.monotonic()
        after = _until(
            reads, restored_at + 30, "a read after the link is back", lambda r: r["error"] == ""
        )
        print(
            f"\nfirst failure {failed['at'] - cut_at:.1f} s after the cut ({failed['error']}); "
            f"{len(after)} reads to the first answer {after[-1]['at'] - restored_at:.1f} s after "
            f"the link is back; longest read {max(r['took'] for r in [*during, *after]):.1f} s"
        )
        # Every read that failed meanwhile failed in time: no read hangs on the dead link.
        assert max(r["took"] for r in [*during, *after]) < 3 * TIMEOUT_S + QUERY_S, after
        assert after[-1]["at"] - restored_at < 3 * TIMEOUT_S + QUERY_S, after
