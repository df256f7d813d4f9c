"""Capture and replay: the shipped fixture rebuilds the database; a live run's tee does too."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bus.capture import CaptureHeader, CaptureReader, CaptureWriter
from bus.codec import decode_frame
from bus.errors import CaptureError
from bus.events import Alert
from bus.producer import Producer
from harness.loadgen import synthetic_tick
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.models import Base
from observer.writer.replay import replay_as_producer, replay_into_db
from tests.samples import EXPECTED_ROWS, SAMPLES, T0
from tests.support import ROOT, WriterProcess, audit, wait_until

SPINE = ROOT / "tests" / "captures" / "spine.cap"
TICKS = 1_000  # per tick source in spine.cap

SPINE_ROWS = EXPECTED_ROWS | {"trade_ticks": 1 + 2 * TICKS, "bus_offsets": 3, "bus_digests": 3}


def digest(url: str) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every table, ignoring wall-clock bookkeeping and how
    commits cut the digest runs."""
    engine = make_engine(url)
    result = {}
    try:
        with engine.connect() as conn:
            for name, table in Base.metadata.tables.items():
                columns = [
                    c for c in table.columns if c.name != "updated_ns" or name != "bus_offsets"
                ]
                rows = sorted(repr(tuple(r)) for r in conn.execute(select(*columns)))
                if name == "bus_digests":  # runs follow commits; compare each source's digests
                    runs: dict[str, bytes] = {}
                    query = select(table.c.source, table.c.digests).order_by(table.c.first_seq)
                    for source, digests in conn.execute(query):
                        runs[source] = runs.get(source, b"") + digests
                    rows = sorted(repr(run) for run in runs.items())
                result[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    finally:
        engine.dispose()
    return result


def test_spine_fixture_replays_into_a_fresh_database(db_url: str) -> None:
    migrate.upgrade(db_url)
    result = replay_into_db(SPINE, db_url)
    assert result.events == len(SAMPLES) + 2 * TICKS == result.committed
    assert {name: count for name, (count, _) in digest(db_url).items()} == SPINE_ROWS
    audits = audit(db_url)
    assert {s: (a.max_seq, a.complete) for s, a in audits.items()} == {
        "samples": (len(SAMPLES), True),
        "ticks-1": (TICKS, True),
        "ticks-2": (TICKS, True),
    }
    before = digest(db_url)
    again = replay_into_db(SPINE, db_url)
    assert again.committed == 0 and again.duplicates == result.events
    assert digest(db_url) == before


def test_replay_command(sqlite_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "observer", "replay", str(SPINE), "--db", sqlite_url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(SAMPLES) + 2 * TICKS} committed" in done.stdout

    def audit_command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "observer", "audit", "--db", sqlite_url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    audited = audit_command()
    assert audited.returncode == 0 and audited.stdout.count(" ok") == 3
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:  # lose one committed event
        conn.exec_driver_sql("DELETE FROM trade_ticks WHERE source = 'ticks-1' AND seq = 500")
    engine.dispose()
    audited = audit_command()
    assert (
        audited.returncode == 1 and "ticks-1" in audited.stdout and "INCOMPLETE" in audited.stdout
    )


def test_replay_as_producer_onto_a_live_bus(
    tmp_path: Path, sqlite_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(sqlite_url).start()
    result = replay_as_producer(SPINE, writer.ingest)
    assert result.committed == len(SAMPLES) + 2 * TICKS
    assert writer.terminate() == 0
    assert {name: count for name, (count, _) in digest(sqlite_url).items()} == SPINE_ROWS


def test_a_live_runs_tee_rebuilds_the_same_database(
    tmp_path: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    tee = tmp_path / "captures" / "tee.cap"  # a folder not there yet: created
    writer = writer_factory(live_url, capture=tee).start()
    producer = Producer("mixed", writer.ingest, tmp_path / "ob", batch_events=7)
    for n, event in enumerate(SAMPLES * 20):
        producer.send(event)
        producer.send(synthetic_tick(n, T0 + n))
    assert producer.close(drain_timeout=30)
    assert writer.terminate() == 0
    with CaptureReader(tee) as reader:
        assert reader.header.origin == "writer"
        seqs = [env.seq for raw in reader for env in decode_frame(raw)]
    assert seqs == list(range(1, 2 * 20 * len(SAMPLES) + 1))  # commit order, once each
    replayed_url = f"sqlite:///{tmp_path / 'replayed.db'}"
    migrate.upgrade(replayed_url)
    replay_into_db(tee, replayed_url)
    assert digest(replayed_url) == digest(live_url)
    writer.start()  # a restarted writer never overwrites the capture: it starts the next file
    assert writer.terminate() == 0
    assert tee.exists() and (tee.parent / "tee-1.cap").exists()


def capture_three_alerts(
    tmp_path: Path, writer: WriterProcess, out: Path
) -> subprocess.CompletedProcess[str]:
    """``observer capture --count 3 --topic alert`` of ``writer``'s feed into ``out``."""
    command = [sys.executable, "-m", "observer", "capture", "--out", str(out)]
    command += ["--run-dir", str(writer.run_dir), "--count", "3", "--topic", "alert"]
    capture = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    producer = Producer("alerts", writer.ingest, tmp_path / "ob", batch_events=1)
    alert = next(e for e in SAMPLES if isinstance(e, Alert))

    # The capture joins the feed asynchronously: keep alerting until it has three.
    def capture_done() -> bool:
        producer.send(alert)
        assert producer.wait_acked(10)
        return capture.poll() is not None

    try:
        wait_until(capture_done, 60, "the capture to see three alerts")
    finally:
        producer.close(drain_timeout=0)
        if capture.poll() is None:
            capture.kill()
        output, errors = capture.communicate(timeout=30)
    return subprocess.CompletedProcess(command, capture.returncode, output, errors)


def test_feed_capture_command(
    tmp_path: Path, sqlite_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(sqlite_url).start()
    out = tmp_path / "feed.cap"
    done = capture_three_alerts(tmp_path, writer, out)
    alert = next(e for e in SAMPLES if isinstance(e, Alert))
    assert done.returncode == 0 and "captured 3 frames" in done.stdout
    with CaptureReader(out) as reader:
        assert reader.header.origin == "feed"
        events = [env.event for raw in reader for env in decode_frame(raw)]
    assert events == [alert] * 3


def write_capture(path: Path, frames: list[bytes]) -> None:
    with CaptureWriter(path, CaptureHeader(created_ns=0, origin="test")) as writer:
        for frame in frames:
            writer.append(frame)


def test_damaged_captures_are_refused(tmp_path: Path) -> None:
    with CaptureReader(SPINE) as reader:
        frames = list(reader)[:3]
    path = tmp_path / "c.cap"
    write_capture(path, frames)
    whole = path.read_bytes()

    path.write_bytes(whole[:-7])
    with pytest.raises(CaptureError, match="truncated frame 2"), CaptureReader(path) as r:
        list(r)
    with CaptureReader(path, allow_torn_tail=True) as r:
        assert list(r) == frames[:2]

    flipped = bytearray(whole)
    flipped[-1] ^= 1
    path.write_bytes(bytes(flipped))
    with (
        pytest.raises(CaptureError, match="checksum mismatch in frame 2"),
        CaptureReader(path) as r,
    ):
        list(r)

    path.write_bytes(b"PK\x03\x04 not a capture")
    with pytest.raises(CaptureError, match="not a capture file"):
        CaptureReader(path)


def test_capture_files_are_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "c.cap"
    write_capture(path, [])
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        write_capture(path, [])
