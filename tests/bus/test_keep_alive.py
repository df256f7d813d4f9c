"""A producer that hangs up while the writer holds it back must not take the writer down.

libzmq 4.3.5 aborts a process whose tcp socket runs ZMTP heartbeats when a peer hangs up
while the socket's input is stopped by a full receive queue (zeromq/libzmq#4364): the
writer's ingest is exactly such a socket whenever it applies back-pressure, and a producer
whose own heartbeat gives up on the slow writer hangs up at exactly that moment. The writer
was seen killed by SIGABRT that way once, after a store host's reboot, with its outbox
draining at full rate.

Each case runs in a child process, since the fault is an abort of the whole process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zmq

from bus.endpoints import HEARTBEAT_IVL_MS
from tests.support import free_port

# The child: the writer's ingest on tcp with CURVE, a producer that fills its queue and
# hangs up without reading a reply, and long enough after for two heartbeat timers to fire.
# It then drains the ingest, which makes libzmq notice the hang-up, and waits for the
# disconnect; "survived" says the process came through.
CHILD = textwrap.dedent(
    """
    import sys, time, zmq
    from pathlib import Path
    from bus.curve import ClientCurve, Gatekeeper, ServerCurve, generate_key_pair, load_key_pair
    from bus.endpoints import HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS
    from bus.ingest import Ingest
    from zmq.utils.monitor import recv_monitor_message

    keys, endpoint, heartbeats = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "heartbeats"
    for name in ("writer", "producer"):
        generate_key_pair(keys, name)
    writer, producer = load_key_pair(keys, "writer"), load_key_pair(keys, "producer")
    context = zmq.Context()
    server = ServerCurve(writer, {producer.public: ("*",)})
    gate = Gatekeeper(context, server).start()
    if heartbeats:  # the configuration before: ZMTP heartbeats on the ingest too
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.RCVHWM, 100)
        server.apply(socket)
        socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        socket.bind(endpoint)
    else:
        socket = Ingest(context, endpoint, curve=server).socket
    monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 100_000)
    ClientCurve(producer, writer.public).apply(dealer)
    dealer.connect(endpoint)
    sent = 0
    deadline = time.monotonic() + 30
    while not socket.poll(10):  # the handshake is done once the first frame is through
        dealer.send(b"x" * 2000, zmq.NOBLOCK)
        sent += 1
        assert time.monotonic() < deadline, "no frame reached the ingest"
    for _ in range(20_000):  # far beyond the ingest's 100 queued frames: its input stops
        dealer.send(b"x" * 2000, zmq.NOBLOCK)
    time.sleep(0.5)  # the fault window: the ingest's queue fills
    dealer.close(0)  # the producer hangs up while the ingest is not reading
    time.sleep(2.5 * HEARTBEAT_IVL_MS / 1000)  # the fault window: heartbeat timers fire
    deadline = time.monotonic() + 30
    while not monitor.poll(0):
        while socket.poll(0):
            socket.recv_multipart()
        assert time.monotonic() < deadline, "the hang-up was never noticed"
        monitor.poll(10)
    assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
    print("survived", flush=True)
    """
)


def run_child(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "keys"), endpoint, mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_ingest_survives_a_producer_hanging_up_while_held_back(tmp_path: Path) -> None:
    done = run_child(tmp_path, "ingest")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "survived"


@pytest.mark.skipif(zmq.zmq_version() != "4.3.5", reason="the abort is documented for libzmq 4.3.5")
def test_the_same_hang_up_aborts_an_ingest_with_zmtp_heartbeats(tmp_path: Path) -> None:
    """The case above is no vacuous pass: with heartbeats, libzmq aborts the process."""
    done = run_child(tmp_path, "heartbeats")
    assert done.returncode == -6, (done.returncode, done.stdout, done.stderr)  # SIGABRT
    assert "!_io_error" in done.stderr
    assert HEARTBEAT_IVL_MS <= 1000  # the fault window above is 2.5 intervals
