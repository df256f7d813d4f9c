"""The feed: PUB/SUB of committed events, with dotted topics.

A feed message is two frames ``[topic, frame]``; the frame holds the envelopes of one topic from
one commit, in commit order. Topics run from general to specific (``trade_tick.005930``) so a
subscriber filters by prefix without decoding. PUB drops at its high-water mark, so every
consumer rebuilds its state from the database first and then follows the feed.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import zmq

from bus.codec import BusFrame, decode_frame, join_parts
from bus.curve import ClientCurve, ServerCurve
from bus.endpoints import LINGER_MS, bind_secure, keep_alive
from bus.envelope import Envelope
from bus.errors import BusError
from bus.events import Event, event_tag

__all__ = ["FeedPublisher", "FeedSubscriber", "topic_for"]


def _require_curve(endpoint: str, curve: object) -> None:
    if endpoint.startswith("tcp://") and curve is None:
        raise BusError(f"{endpoint}: tcp endpoints need CURVE keys (no plaintext tcp)")


def topic_for(event: Event) -> bytes:
    """Return the feed topic of an event: its tag, then its symbol when it has one."""
    symbol = getattr(event, "symbol", "")
    tag = event_tag(event)
    return f"{tag}.{symbol}".encode() if symbol else tag.encode()


class FeedPublisher:
    """The writer's XPUB socket: publishes committed envelopes that someone subscribed to.

    XPUB hands us each subscription prefix when its first subscriber arrives and again (as an
    unsubscription) when its last one leaves, so topics nobody follows (ticks, most of the
    time) cost nothing to publish.
    """

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        curve: ServerCurve | None = None,
    ) -> None:
        _require_curve(endpoint, curve)
        self.socket = context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.LINGER, 0)  # the feed is lossy by contract
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        if curve is not None:
            curve.apply(self.socket)
        keep_alive(self.socket, endpoint)
        bind_secure(self.socket, endpoint)
        self._prefixes: set[bytes] = set()
        self._wanted: dict[bytes, bool] = {}  # topic -> some prefix matches it

    def publish_accepted(self, frames: Iterable[tuple[BusFrame, list[int]]]) -> None:
        """Publish the chosen envelopes of decoded frames: one message per topic, in order.

        Envelopes are grouped by topic and sent as their original bytes, so publishing costs
        no encoding; within a topic the order is the commit order.
        """
        self._follow_subscriptions()
        if not self._prefixes:
            return
        groups: dict[bytes, list[msgspec.Raw]] = {}
        for frame, taken in frames:
            for index in taken:
                topic = topic_for(frame.envelopes[index].event)
                if self._is_wanted(topic):
                    groups.setdefault(topic, []).append(frame.parts[index])
        for topic, parts in groups.items():
            self.socket.send_multipart([topic, join_parts(parts)])

    def _follow_subscriptions(self) -> None:
        while True:
            try:
                message = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if message[:1] == b"\x01":
                self._prefixes.add(message[1:])
            elif message[:1] == b"\x00":
                self._prefixes.discard(message[1:])
            self._wanted.clear()

    def _is_wanted(self, topic: bytes) -> bool:
        wanted = self._wanted.get(topic)
        if wanted is None:
            wanted = self._wanted[topic] = any(topic.startswith(p) for p in self._prefixes)
        return wanted

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()


class FeedSubscriber:
    """Follow the feed for some topic prefixes (all topics when none are given)."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        prefixes: Iterable[str] = ("",),
        curve: ClientCurve | None = None,
    ) -> None:
        _require_curve(endpoint, curve)
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, LINGER_MS)
        self.socket.setsockopt(zmq.RCVHWM, 100_000)
        if curve is not None:
            curve.apply(self.socket)
        keep_alive(self.socket, endpoint, backpressured=True)
        for prefix in prefixes:
            self.socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.socket.connect(endpoint)

    def recv_raw(self, timeout_ms: int) -> tuple[bytes, bytes] | None:
        """Return the next ``(topic, frame)`` or None after ``timeout_ms``."""
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return None
        topic, frame = self.socket.recv_multipart()
        return topic, frame

    def recv(self, timeout_ms: int) -> list[Envelope] | None:
        """Return the envelopes of the next message, or None after ``timeout_ms``."""
        message = self.recv_raw(timeout_ms)
        return None if message is None else decode_frame(message[1])

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()
