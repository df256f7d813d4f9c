"""Delivery across real processes: every seq of every source lands exactly once.

Producers are `harness.loadgen` processes, the writer is `observer writer`, the bus is real
ZeroMQ over ipc, and faults are real: SIGKILL, a writer started late, a PostgreSQL backend
terminated under the writer.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from bus.codec import decode_ack
from bus.envelope import Ack
from bus.feed import FeedSubscriber
from tests.support import (
    ROOT,
    ProducerProcess,
    WriterProcess,
    assert_exactly_once,
    database_down,
    db_rows,
    wait_until,
)

pytestmark = pytest.mark.slow

MakeWriter = Callable[..., WriterProcess]


def producers(tmp_path: Path, writer: WriterProcess, count: int) -> list[ProducerProcess]:
    return [ProducerProcess(tmp_path, f"p{i}", writer.ingest) for i in range(count)]


def progressed(writer: WriterProcess, beyond: dict[str, int]) -> Callable[[], bool]:
    def check() -> bool:
        now = writer.offsets()
        return all(now.get(s, 0) > seq for s, seq in beyond.items())

    return check


def wait_for_new_commits(
    writer: WriterProcess, procs: list[ProducerProcess], events: int | None = None
) -> None:
    """Wait until every producer has more committed than now (the load is really flowing).

    With ``events`` (each producer's total), a producer whose every event is already committed
    fails at once: its load ended before the test's faults, and no new commit can come.
    """
    before = writer.offsets()
    if events is not None:
        done = [p.source for p in procs if before.get(p.source, 0) >= events]
        assert not done, f"{done} sent and committed all {events} before the fault: slow the load"
    wait_until(
        progressed(writer, {p.source: before.get(p.source, 0) for p in procs}), 60, "new commits"
    )


def test_writer_killed_repeatedly_while_producers_send(
    tmp_path: Path, db_url: str, writer_factory: MakeWriter
) -> None:
    """On PostgreSQL too, where the ticks land in today's partition (`writer.partitions`)."""
    writer = writer_factory(db_url).start()
    procs = producers(tmp_path, writer, 2)
    # 15 s of load per producer: three kills and restarts of a writer on PostgreSQL took longer
    # than the 5 s of 6,000 a second on a loaded CI machine, and the load ended before them.
    for proc in procs:
        proc.start(events=30_000, rate=2_000)
    for _ in range(3):
        wait_for_new_commits(writer, procs, 30_000)
        writer.kill()
        writer.start()
    results = [proc.result() for proc in procs]
    assert all(r["drained"] for r in results)
    assert sum(r["reconnects"] for r in results) >= 3  # each producer saw the restarts
    assert_exactly_once(db_url, {"p0": 30_000, "p1": 30_000})
    if db_url.startswith("postgresql"):  # the writer made today's partition before any batch
        assert db_rows(db_url, "SELECT count(*) FROM trade_ticks_default") == [(0,)]


def test_producer_killed_and_restarted_continues_its_seq(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    (proc,) = producers(tmp_path, writer, 1)
    proc.start(events=50_000, rate=10_000)
    wait_until(progressed(writer, {"p0": 5_000}), 60, "first commits")
    proc.kill()
    killed_at = writer.offsets()["p0"]
    proc.start(events=5_000)
    result = proc.result()
    assert result["first_seq"] > killed_at  # seq continued from the outbox, never reused
    assert_exactly_once(sqlite_url, {"p0": result["last_seq"]})


def test_writer_absent_at_start_then_started(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url)
    procs = producers(tmp_path, writer, 2)
    for proc in procs:
        proc.start(events=10_000)
    wait_until(
        lambda: all(sum(f.stat().st_size for f in p.outbox.glob("*.seg")) > 100_000 for p in procs),
        60,
        "producers queueing on disk",
    )
    writer.start()
    for proc in procs:
        assert proc.result()["drained"]
    assert_exactly_once(sqlite_url, {"p0": 10_000, "p1": 10_000})


def test_postgres_connection_cut_for_a_while(
    tmp_path: Path, pg_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(pg_url).start()
    procs = producers(tmp_path, writer, 2)
    for proc in procs:
        proc.start(events=20_000, rate=1_500)  # 13 s of load: both outages fall within it
    for cut in range(1, 3):
        wait_for_new_commits(writer, procs, 20_000)
        with database_down(pg_url):
            wait_until(
                lambda: writer.log.read_text().count("database failed, retrying") >= cut,  # noqa: B023
                60,
                "the writer to notice the outage",
            )
    for proc in procs:
        assert proc.result()["drained"]
    assert_exactly_once(pg_url, {"p0": 20_000, "p1": 20_000})


def test_sigterm_drains_and_exits_zero(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    (proc,) = producers(tmp_path, writer, 1)
    proc.start(events=20_000)
    wait_until(progressed(writer, {"p0": 0}), 60, "first commit")
    assert writer.terminate() == 0
    writer.start()
    assert proc.result()["drained"]
    assert_exactly_once(sqlite_url, {"p0": 20_000})


def test_garbage_frames_are_rejected_and_the_writer_keeps_serving(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.connect(writer.ingest)
    for junk in (b"", b"\xc1", os.urandom(200), b"a" * 10, b"\x91\x93\x01\x02\x03"):
        dealer.send(junk)
    dealer.send_multipart([b"two", b"parts"])
    # An envelope whose source and seq can be read but whose event cannot ({}: no type): a
    # rejected event under its seq, acknowledged, so that its source is not stuck on it.
    dealer.send(b"\x91\x94\xa1s\x01\x00\x80")
    (proc,) = producers(tmp_path, writer, 1)
    proc.start(events=1_000)
    assert proc.result()["drained"]
    assert dealer.poll(10_000) and decode_ack(dealer.recv()) == Ack("s", 1)
    assert not dealer.poll(200)  # garbage earns no ack
    dealer.close(linger=0)
    context.term()
    # Not silent: one warning for the frames of no readable source, one for source s.
    alerts = "SELECT subject FROM alerts WHERE code = 'bus_frame_rejected' ORDER BY subject"
    wait_until(lambda: len(db_rows(sqlite_url, alerts)) == 2, 30, "the writer's alerts")
    assert db_rows(sqlite_url, alerts) == [("s",), ("unknown source",)]
    assert writer.terminate() == 0
    assert writer.log.read_text().count("rejected frame") == 6
    assert_exactly_once(sqlite_url, {"p0": 1_000, "s": 1, "writer": 2})
    assert db_rows(sqlite_url, "SELECT source, seq, event_type FROM rejected_events") == [
        ("s", 1, "unknown")
    ]


def test_committed_events_are_republished_on_the_feed(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    context = zmq.Context()
    subscriber = FeedSubscriber(context, writer.feed, ("trade_tick.005930",))
    seen: list[int] = []
    # PUB/SUB joins asynchronously, so the first events may be missed: the feed is lossy by
    # contract; what arrives is in order and never repeated.
    (proc,) = producers(tmp_path, writer, 1)
    proc.start(events=8_000, rate=4_000)
    while proc.proc.poll() is None or subscriber.socket.poll(0):  # type: ignore[union-attr]
        for env in subscriber.recv(200) or ():
            assert env.event.symbol == "005930"  # type: ignore[union-attr]
            seen.append(env.seq)
    subscriber.close()
    context.term()
    assert proc.result()["drained"]
    assert len(seen) > 100
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert all(seq % 8 == 0 for seq in seen)  # loadgen puts 005930 on every 8th seq


def test_two_writers_never_share_a_database(
    tmp_path: Path, db_url: str, writer_factory: MakeWriter
) -> None:
    """Not even from another run directory (another host): PostgreSQL holds the lock itself."""
    first = writer_factory(db_url).start()
    assert first.proc is not None
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "observer",
            "writer",
            "--db",
            db_url,
            "--run-dir",
            str(tmp_path / "other-run"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert second.returncode == 3
    if db_url.startswith("sqlite"):
        assert f"another writer (pid {first.proc.pid}) holds" in second.stderr
    else:
        assert f"observer writer on {socket.gethostname()} (server pid " in second.stderr
        assert "holds postgresql+psycopg://" in second.stderr


def test_an_unreachable_database_at_start_is_said_and_waited_for(tmp_path: Path) -> None:
    """The writer names the server it waits for, never the password, and a stop ends the
    wait cleanly (`observer.writer.startup`; it exited 2, and was parked FATAL)."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observer",
            "writer",
            "--run-dir",
            str(tmp_path / "run"),
            "--db",
            "postgresql://observer:s3cret-pw@127.0.0.1:1/none",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert writer.stderr is not None
    said = []
    try:
        for line in writer.stderr:  # the first try fails at once: nothing listens on port 1
            said.append(line)
            if "the writer's start (its database) failed" in line:
                break
        writer.send_signal(signal.SIGTERM)
        said.append(writer.stderr.read())
        assert writer.wait(60) == 0
    finally:
        writer.kill()
        writer.stderr.close()
    output = "".join(said)
    assert "127.0.0.1:1" in output and "again in" in output, output
    assert "s3cret-pw" not in output


def test_sockets_are_owner_only(sqlite_url: str, writer_factory: MakeWriter) -> None:
    writer = writer_factory(sqlite_url).start()
    for name in ("ingest.sock", "feed.sock"):
        assert stat.S_IMODE((writer.run_dir / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(writer.run_dir.stat().st_mode) == 0o700


def test_a_lost_outbox_is_refused_not_silently_skipped(
    tmp_path: Path, sqlite_url: str, writer_factory: MakeWriter
) -> None:
    writer = writer_factory(sqlite_url).start()
    (proc,) = producers(tmp_path, writer, 1)
    proc.start(events=100)
    assert proc.result()["drained"]
    for path in proc.outbox.iterdir():
        path.unlink()  # the producer's disk was wiped
    proc.start(events=10, drain_timeout=10)
    _, err = proc.proc.communicate(timeout=60)  # type: ignore[union-attr]
    assert proc.proc.returncode != 0  # type: ignore[union-attr]
    assert b"outbox was lost" in err
