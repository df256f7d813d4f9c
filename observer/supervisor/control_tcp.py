"""The control commands over tcp, for operators on other hosts: ZeroMQ with CURVE only.

The same request and reply as the Unix socket (`observer.supervisor.control`) on a ROUTER
socket (client: `request_tcp`). The supervisor is the CURVE server with its host's key pair;
ZAP (`bus.curve.Gatekeeper`) admits only the keys in ``[supervisor] operators``. Each refused
key is logged once and handed to ``on_refused`` (an alert); every refusal is counted. Bounds:
a request over `MAX_REQUEST_BYTES` drops the peer, at most ``max_requests`` are answered at
once, and a CURVE handshake not done within ``idle_timeout_s`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import recv_monitor_message

from bus.curve import ClientCurve, Gatekeeper, ServerCurve
from bus.endpoints import keep_alive
from observer.supervisor.control import (
    MAX_REQUEST_BYTES,
    NoReply,
    Reply,
    Request,
    answer_bytes,
)

__all__ = [
    "ControlHandshakeFailed",
    "ControlRefused",
    "ControlUnreachable",
    "TcpControlServer",
    "request_tcp",
]

log = logging.getLogger(__name__)

REFUSED_POLL_MS = 1000  # how often refused keys are looked for while no request comes


class ControlRefused(ConnectionError):
    """The supervisor refused this operator key (its CURVE handshake failed)."""


class ControlHandshakeFailed(ControlRefused):
    """The CURVE handshake failed before any key was judged: a wrong server key, mostly."""


class ControlUnreachable(TimeoutError):
    """No connection to the endpoint at all: nothing listens there, or the host is cut off."""


CONNECT_S = 5.0  # a request with no connection after this is answered by nobody


# What the client sees of a failed handshake. A wrong server key never reaches ZAP: the
# server cannot open the client's HELLO and drops the connection (NO_DETAIL), and ZeroMQ
# would retry that for ever while the request waits its whole timeout.
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


class TcpControlServer:
    """Answer `Request`s on ``endpoint`` (tcp) from the operators of ``curve``."""

    def __init__(
        self,
        answer: Callable[[Request], Awaitable[Reply]],
        endpoint: str,
        curve: ServerCurve,
        on_refused: Callable[[str], None],
        max_requests: int = 32,
        idle_timeout_s: float = 5.0,
    ) -> None:
        self.answer = answer
        self.endpoint = endpoint
        self._curve = curve
        self._on_refused = on_refused
        self._slots = asyncio.Semaphore(max_requests)
        self._idle_ms = int(idle_timeout_s * 1000)
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._gate = Gatekeeper(self._context, curve)
        self._raw: zmq.Socket[bytes] | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def refusals(self) -> int:
        """Handshakes refused so far (an unknown key retries: each attempt counts)."""
        return self._gate.refusals

    def start(self) -> None:
        """Start ZAP, then bind: libzmq admits any CURVE client while no ZAP handler runs."""
        self._gate.start()
        socket = self._context.socket(zmq.ROUTER)
        self._curve.apply(socket)
        socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        socket.setsockopt(zmq.HANDSHAKE_IVL, self._idle_ms)
        socket.setsockopt(zmq.LINGER, 0)
        keep_alive(socket, self.endpoint)
        socket.bind(self.endpoint)
        self._raw = socket
        self._socket = zmq.asyncio.Socket.from_socket(socket)  # the same socket, awaitable
        log.info("control commands over tcp+CURVE at %s", self.endpoint)

    async def serving(self) -> None:
        """Receive requests and answer each in its own task (at most ``max_requests``)."""
        socket = self._socket
        if socket is None:
            raise RuntimeError("serving() before start()")
        while True:
            for key in self._gate.take_refused():
                self._on_refused(key)
            if not await socket.poll(REFUSED_POLL_MS):
                continue
            await self._slots.acquire()
            frames = await socket.recv_multipart()
            task = asyncio.create_task(self._serve(socket, frames), name="control-tcp-request")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, socket: zmq.asyncio.Socket, frames: list[bytes]) -> None:
        try:
            if len(frames) < 2:  # a ROUTER always adds the peer's identity
                return
            reply = await answer_bytes(self.answer, frames[-1])
            await socket.send_multipart([*frames[:-1], msgspec.json.encode(reply)])
        except zmq.ZMQError as exc:  # the peer went away: its reply is dropped
            log.warning("control reply over tcp not sent: %s", exc)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Stop answering, close the socket and the ZAP thread."""
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._raw is not None:
            self._raw.close(0)
        self._gate.stop()
        self._context.term()


def request_tcp(
    endpoint: str,
    curve: ClientCurve,
    command: str,
    args: list[str],
    timeout_s: float,
    connect_s: float = CONNECT_S,
) -> Reply:
    """Send one command to the supervisor at ``endpoint`` (tcp+CURVE) and return its reply.

    Raises
    ------
    ControlRefused
        The supervisor refused this key (not among its operators), or, as
        `ControlHandshakeFailed`, the handshake failed (``curve.server_public`` is not the
        public key of the supervisor there, or what answers there speaks no CURVE).
    ControlUnreachable
        No connection within ``connect_s``: nothing listens at ``endpoint``, or the link is
        down. (ZeroMQ would retry for ever, and the request waited its whole timeout.)
    TimeoutError
        Connected, and no reply within ``timeout_s``.
    NoReply
        An answer that is not a reply (garbled, or from a peer that is no supervisor).
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        curve.apply(socket)
        keep_alive(socket, endpoint)
        monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED | _HANDSHAKE_FAILED)
        socket.connect(endpoint)
        socket.send(msgspec.json.encode(Request(command, args)))
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        started = time.monotonic()
        deadline, connected = started + timeout_s, False
        while (left := deadline - time.monotonic()) > 0:
            if not connected:
                left = min(left, started + connect_s - time.monotonic())
                if left <= 0:
                    raise ControlUnreachable(
                        f"no supervisor answered at {endpoint}: no connection within "
                        f"{connect_s:g}s (is it running there, the port right, the link up?)"
                    )
            ready = dict(poller.poll(int(left * 1000) + 1))
            if socket in ready:
                return _reply(socket.recv())
            if monitor in ready:
                event = recv_monitor_message(monitor)["event"]
                if event == zmq.EVENT_CONNECTED:
                    connected = True
                elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    raise ControlRefused(f"{endpoint} refused this key: it is not an operator's")
                else:
                    raise ControlHandshakeFailed(
                        f"the CURVE handshake with {endpoint} failed: is --server-key this "
                        "supervisor's public key?"
                    )
        raise TimeoutError(f"{endpoint}: no reply to {command} within {timeout_s:g}s")
    finally:
        context.destroy(0)


def _reply(message: bytes) -> Reply:
    """The `Reply` in ``message``; `NoReply` (what is wrong, never the bytes) if it is none."""
    try:
        return msgspec.json.decode(message, type=Reply)
    except msgspec.DecodeError as exc:  # ValidationError too: JSON, but not a reply
        raise NoReply(f"not a whole reply ({exc})") from None
