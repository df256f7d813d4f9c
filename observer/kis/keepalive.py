"""KIS's PINGPONG keep-alive: how it is answered, and the silence limit its interval sets.

KIS sends a JSON text frame ``{"header": {"tr_id": "PINGPONG", ...}}`` now and then. Its own
samples answer with a WebSocket pong control frame carrying the text; python-kis echoes the
text frame. Which one KIS requires is unconfirmed, so `answer_pingpong` sends what
``PingpongAnswer`` says (both by default). `PingInterval` measures the interval between
PINGPONGs (wall seconds) on a stream's connections; `silence_limit_s` derives the silence
limit from it, never shorter than the configured one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, Protocol

__all__ = ["PingInterval", "PingpongAnswer", "answer_pingpong", "silence_limit_s"]

# "both": a pong control frame and the text echo; "pong": the control frame alone (KIS's
# samples); "echo": the text frame alone (python-kis).
PingpongAnswer = Literal["both", "pong", "echo"]


class _Socket(Protocol):
    async def send(self, message: str) -> None: ...
    async def pong(self, data: str | bytes = b"") -> None: ...


async def answer_pingpong(socket: _Socket, text: str, answer: PingpongAnswer) -> None:
    """Answer one PINGPONG ``text`` on ``socket`` as ``answer`` says (pong frame first)."""
    if answer in ("both", "pong"):
        await socket.pong(text.encode())
    if answer in ("both", "echo"):
        await socket.send(text)


def silence_limit_s(configured_s: float, factor: float, interval_s: float | None) -> float:
    """The silence limit: ``max(configured_s, factor * interval_s)``.

    ``interval_s`` is the measured PINGPONG interval, None until one is measured (the
    configured limit then applies); ``factor`` 0 keeps the configured limit. The result is
    never shorter than ``configured_s``: a server that keeps its sessions alive with rarer
    PINGPONGs than the configured limit lengthens the limit, never the reverse.
    """
    if interval_s is None or factor <= 0 or interval_s <= 0:
        return configured_s
    return max(configured_s, factor * interval_s)


class PingInterval:
    """The interval between PINGPONGs, measured on one stream's connections (wall seconds).

    An interval is measured between two PINGPONGs of the same connection: `connected`
    forgets the last one heard, not the interval measured (the server's keep-alive pace
    outlives a reconnect). The latest interval counts.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now  # wall seconds
        self._last: float | None = None
        self.interval_s: float | None = None  # None: not measured yet
        self.heard = 0  # PINGPONGs heard, on every connection

    def connected(self) -> None:
        """A new connection: its first PINGPONG starts a new measurement."""
        self._last = None

    def ping(self) -> None:
        """A PINGPONG arrived now."""
        now = self._now()
        if self._last is not None:
            self.interval_s = now - self._last
        self._last = now
        self.heard += 1
