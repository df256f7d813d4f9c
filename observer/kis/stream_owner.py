"""What the owner of a `observer.kis.stream.KisStream` gives it and hears from it.

`StreamSettings` (``[kis.stream]``, `observer.kis.settings`) configures every session;
`StreamListener` is the one object that hears everything the session reports, from the
stream's own task, never concurrently. `StreamState`, `NOACK` and `PERSISTENT_REFUSALS` name
what the listener is told.
"""

from __future__ import annotations

from typing import Literal, Protocol

from observer.kis.feeds import Feed
from observer.kis.frames import FrameListener
from observer.kis.realtime import RealtimeEvents
from observer.kis.settings import StreamSettings

__all__ = [
    "NOACK",
    "PERSISTENT_REFUSALS",
    "StreamListener",
    "StreamSettings",
    "StreamState",
]

NOACK = "NOACK"  # the refusal of a registration KIS left unanswered (``ack_timeout_s``)
# Session refusals a reconnect does not cure (OPSP8996: another session holds the app key).
# Retried all the same (it may let go), but its owner alerts soon (Track B: once unhealthy),
# not ~45 min later when the budget is spent (`on_state`'s ``refused`` reason starts with it).
PERSISTENT_REFUSALS = frozenset({"OPSP8996"})

StreamState = Literal["connecting", "connected", "disconnected", "refused", "stopped"]


class StreamListener(FrameListener, Protocol):
    """Hears one session: its data, its states, KIS's answers (and the frames it drops)."""

    def on_frame(self, frame: RealtimeEvents, received_ns: int) -> None:
        """A data frame decoded (records refused in ``frame.errors``), received at UTC ns."""

    def on_state(self, state: StreamState, reason: str) -> None:
        """The connection's state changed, for ``reason``."""

    def on_registered(self, registration: Feed) -> None:
        """KIS acknowledged a registration (again after every reconnect)."""

    def on_refused(self, registration: Feed, code: str, message: str) -> None:
        """KIS refused a wanted registration (``msg_cd``, ``msg1``; or `NOACK`): unwanted now."""

    def on_confirmed(self) -> None:
        """KIS confirmed the connection, once per connection.

        By an answer that is not a session refusal, or by data; at once on connecting if
        nothing is wanted and ``identify_idle`` is off.
        """

    def priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]:
        """The order registrations are re-sent in after a reconnect: lowest first.

        The most important first, in case the new session takes fewer.
        """
