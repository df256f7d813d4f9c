"""While the database is down the writer keeps reading its ingest socket and drops frames.

Before, the writer's retry loop never read the socket during an outage: every copy the
producers resent on their ack timeouts piled up in ZeroMQ's queue (up to 100,000 frames per
producer), and the writer's memory grew with the outage. Now what arrives meanwhile is
dropped unacknowledged, as while a disk is critical: the producers keep it in their outboxes,
and once a commit succeeds the writer asks them to resend from their marks.

A real writer (in a thread, on real ipc sockets) serves a real PostgreSQL database that is cut
as the delivery tests cut it; a raw DEALER shows the mechanism ack by ack, a real producer
process that everything arrives exactly once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import zmq

from bus.codec import decode_ack, encode_frame
from bus.endpoints import Endpoints, local_endpoints
from bus.envelope import Ack, Envelope
from bus.events import TradeTick
from observer.db import migrate
from observer.db.engine import make_engine
from observer.writer.service import Writer, WriterOptions
from observer.writer.store import Store
from tests.samples import SAMPLES, T0
from tests.support import ProducerProcess, assert_exactly_once, database_down, wait_until

pytestmark = pytest.mark.slow

TICK: TradeTick = SAMPLES[2]  # type: ignore[assignment]


def frame(first: int, last: int) -> bytes:
    ticks = (msgspec.structs.replace(TICK, cum_volume=n) for n in range(first, last + 1))
    return encode_frame([Envelope("s", n, T0 + n, t) for n, t in enumerate(ticks, first)])


@pytest.fixture
def serving(pg_url: str, tmp_path: Path) -> Iterator[tuple[Writer, Endpoints]]:
    migrate.upgrade(pg_url)
    engine = make_engine(pg_url)
    store = Store(engine)
    store.load_marks()
    endpoints = local_endpoints(tmp_path / "run")
    writer = Writer(store, endpoints, WriterOptions(retry_initial_s=0.1, retry_max_s=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), name="writer")
    thread.start()
    try:
        yield writer, endpoints
    finally:
        stop.set()
        thread.join(30)
        engine.dispose()
    assert not thread.is_alive()


def dropped(writer: Writer) -> float:
    return writer.counters().get("dropped_while_failing", 0)


def test_frames_sent_while_commits_fail_are_dropped_unacked_then_asked_again(
    serving: tuple[Writer, Endpoints], pg_url: str
) -> None:
    writer, endpoints = serving
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoints.ingest)

    def ack() -> Ack:
        assert dealer.poll(30_000), "no ack within 30 s"
        return decode_ack(dealer.recv())

    try:
        dealer.send(frame(1, 10))
        assert ack().seq == 10
        with database_down(pg_url):
            dealer.send(frame(11, 20))  # the batch the writer retries
            wait_until(lambda: writer.commit_failures >= 1, 30, "a failed commit")
            dealer.send(frame(21, 30))
            dealer.send(frame(31, 40))
            # Read while the database is down, not left in ZeroMQ's queue.
            wait_until(lambda: dropped(writer) >= 2, 30, "the writer to drop what arrives")
            assert not dealer.poll(0), "nothing is acknowledged while the database is down"
        # 11..20 commit; 21..40 were dropped: the producer is asked to resend at once.
        first = ack()
        assert (first.seq, first.resend) == (20, True)
        dealer.send(frame(21, 30))
        dealer.send(frame(31, 40))
        wait_until(lambda: ack().seq == 40, 30, "everything acknowledged")
    finally:
        dealer.close()
        context.term()
    assert writer.duplicates == 0
    assert_exactly_once(pg_url, {"s": 40})


def test_a_producer_sending_through_an_outage_lands_exactly_once(
    serving: tuple[Writer, Endpoints], pg_url: str, tmp_path: Path
) -> None:
    writer, endpoints = serving
    producer = ProducerProcess(tmp_path, "p0", endpoints.ingest).start(events=3_000, rate=500)
    wait_until(lambda: writer.store.events > 0, 60, "the first commit")
    with database_down(pg_url):
        # Down until the producer's frames are being dropped, not queued.
        wait_until(lambda: dropped(writer) >= 5, 60, "frames dropped during the outage")
    assert producer.result()["drained"]
    assert writer.counters()["dropped_while_failing"] >= 5
    assert_exactly_once(pg_url, {"p0": 3_000})
