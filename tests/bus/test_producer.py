"""The producer against a real ROUTER socket played by the test: credits, acks, resends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
import zmq

from bus.codec import decode_ack, decode_parts, encode_ack
from bus.curve import ClientCurve, KeyPair
from bus.envelope import Ack
from bus.errors import OutboxBehindWriter
from bus.events import Alert
from bus.outbox import Outbox
from bus.producer import Producer
from observer.process.heartbeat import Heartbeat
from observer.runtime import earlier_run_stored
from tests.bus.conftest import ALERT, Router, make
from tests.support import wait_until


def test_credit_bounds_what_is_unacknowledged_on_the_wire(tmp_path: Path, router: Router) -> None:
    # Frames of 10 events each (cut by batch_events, not by a linger that a loaded machine
    # may reach mid-way: a frame goes only whole within the credit, so frames of 1, 10, 10
    # and 10 would stop at 21); no resend meanwhile.
    producer = make(tmp_path, max_in_flight=30, ack_timeout_s=60.0, linger_s=30.0)
    for _ in range(100):
        producer.send(ALERT)
    producer.flush()
    wait_until(lambda: router.has(30), 10, "first window")
    router.receive(300)
    assert router.seqs == list(range(1, 31))  # the window is full: nothing more comes
    router.ack(30)
    wait_until(lambda: router.has(60), 10, "second window")
    assert router.seqs == list(range(1, 61))
    router.receive(300)
    assert len(router.seqs) == 60
    router.ack(60)
    wait_until(lambda: router.has(90), 10, "third window")
    router.receive(300)
    assert router.seqs == list(range(1, 91))
    router.ack(90)
    wait_until(lambda: router.has(100), 10, "the rest")
    assert router.seqs == list(range(1, 101))  # each once: no ack timed out meanwhile
    router.ack(100)
    assert producer.wait_acked(10)
    producer.close()


def test_unacked_s_is_how_long_the_writer_has_acknowledged_none_of_the_pending(
    tmp_path: Path, router: Router
) -> None:
    """A writer out of reach: the process beats on, its events pile up; ``ctl status`` and
    the rules judge this figure (the backlog alone never was)."""
    producer = make(tmp_path)
    try:
        assert producer.unacked_s == 0.0  # nothing pending
        producer.send(ALERT)
        wait_until(lambda: router.has(1), 10, "the event sent")
        wait_until(lambda: producer.unacked_s > 0.2, 10, "the wait to grow")
        router.ack(1)
        wait_until(lambda: producer.pending == 0, 10, "the ack")
        assert producer.unacked_s == 0.0
        producer.send(ALERT)  # pending again after none: counted from this send, not the ack
        assert producer.pending == 1 and producer.unacked_s < 0.2
    finally:
        producer.close(drain_timeout=0)


def test_resend_request_rewinds_to_the_writers_mark(tmp_path: Path, router: Router) -> None:
    producer = make(tmp_path)
    for _ in range(20):
        producer.send(ALERT)
    producer.flush()
    wait_until(lambda: router.has(20), 10, "all frames")
    router.ack(10, resend=True)  # the writer lost 11..20 in transit
    wait_until(lambda: router.has(30), 10, "the resend")
    assert router.seqs[20:] == list(range(11, 21))
    router.ack(20)
    assert producer.wait_acked(10)
    assert producer.resends == 1
    producer.close()


def test_silence_triggers_a_resend_of_everything_unacknowledged(
    tmp_path: Path, router: Router
) -> None:
    producer = make(tmp_path, ack_timeout_s=0.2)
    for _ in range(5):
        producer.send(ALERT)
    producer.flush()
    wait_until(lambda: router.has(10), 10, "a resend")
    assert router.seqs[:10] == [1, 2, 3, 4, 5] * 2
    router.ack(5)
    assert producer.wait_acked(10)
    producer.close()


def test_an_ack_beyond_the_outbox_stops_the_producer(tmp_path: Path, router: Router) -> None:
    producer = make(tmp_path)
    producer.send(ALERT)
    producer.flush()
    wait_until(lambda: router.has(1), 10, "the frame")
    router.ack(500)  # the writer has seqs this outbox never wrote: it was wiped
    with pytest.raises(OutboxBehindWriter, match="outbox was lost"):
        wait_until(lambda: producer.send(ALERT) and False, 10, "the failure")
    producer.close(drain_timeout=0)


def test_a_socket_that_cannot_be_set_up_fails_the_next_send_and_wait(tmp_path: Path) -> None:
    # Keys of the wrong length (a hand-made KeyPair, past the key files' checks): ZeroMQ
    # refuses them in the socket thread's setup, which must fail the producer, not vanish.
    bad = ClientCurve(KeyPair(public=b"short", secret=b"short"), server_public=b"short")
    producer = Producer("p", "tcp://127.0.0.1:1", tmp_path / "ob", curve=bad)
    try:
        with pytest.raises(zmq.ZMQError):
            wait_until(lambda: producer.send(ALERT) and False, 10, "the failure")
        with pytest.raises(zmq.ZMQError):
            producer.flush()
    finally:
        producer.close(drain_timeout=0)


def test_a_growing_backlog_raises_an_alert_event(tmp_path: Path) -> None:
    producer = make(tmp_path, backlog_alert_events=25)  # nobody listens: all stays on disk
    for _ in range(30):
        producer.send(ALERT)
    producer.close(drain_timeout=0)
    outbox = Outbox(tmp_path / "ob")
    events = [
        env.event for r in outbox.records for env in decode_parts(outbox.payload(r)).envelopes
    ]
    outbox.close()
    assert len(events) == 31
    assert [e.code for e in events if isinstance(e, Alert)].count("bus_outbox_backlog") == 1


def test_seq_continues_across_producers_of_one_source(tmp_path: Path) -> None:
    first = make(tmp_path)
    assert [first.send(ALERT) for _ in range(3)] == [1, 2, 3]
    first.close(drain_timeout=0)
    second = make(tmp_path)
    assert second.send(ALERT) == 4
    second.close(drain_timeout=0)


class OlderAck(msgspec.Struct, array_like=True):
    """The ack of a writer from before acks counted duplicates and conflicts."""

    source: str
    seq: int
    resend: bool = False


def test_acks_of_an_older_or_a_newer_writer_are_understood(tmp_path: Path, router: Router) -> None:
    """An ack grows only at its end: fields it lacks take their defaults, extra ones are
    ignored, so producers and writers of different releases still agree."""
    producer = make(tmp_path)
    for _ in range(20):
        producer.send(ALERT)
    producer.flush()
    wait_until(lambda: router.has(20), 10, "all frames")
    older = msgspec.msgpack.encode(OlderAck("p", 10))
    assert decode_ack(older) == Ack("p", 10, False, duplicates=0, conflicts=0)
    router.socket.send_multipart([router.peer, older])
    wait_until(lambda: producer.acked == 10, 10, "the older ack")
    newer = msgspec.msgpack.encode(["p", 20, False, 3, 1, "a field of a later release"])
    assert decode_ack(newer) == Ack("p", 20, False, duplicates=3, conflicts=1)
    router.socket.send_multipart([router.peer, newer])
    assert producer.wait_acked(10)
    producer.close()
    assert msgspec.msgpack.decode(encode_ack(Ack("p", 20, True, 3, 1)), type=OlderAck) == (
        OlderAck("p", 20, True)
    )


def test_an_earlier_runs_events_are_waited_for_alone_and_until_stored(
    tmp_path: Path, router: Router
) -> None:
    """A restarted worker reads its state back once the writer stored what its earlier run
    left in the outbox (`earlier_run_stored`): its own events sent since may still wait.
    Without a limit the wait lasts until they are stored or the worker is stopped; before,
    the worker exited after a minute and was started again."""
    earlier = Producer("p", f"ipc://{tmp_path / 'unheard.sock'}", tmp_path / "ob")  # no writer
    for _ in range(3):
        earlier.send(ALERT)
    earlier.close(drain_timeout=0)  # it died: three events left unacknowledged
    producer = make(tmp_path)
    beats = Heartbeat(None)

    async def wait(stop: asyncio.Event, within_s: float | None = None) -> bool:
        return await earlier_run_stored(producer, beats, stop, within_s)

    try:
        assert producer.last_seq == 3 and producer.acked == 0
        assert not asyncio.run(wait(asyncio.Event(), within_s=0.2))  # the writer is behind
        stopped = asyncio.Event()
        stopped.set()
        assert not asyncio.run(wait(stopped))
        wait_until(lambda: router.has(3), 10, "the events resent")
        router.ack(3)  # the earlier run's are stored
        assert asyncio.run(wait(asyncio.Event()))
        producer.send(ALERT)  # this run's own, seq 4: a wait through 3 is over, a full one not
        assert producer.wait_acked(0.1, through=3) and not producer.wait_acked(0.1)
        assert producer.pending == 1
    finally:
        producer.close(drain_timeout=0)
