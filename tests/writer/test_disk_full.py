"""A small volume filling up: the writer alerts, pauses, and resumes by itself; nothing is lost.

The database lives on a tmpfs of a few MiB mounted for the test; a ballast file takes its
free space below the thresholds, and deleting it gives the space back.
"""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.capture import CaptureHeader, CaptureReader, CaptureWriter
from bus.codec import decode_frame
from tests.support import (
    ROOT,
    ProducerProcess,
    WriterProcess,
    assert_exactly_once,
    db_rows,
    wait_until,
)
from tests.volumes import MIB, fill, small_volume
from tests.writer.test_replay import capture_three_alerts

VOLUME_MIB = 32


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of VOLUME_MIB for the database; skipped where mounting is not allowed."""
    with small_volume(tmp_path / "volume", VOLUME_MIB) as path:
        yield path


def _writer(make: Callable[..., WriterProcess], volume: Path, disk: str) -> WriterProcess:
    writer = make(f"sqlite:///{volume / 'observer.db'}", extra=f"[disk]\n{disk}\n")
    return writer.start()


def _rows(url: str, table: str) -> list[tuple[str, str, str]]:
    return [
        tuple(r) for r in db_rows(url, f"SELECT code, severity, subject FROM {table} ORDER BY seq")
    ]


def test_the_writer_pauses_on_a_critical_volume_and_resumes_by_itself(
    tmp_path: Path, volume: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = _writer(
        writer_factory,
        volume,
        """check_interval_s = 0.2
warn_free_bytes = 12582912
warn_free_percent = 0
critical_free_bytes = 6291456
critical_free_percent = 0""",
    )
    url, low, critical = writer.url, ("disk_low", "warning"), ("disk_critical", "critical")
    first = ProducerProcess(tmp_path, "first", writer.ingest).start(2000)
    assert first.result()["drained"]

    fill(volume, 9 * MIB)  # below warn
    wait_until(lambda: _rows(url, "alerts") == [(*low, "writer:database")], 30, "disk_low")
    fill(volume, 3 * MIB)  # below critical: the alert still fits, then no more frames
    wait_until(lambda: len(_rows(url, "alerts")) == 2, 30, "disk_critical")
    assert _rows(url, "alerts")[1] == (*critical, "writer:database")
    wait_until(lambda: "taking no new frames" in writer.log.read_text(), 30, "the pause")

    second = ProducerProcess(tmp_path, "second", writer.ingest).start(3000)
    outbox = second.outbox
    wait_until(
        lambda: sum(p.stat().st_size for p in outbox.glob("*.seg")) > 100_000,
        60,
        "the second producer's events in its outbox",
    )
    assert second.proc is not None and second.proc.poll() is None  # still waiting for acks
    assert "second" not in writer.offsets()  # nothing taken while critical

    (volume / "ballast").unlink()
    freed = time.monotonic()
    report = second.result()
    resumed_s = time.monotonic() - freed
    assert report["drained"] and report["last_seq"] == 3000
    resolved = wait_until(lambda: _rows(url, "alert_resolutions"), 30, "resolutions")
    assert sorted(resolved) == sorted([(*low, "writer:database"), (*critical, "writer:database")])
    log = writer.log.read_text()
    left = int(log.split("room again: taking frames (")[1].split()[0])
    assert left > 0  # the writer did receive frames while paused, and left them to resend
    assert writer.proc is not None and writer.proc.poll() is None and writer.starts == 1
    assert_exactly_once(url, {"first": 2000, "second": 3000, "writer": 4})
    audit = subprocess.run(
        [sys.executable, "-m", "observer", "audit", "--db", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    print(f"resumed and drained 3000 events {resumed_s:.2f}s after the space came back")
    assert writer.terminate() == 0


def test_a_full_volume_without_thresholds_is_retried_until_there_is_room(
    tmp_path: Path, volume: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    """Thresholds off: the commit fails on the full disk, is retried, and nothing is lost."""
    writer = _writer(
        writer_factory,
        volume,
        """warn_free_bytes = 0
