"""A client holding another writer's public key: every CURVE handshake fails before ZAP.

Neither side's ZAP ever sees a key, so before these checks nothing reported it: the producer
only watched successful handshakes, the writer only ZAP's refusals.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec
import pytest
import zmq

from bus.curve import ClientCurve, ServerCurve, generate_key_pair, load_key_pair, load_public_key
from bus.producer import Producer
from harness.loadgen import synthetic_tick
from observer.process.heartbeat import (
    BUS_HANDSHAKE_FAILING_S,
    BUS_UNACKED_S,
    Heartbeat,
    HeartbeatLine,
)
from observer.supervisor.commands import HANDSHAKE_GRACE_S, UNACKED_GRACE_S, problems
from observer.supervisor.program import Program
from observer.writer.handshakes import HANDSHAKE_FAILED, HandshakeWatch
from tests.support import (
    WriterProcess,
    assert_exactly_once,
    beating,
    db_rows,
    free_port,
    wait_until,
)

HINT = "does the client hold this writer's public key?"
PRODUCER_HINT = "this host holds another writer's public key"


def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("writer", "rebuilt", "collectors"):
        generate_key_pair(folder, name)
    return folder


def writer_config(folder: Path, ingest: str, feed: str, key: str) -> str:
    return (
        f'[bus]\ningest_endpoint = "{ingest}"\nfeed_endpoint = "{feed}"\n'
        f'[bus.curve]\nkeys_dir = "{folder}"\nkey = "{key}"\n'
        '[bus.curve.clients]\ncollectors = ["p*"]\n'
    )


def send_ticks(producer: Producer, count: int) -> None:
    for n in range(count):
        producer.send(synthetic_tick(n, 1_700_000_000_000_000_000 + n))


def test_a_rotated_writer_key_is_reported_by_both_sides_and_mends_once_keys_match(
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store host was rebuilt (key ``rebuilt``); the collectors keep the old writer.key.

    While the writer is down no handshake is made at all: an outage, not a key mismatch.
    """
    monkeypatch.setattr("bus.producer._HANDSHAKE_QUIET_S", 1.0)  # ZeroMQ retries ~10 a second
    folder = keys(tmp_path)
    ingest, feed = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    writer = WriterProcess(
        tmp_path, sqlite_url, extra=writer_config(folder, ingest, feed, "rebuilt")
    )
    writer.start()
    old_writer = load_public_key(folder / "writer.key")
    producer = Producer(
        "p0",
        ingest,
        tmp_path / "outbox",
        ack_timeout_s=0.5,
        curve=ClientCurve(load_key_pair(folder, "collectors"), old_writer),
    )
    try:
        with caplog.at_level(logging.INFO, logger="bus.producer"):
            send_ticks(producer, 100)
            # ZeroMQ retries the handshake every 100 ms or so: several failures, one episode.
            wait_until(lambda: producer.handshake_failing_s > 2, 30, "a failing handshake")
            assert producer.acked == 0
            said = [r.getMessage() for r in caplog.records if PRODUCER_HINT in r.getMessage()]
            assert len(said) == 1 and ingest in said[0]
            # The writer alerts it once (its ZAP never saw a key) and logs it with a hint.
            code = f"SELECT count(*) FROM alerts WHERE code = '{HANDSHAKE_FAILED}'"
            wait_until(lambda: db_rows(sqlite_url, code)[0][0] > 0, 30, "the writer's alert")
            writer.terminate()
            assert db_rows(sqlite_url, code)[0][0] == 1
            assert writer.log.read_text().count(HINT) == 1
            wait_until(lambda: producer.handshake_failing_s == 0, 30, "an outage is no key")
            # The writer goes back to the key the collectors hold: the episode ends.
            writer.config.write_text(
                writer.config.read_text().replace('key = "rebuilt"', 'key = "writer"')
            )
            writer.start()
            assert producer.wait_acked(30)
            assert producer.handshake_failing_s == 0
        assert any("succeeds again" in r.getMessage() for r in caplog.records)
        assert_exactly_once(sqlite_url, {"p0": producer.last_seq, "writer": 1})  # its alert
    finally:
        producer.close(drain_timeout=0)
        writer.kill()


