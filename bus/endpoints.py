"""Bus addresses and the socket options every endpoint shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq

__all__ = [
    "LINGER_MS",
    "Endpoints",
    "bind_secure",
    "ipc_path",
    "keep_alive",
    "local_endpoints",
]

# Bounded linger: a closing socket may flush for this long, never hang a shutdown.
LINGER_MS = 1000

# tcp between hosts: a cut link leaves a TCP connection that looks alive, and TCP's own
# retransmission back-off after a long cut can take a minute to notice the link is back.
# ZMTP heartbeats drop such a connection after HEARTBEAT_TIMEOUT_MS of silence, and a
# connect attempt gives up after CONNECT_TIMEOUT_MS, so ZeroMQ retries every reconnect
# interval and the producer's reconnect rewind resends its outbox as soon as the link is up.
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_MS = 2000
# The kernel's equivalent for a socket that must not run ZMTP heartbeats (see `keep_alive`):
# an idle connection is probed after 2 s, every 1 s, and dropped after 3 unanswered probes;
# one whose sent bytes stay unacknowledged for TCP_MAXRT_MS is dropped (TCP_USER_TIMEOUT).
TCP_KEEPALIVE_IDLE_S = 2
TCP_KEEPALIVE_INTVL_S = 1
TCP_KEEPALIVE_CNT = 3
TCP_MAXRT_MS = 5000


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the writer listens: ``ingest`` (ROUTER, producers connect) and ``feed`` (PUB)."""

    ingest: str
    feed: str


def local_endpoints(run_dir: Path) -> Endpoints:
    """Return ``ipc://`` endpoints under ``run_dir`` (created owner-only if missing)."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Endpoints(
        ingest=f"ipc://{run_dir / 'ingest.sock'}", feed=f"ipc://{run_dir / 'feed.sock'}"
    )


def keep_alive(socket: zmq.Socket[bytes], endpoint: str, *, backpressured: bool = False) -> None:
    """Dead-peer detection and a bounded connect time on a tcp endpoint (before bind or connect).

    ``backpressured`` marks a socket that stops reading when its receive queue is full (the
    writer's ingest, a feed subscriber). Such a socket gets the kernel's TCP keepalive and
    TCP_USER_TIMEOUT instead of ZMTP heartbeats: libzmq 4.3.5 aborts the whole process
    (``Assertion failed: !_io_error (src/stream_engine_base.cpp:310)``) when a peer hangs up
    while the socket's input is stopped and the heartbeat timer fires next
    (zeromq/libzmq#4364, open). Other sockets keep ZMTP heartbeats.
    """
    if not endpoint.startswith("tcp://"):
        return
    socket.setsockopt(zmq.CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
    if backpressured:
        socket.setsockopt(zmq.TCP_KEEPALIVE, 1)
        socket.setsockopt(zmq.TCP_KEEPALIVE_IDLE, TCP_KEEPALIVE_IDLE_S)
        socket.setsockopt(zmq.TCP_KEEPALIVE_INTVL, TCP_KEEPALIVE_INTVL_S)
        socket.setsockopt(zmq.TCP_KEEPALIVE_CNT, TCP_KEEPALIVE_CNT)
        socket.setsockopt(zmq.TCP_MAXRT, TCP_MAXRT_MS)
        return
    socket.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)


def ipc_path(endpoint: str) -> Path | None:
    """Return the socket file of an ``ipc://`` endpoint, or None for other transports."""
    return Path(endpoint.removeprefix("ipc://")) if endpoint.startswith("ipc://") else None


def bind_secure(socket: zmq.Socket[bytes], endpoint: str) -> None:
    """Bind ``socket`` and make an ipc socket file owner-only (0600) whatever the umask."""
    path = ipc_path(endpoint)
    if path is None:
        socket.bind(endpoint)
        return
    old = os.umask(0o177)
    try:
        socket.bind(endpoint)
    finally:
        os.umask(old)
    path.chmod(0o600)
