"""A writer whose database went back: the producer resends what its outbox still holds,
declares the rest lost (`SeqsLost`) once, and never asks for the same range for ever; with
``sync`` a frame goes out only once it is fsynced."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bus.codec import decode_parts
from bus.errors import BusError
from bus.events import SeqsLost
from bus.outbox import Outbox, SyncPoint
from bus.producer import Producer
from bus.segments import outbox_state
from tests.bus.conftest import ALERT, Router, make
from tests.support import wait_until


def frames_of(router: Router, count: int) -> list[list[object]]:
    """Receive until ``count`` frames arrived; each frame's envelopes."""
    got: list[list[object]] = []
    while len(got) < count:
        assert router.socket.poll(10_000), f"{len(got)} of {count} frames"
        router.peer, raw = router.socket.recv_multipart()
        got.append(list(decode_parts(raw).envelopes))
    return got


def sent_and_trimmed(tmp_path: Path, router: Router, events: int) -> None:
    """``events`` sent, acknowledged and trimmed from the outbox by an earlier run."""
    earlier = make(tmp_path, segment_bytes=512)  # a segment every few frames
    for _ in range(events):
        earlier.send(ALERT)
    earlier.flush()
    wait_until(lambda: router.has(events), 10, "all sent")
    router.ack(events)
    assert earlier.wait_acked(10)
    earlier.close()


def test_a_writer_that_went_back_within_the_outbox_is_sent_the_rest_again(
    tmp_path: Path, router: Router
) -> None:
    sent_and_trimmed(tmp_path, router, 25)
    producer = make(tmp_path, ack_timeout_s=60.0)
    state = outbox_state(tmp_path / "ob")
    assert state is not None and state.acked == 25 and state.held_from > 1
    mark = state.held_from - 1  # the database lost what the outbox still holds on disk
    producer.send(ALERT)
    wait_until(lambda: router.has(26), 10, "the new event")
    router.seqs.clear()
    router.ack(mark, resend=True)
    wait_until(lambda: router.has(26 - mark), 10, "the resend")
    assert router.seqs == list(range(mark + 1, 27))
    assert producer.lost_events == 0
    router.ack(26)
    assert producer.wait_acked(10)
    producer.close()


def test_seqs_no_side_holds_are_declared_lost_once_and_the_source_goes_on(
    tmp_path: Path, router: Router
) -> None:
    sent_and_trimmed(tmp_path, router, 25)
    producer = make(tmp_path, ack_timeout_s=60.0)  # no resend but those the test asks for
    held_from = outbox_state(tmp_path / "ob").held_from  # type: ignore[union-attr]
    producer.send(ALERT)
    wait_until(lambda: router.has(26), 10, "the new event")
    router.ack(3, resend=True)  # the writer holds 1..3 only
    declaration, *rest = frames_of(router, 2)
    (env,) = declaration
    assert env.seq == held_from - 1  # type: ignore[attr-defined]
    assert env.event == SeqsLost(first_seq=4, last_seq=held_from - 1, acknowledged=25)  # type: ignore[attr-defined]
    assert rest[0][0].seq == held_from  # type: ignore[attr-defined]
    assert producer.lost_events == held_from - 4
    router.receive(200)  # the rest of the resend
    router.ack(3, resend=True)  # asked again (the declaration lost in transit): same bytes
    again = frames_of(router, 1)[0]
    assert again == declaration
    assert producer.lost_events == held_from - 4  # counted once
    router.ack(held_from - 1)  # the writer took the declaration
    router.receive(200)
    router.ack(26)
    assert producer.wait_acked(10)
    producer.close()


def test_a_writer_that_never_takes_the_declaration_ends_the_producer(
    tmp_path: Path, router: Router
) -> None:
    sent_and_trimmed(tmp_path, router, 25)
    producer = make(tmp_path, ack_timeout_s=60.0)
    producer.send(ALERT)
    wait_until(lambda: router.has(26), 10, "the new event")
    deadline = time.monotonic() + 60
    try:
        with pytest.raises(BusError, match=r"asked 10 times .* it does not take it"):
            while time.monotonic() < deadline:  # the writer asks again, and again
                router.receive(50)
                router.ack(3, resend=True)
                producer.wait_acked(0.2)  # raises once the producer gave up
    finally:
        producer.close(drain_timeout=0)