def test_a_failing_handshake_reaches_the_heartbeat_and_ctl_status(tmp_path: Path) -> None:
    """A worker's heartbeat carries it; `problems` names it after the grace."""
    folder = keys(tmp_path)
    ingest = f"tcp://127.0.0.1:{free_port()}"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = ServerCurve(load_key_pair(folder, "rebuilt"), {})
    router = context.socket(zmq.ROUTER)
    server.apply(router)
    router.bind(ingest)
    producer = Producer(
        "p0",
        ingest,
        tmp_path / "outbox",
        context=context,
        curve=ClientCurve(
            load_key_pair(folder, "collectors"), load_public_key(folder / "writer.key")
        ),
    )
    read, write = os.pipe()
    try:
        notifier = Heartbeat(write, interval_s=0)
        notifier.report_producer(producer)
        producer.send(synthetic_tick(1, 1_700_000_000_000_000_000))
        wait_until(lambda: producer.handshake_failing_s > 0.5, 30, "a failing handshake")
        notifier.beat_now({})
        beat = msgspec.json.decode(os.read(read, 65536).splitlines()[-1], type=HeartbeatLine)
        assert 0 < beat.counters[BUS_HANDSHAKE_FAILING_S] < HANDSHAKE_GRACE_S
        assert beat.counters["bus_pending"] == 1
    finally:
        producer.close(drain_timeout=0)
        router.close(linger=0)
        context.term()
        os.close(read)

    def program(failing_s: float) -> Program:
        return beating("track_b", {BUS_HANDSHAKE_FAILING_S: failing_s, "bus_pending": 5000.0})

    # Within the grace (a writer restarting mid-handshake) the host is healthy; past it, not.
    assert problems([program(beat.counters[BUS_HANDSHAKE_FAILING_S])], lambda _: True) == []
    [problem] = problems([program(HANDSHAKE_GRACE_S + 5)], lambda _: True)
    assert problem.startswith("track_b: bus: the CURVE handshake with the writer has failed")


def test_events_the_writer_leaves_unacknowledged_past_the_grace_are_a_problem() -> None:
    """A writer stopped or out of the host's reach, its keys fine: the programs beat on and
    ``ctl status`` said healthy while nothing they produced was stored."""

    def program(unacked_s: float) -> Program:
        return beating("track_b", {BUS_UNACKED_S: unacked_s, "bus_pending": 5000.0})

    assert problems([program(UNACKED_GRACE_S - 1)], lambda _: True) == []  # a writer restarting
    [problem] = problems([program(UNACKED_GRACE_S + 5)], lambda _: True)
    assert problem == (
        "track_b: bus: 5000 events have waited 125 s for the writer to acknowledge them "
        "(is it running, and reachable from this host?)"
    )


def test_the_writer_counts_every_failed_handshake_and_alerts_once_per_endpoint(
    tmp_path: Path,
) -> None:
    """On its tcp ingest and feed; an ipc endpoint (no CURVE) is not watched."""
    folder = keys(tmp_path)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = ServerCurve(load_key_pair(folder, "rebuilt"), {})
    stale = ClientCurve(load_key_pair(folder, "collectors"), load_public_key(folder / "writer.key"))
    bound: dict[str, tuple[zmq.Socket[bytes], str]] = {}
    clients = []
    for role, kind in (("ingest", zmq.ROUTER), ("feed", zmq.XPUB)):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        sock = context.socket(kind)
        server.apply(sock)
        sock.bind(endpoint)
        bound[role] = (sock, endpoint)
        client = context.socket(zmq.DEALER if role == "ingest" else zmq.SUB)
        stale.apply(client)
        client.connect(endpoint)
        clients.append(client)
    ipc = context.socket(zmq.PULL)
    ipc.bind(f"ipc://{tmp_path / 'ipc.sock'}")
    watch = HandshakeWatch({**bound, "other": (ipc, f"ipc://{tmp_path / 'ipc.sock'}")})
    alerts = []
    try:

        def failed_often() -> bool:
            alerts.extend(watch.check())
            return watch.failures >= 6 and len(alerts) == 2

        wait_until(failed_often, 30, "failed handshakes on both endpoints")
        alerts.extend(watch.check())
        assert sorted(a.context["role"] for a in alerts) == ["feed", "ingest"]  # type: ignore[attr-defined]
        assert {a.code for a in alerts} == {HANDSHAKE_FAILED}  # type: ignore[attr-defined]
    finally:
        watch.close()
        for sock in (*clients, ipc, *(s for s, _ in bound.values())):
            sock.close(linger=0)
        context.term()