warn_free_percent = 0
critical_free_bytes = 0
critical_free_percent = 0""",
    )
    fill(volume, 0)
    producer = ProducerProcess(tmp_path, "p", writer.ingest).start(3000)
    wait_until(lambda: "database failed, retrying" in writer.log.read_text(), 60, "a failure")
    assert writer.offsets().get("p", 0) < 3000
    (volume / "ballast").unlink()
    assert producer.result()["drained"]
    assert writer.proc is not None and writer.proc.poll() is None and writer.starts == 1
    assert_exactly_once(writer.url, {"p": 3000})
    assert writer.terminate() == 0


def test_a_full_capture_volume_stops_the_capture_and_never_the_writer(
    tmp_path: Path, volume: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    """The database has every event; the capture is a tee. A write its volume refused took
    the writer down with a traceback: restarted into a new capture file, it failed again
    at its next commit, each restart taking one batch, until it was parked FATAL. Now the
    tee stops for the run, alerted; a writer started again captures into a new file, which
    ends the alert."""
    capture = volume / "tee.cap"
    writer = writer_factory(
        f"sqlite:///{tmp_path / 'observer.db'}",
        capture=capture,
        extra="[disk]\nwarn_free_bytes = 0\nwarn_free_percent = 0\n"
        "critical_free_bytes = 0\ncritical_free_percent = 0\n",
    ).start()
    first = ProducerProcess(tmp_path, "first", writer.ingest).start(2000)
    assert first.result()["drained"]
    fill(volume, 0)
    second = ProducerProcess(tmp_path, "second", writer.ingest).start(3000)
    assert second.result()["drained"]
    stopped = wait_until(
        lambda: db_rows(
            writer.url, "SELECT severity, message FROM alerts WHERE code = 'capture_stopped'"
        ),
        30,
        "capture_stopped",
    )
    assert stopped[0][0] == "critical" and f"capture {capture} stopped after" in stopped[0][1]
    assert writer.proc is not None and writer.proc.poll() is None and writer.starts == 1
    assert_exactly_once(writer.url, {"first": 2000, "second": 3000, "writer": 1})
    assert writer.terminate() == 0
    assert sorted(p.name for p in volume.iterdir()) == ["ballast", "tee.cap"]  # no tee-1.cap
    with CaptureReader(capture) as reader:  # whole frames only: no torn tail to allow
        seqs: dict[str, list[int]] = {}
        for raw in reader:
            for env in decode_frame(raw):
                seqs.setdefault(env.source, []).append(env.seq)
    assert seqs["first"] == list(range(1, 2001))  # in commit order, up to the refusal
    assert seqs.get("second", []) == list(range(1, len(seqs.get("second", [])) + 1))
    assert len(seqs.get("second", [])) < 3000
    # Room again, the writer started again: a new capture file, and its first frames end
    # the alert the stopped one left open
    (volume / "ballast").unlink()
    writer.start()
    third = ProducerProcess(tmp_path, "third", writer.ingest).start(100)
    assert third.result()["drained"]
    ended = wait_until(
        lambda: db_rows(
            writer.url,
            "SELECT severity, message FROM alert_resolutions WHERE code = 'capture_stopped'",
        ),
        30,
        "capture_stopped resolved",
    )
    assert ended == [("critical", f"frames are captured again, into {volume / 'tee-1.cap'}")]
    assert writer.terminate() == 0


def test_a_capture_write_the_volume_refuses_is_cut_back_to_its_last_whole_frame(
    volume: Path,
) -> None:
    path = volume / "c.cap"
    fill(volume, 300 * 1024)
    frames = [bytes([n % 251]) * (50_000 + n) for n in range(40)]
    writer = CaptureWriter(path, CaptureHeader(created_ns=0, origin="test"))
    with pytest.raises(OSError) as refused:
        for frame in frames:
            writer.append(frame)
            writer.flush()
    assert refused.value.errno == errno.ENOSPC
    kept = writer.frames
    assert 0 < kept < 10
    with CaptureReader(path) as reader:  # no torn tail to allow
        assert list(reader) == frames[:kept]
    (volume / "ballast").unlink()
    writer.close()  # the refused frame waited: written now, right after the whole ones
    with CaptureReader(path) as reader:
        assert list(reader) == frames[: kept + 1]


def test_a_feed_capture_on_a_full_volume_says_so_in_one_line(
    tmp_path: Path, volume: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(f"sqlite:///{tmp_path / 'observer.db'}").start()
    fill(volume, 0)
    out = volume / "feed.cap"
    done = capture_three_alerts(tmp_path, writer, out)
    assert done.returncode == 1, done
    assert done.stderr == f"observer capture: {out}: No space left on device; nothing was kept\n"
    assert not out.exists()  # no file without even its header
    assert writer.terminate() == 0
