"""ROUTER-side helpers for the writer: receive frames with their sender, send acks."""

from __future__ import annotations

import logging

import zmq

from bus.codec import MAX_FRAME_BYTES, encode_ack
from bus.curve import ServerCurve
from bus.endpoints import LINGER_MS, bind_secure, keep_alive
from bus.envelope import Ack
from bus.errors import BusError

__all__ = ["Ingest"]

log = logging.getLogger(__name__)

RCVHWM = 100  # frames queued per producer connection (see `Ingest`)


class Ingest:
    """The writer's ROUTER socket.

    Producers are DEALERs; each frame arrives with the routing id of its connection, and the
    ack for a source goes back to the routing id that last sent a frame of that source. A
    peer that sends a message larger than ``max_frame_bytes`` is disconnected by ZeroMQ
    (``ZMQ_MAXMSGSIZE``) before the message is ever held in memory whole.

    With ``curve`` (required for ``tcp://``) the socket is a CURVE server, and
    `recv_identified` also returns the public key the sender was admitted with.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        curve: ServerCurve | None = None,
    ) -> None:
        if endpoint.startswith("tcp://") and curve is None:
            raise BusError(f"{endpoint}: tcp endpoints need CURVE keys (no plaintext tcp)")
        self.endpoint = endpoint
        self.curve = curve
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # unroutable acks raise, never vanish
        # Frames queued per producer connection, not read yet: a producer's credit window is
        # 20 frames (20,000 events in frames of 1,000; a tick frame is about 0.22 MB), so
        # this holds five; the 100,000 of before let the copies a producer resends on each
        # ack timeout pile up to gigabytes. Past this, frames wait in the producer's own send
        # queue, then its sends wait with every frame kept in its outbox: back-pressure, never
        # loss.
        self.socket.setsockopt(zmq.RCVHWM, RCVHWM)
        self.socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        if curve is not None:
            curve.apply(self.socket)
        keep_alive(self.socket, endpoint, backpressured=True)
        bind_secure(self.socket, endpoint)
        self.unroutable_acks = 0

    def poll(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for a frame; True if one is waiting."""
        return bool(self.socket.poll(timeout_ms, zmq.POLLIN))

    def recv_nowait(self) -> tuple[bytes, bytes] | None:
        """Return ``(routing_id, frame)`` if one is waiting, else None.

        A message that is not exactly two parts is returned with an empty frame so the writer
        rejects and counts it like any other malformed input.
        """
        try:
            parts = self.socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        if len(parts) != 2:
            return parts[0], b""
        return parts[0], parts[1]

    def recv_identified(self) -> tuple[bytes, bytes, str] | None:
        """Like `recv_nowait`, plus the sender's CURVE public key (Z85; "" without CURVE)."""
        if self.curve is None:
            message = self.recv_nowait()
            return None if message is None else (message[0], message[1], "")
        try:
            parts = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        # ZAP's User-Id for a CURVE client is its public key (pyzmq's `curve_user_id`).
        user_id = parts[-1].get("User-Id") or ""
        frame = parts[1].bytes if len(parts) == 2 else b""
        return parts[0].bytes, frame, str(user_id)

    def ack(self, routing_id: bytes, ack: Ack) -> None:
        """Send an ack; if its producer is gone, drop it (the producer will resend)."""
        try:
            self.socket.send_multipart([routing_id, encode_ack(ack)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self.unroutable_acks += 1
            log.debug("ack %s/%d unroutable: %s", ack.source, ack.seq, exc)

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()