def test_with_sync_nothing_is_sent_before_it_is_fsynced(
    tmp_path: Path, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames written while a sync runs wait for the next one, which the test holds back."""
    started = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    real_run = SyncPoint.run
    calls: list[int] = []

    def held(point: SyncPoint) -> None:
        turn = min(len(calls), 1)
        calls.append(point.through)
        started[turn].set()
        assert release[turn].wait(30)
        real_run(point)

    monkeypatch.setattr(SyncPoint, "run", held)
    producer = make(tmp_path, sync=True)
    try:
        for _ in range(10):
            producer.send(ALERT)
        producer.flush()
        assert started[0].wait(10), "no sync was taken"
        for _ in range(10):  # written while the first sync runs: not covered by it
            producer.send(ALERT)
        producer.flush()
        assert router.receive(300) == 0, "sent before it was on the disk"
        release[0].set()
        assert started[1].wait(10), "no second sync"
        wait_until(lambda: router.has(calls[0]), 10, "what the first sync covered")
        router.receive(300)
        assert router.seqs == list(range(1, calls[0] + 1)), "sent before its own sync"
        release[1].set()
        wait_until(lambda: router.has(20), 10, "the rest, once synced")
        router.ack(20)
        assert producer.wait_acked(10)
    finally:
        for event in release:
            event.set()
        producer.close(drain_timeout=0)


def test_the_outbox_sends_only_what_a_sync_covered(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "ob", sync=True, segment_bytes=256)
    frame = b"\x91" + b"x" * 100
    for seq in range(1, 6):
        outbox.append(seq, seq, frame)
    assert outbox.sendable == 0  # written, not on the disk yet
    point = outbox.sync_point()
    assert point is not None and point.through == 5
    outbox.append(6, 6, frame)  # written while the sync runs: not covered by it
    point.run()
    outbox.synced_through(point)
    assert outbox.sendable == 5
    again = outbox.sync_point()
    assert again is not None and again.through == 6
    again.run()
    outbox.synced_through(again)
    assert outbox.sendable == 6 and outbox.sync_point() is None
    outbox.close()


def test_acked_is_on_the_disk_before_a_spent_segment_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        order.append(f"unlink {path.name}")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(os, "fdatasync", lambda fd: order.append("fdatasync"))
    monkeypatch.setattr(Path, "unlink", unlink)
    outbox = Outbox(tmp_path / "ob", sync=True, segment_bytes=256)
    frame = b"\x91" + b"x" * 200
    for seq in range(1, 4):
        outbox.append(seq, seq, frame)
    outbox.ack(2)
    assert order[0] == "fdatasync" and order[1].startswith("unlink")
    outbox.close()


def test_rewind_reloads_acknowledged_records_still_on_the_disk(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "ob", segment_bytes=256)
    frame = b"\x91" + b"x" * 100
    for seq in range(1, 7):
        outbox.append(seq, seq, frame)
    outbox.ack(5)  # the segment of 1..3 deleted; 4..6 is the active one
    assert outbox.held_from == 6
    outbox.rewind(4)
    assert outbox.acked == 4 and outbox.held_from == 5
    assert [r.first_seq for r in outbox.records] == [5, 6]
    assert outbox.payload(outbox.records[0]) == frame
    outbox.close()
    state = outbox_state(tmp_path / "ob")  # on the disk: 4..6, acknowledged or not
    assert state is not None and (state.acked, state.held_from, state.high) == (4, 4, 6)


def test_producer_figures_reach_the_heartbeat(tmp_path: Path) -> None:
    from observer.process.heartbeat import BUS_LOST_EVENTS, Heartbeat

    producer = Producer("p", f"ipc://{tmp_path / 'none.sock'}", tmp_path / "ob")
    producer.lost_events = 7
    notifier = Heartbeat(None)
    notifier.report_producer(producer)
    assert notifier._with_pending({})[BUS_LOST_EVENTS] == 7.0
    producer.close(drain_timeout=0)


def test_what_syncs_also_is_flushed_before_the_outbox_and_before_anything_is_sent(
    tmp_path: Path, router: Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process's journal, appended before its events, is on the disk before they are sent."""
    order: list[str] = []
    real_run = SyncPoint.run

    def run(point: SyncPoint) -> None:
        order.append("outbox")
        real_run(point)

    monkeypatch.setattr(SyncPoint, "run", run)
    producer = make(tmp_path, sync=True)

    def journal() -> None:
        order.append(f"journal with {len(router.seqs)} sent")

    producer.sync_also(journal)
    try:
        for _ in range(5):
            producer.send(ALERT)
        producer.flush()
        wait_until(lambda: router.has(5), 10, "sent")
        assert order[:2] == ["journal with 0 sent", "outbox"], order
        router.ack(5)
        assert producer.wait_acked(10)
    finally:
        producer.close(drain_timeout=0)
    unsynced = make(tmp_path / "plain", sync=False)
    unsynced.sync_also(journal)
    before = len(order)
    unsynced.send(ALERT)
    unsynced.flush()
    unsynced.close(drain_timeout=0)
    assert len(order) == before, "no fsync without sync: nothing to flush with it"
