"""An outbox whose volume fills up: a clear refusal, never a torn outbox, and no event lost."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bus.errors import OutboxFull
from bus.outbox import Outbox
from bus.producer import Producer
from harness.loadgen import synthetic_tick
from observer.process.disk import DiskSettings, DiskWatch
from tests.support import WriterProcess, assert_exactly_once, db_rows, wait_until
from tests.volumes import MIB, fill, small_volume


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    with small_volume(tmp_path / "volume", 2) as path:
        yield path


def test_a_full_volume_refuses_a_frame_and_leaves_the_outbox_whole(volume: Path) -> None:
    directory = volume / "outbox"
    outbox = Outbox(directory, segment_bytes=64 * 1024)
    fill(volume, 300 * 1024)
    frames = [bytes([n % 251]) * (20_000 + n) for n in range(100)]
    written = 0
    with pytest.raises(OutboxFull):
        for frame in frames:
            outbox.append(written + 1, written + 1, frame)
            written += 1
    assert 5 < written < 20 and outbox.next_seq == written + 1
    (volume / "ballast").unlink()
    for frame in frames[written : written + 20]:  # the same seqs, now that there is room
        outbox.append(outbox.next_seq, outbox.next_seq, frame)
    outbox.close()
    reopened = Outbox(directory, segment_bytes=64 * 1024)  # refuses damage other than a tail
    assert [reopened.payload(r) for r in reopened.records] == frames[: written + 20]
    assert reopened.next_seq == written + 21
    reopened.close()


def test_a_producer_waits_out_a_full_outbox_and_loses_nothing(
    tmp_path: Path, volume: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(f"sqlite:///{tmp_path / 'observer.db'}")
    thresholds = DiskSettings(
        check_interval_s=0.05,
        warn_free_bytes=1 * MIB,
        warn_free_percent=0,
        critical_free_bytes=0,
        critical_free_percent=0,
    )
    outbox = volume / "outbox" / "p"
    watch = DiskWatch(thresholds, {"outbox": outbox}, "p")
    producer = Producer(
        "p", writer.ingest, outbox, batch_events=50, max_frame_bytes=64 * 1024, watch=watch.check
    )
    try:
        fill(volume, 600 * 1024)  # below warn: the producer says so
        wait_until(lambda: producer.last_seq == 1, 10, "the disk_low alert")
        ticks = 0
        with pytest.raises(OutboxFull):  # the outbox fills, then a frame's worth in memory
            for n in range(100_000):
                before = producer.last_seq
                producer.send(synthetic_tick(n, time.time_ns()))
                ticks += 1
        assert producer.last_seq == before  # the refused event used no seq
        assert 1000 < ticks < 100_000

        (volume / "ballast").unlink()
        producer.flush()  # what waited in memory is written now
        writer.start()
        wait_until(lambda: producer.last_seq == ticks + 2, 10, "the resolution")
        assert producer.wait_acked(60)
    finally:
        producer.close()
    assert_exactly_once(writer.url, {"p": ticks + 2})
    alerts = db_rows(writer.url, "SELECT seq, code, subject FROM alerts")
    assert [tuple(a) for a in alerts] == [(1, "disk_low", "p:outbox")]
    resolved = db_rows(writer.url, "SELECT code, subject FROM alert_resolutions")
    assert [tuple(r) for r in resolved] == [("disk_low", "p:outbox")]
    assert writer.terminate() == 0
