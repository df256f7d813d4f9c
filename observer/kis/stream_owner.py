"""What the owner of a `observer.kis.stream.KisStream` gives it and hears from it.

`StreamSettings` configures one session (limits, reconnect policy, frame limits);
`StreamListener` is the one object that hears everything the session reports, from the
stream's own task, never concurrently. `StreamState`, `NOACK` and `PERSISTENT_REFUSALS` name
what the listener is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from observer.kis.feeds import Feed
from observer.kis.frames import FrameLimits, FrameListener
from observer.kis.keepalive import PingpongAnswer
from observer.kis.realtime import RealtimeEvents
from observer.kis.registrations import MAX_REGISTRATIONS

__all__ = [
    "BACKOFF_S",
    "NOACK",
    "PERSISTENT_REFUSALS",
    "StreamListener",
    "StreamSettings",
    "StreamState",
]

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
NOACK = "NOACK"  # the refusal of a registration KIS left unanswered (``ack_timeout_s``)
# Session refusals a reconnect does not cure (OPSP8996: another session holds the app key).
# Retried all the same (it may let go), but its owner alerts soon (Track B: once unhealthy),
# not ~45 min later when the budget is spent (`on_state`'s ``refused`` reason starts with it).
PERSISTENT_REFUSALS = frozenset({"OPSP8996"})

_FRAME_LIMITS = FrameLimits()

StreamState = Literal["connecting", "connected", "disconnected", "refused", "stopped"]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """One session's limits; the defaults are KIS's limits and a policy that stays inside them."""

    max_registrations: int = MAX_REGISTRATIONS
    backoff_s: tuple[float, ...] = BACKOFF_S  # between failed sessions, jittered down to half
    reconnects_per_hour: int = 60  # beyond: `BudgetSpent`
    silence_s: float = 90.0  # a connection this quiet (clock time) is dropped
    idle_silence_s: float | None = None  # the same while nothing is wanted; None: silence_s
    ack_timeout_s: float = 10.0  # a registration unanswered this long is refused (`NOACK`)
    frame_limits: FrameLimits = _FRAME_LIMITS  # the frame limit, the burst that reconnects
    # Whether a session opened with nothing wanted presents its approval key at once, by
    # releasing a registration it does not hold (KIS answers OPSP0003), so that KIS counts
    # it as the app key's session (OPSP8996 shows now) and keeps it alive.
    identify: bool = False
    # How KIS's PINGPONG is answered (`observer.kis.keepalive`): which answer KIS requires is
    # unconfirmed, so both a pong control frame and the text echo by default.
    pingpong_answer: PingpongAnswer = "both"
    # The silence limits grow to this many times the measured PINGPONG interval (wall
    # seconds), never below their configured values; 0: the configured limits alone.
    silence_factor: float = 2.5

    @property
    def idle_s(self) -> float:
        """The silence limit while nothing is wanted."""
        return self.silence_s if self.idle_silence_s is None else self.idle_silence_s


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
        nothing is wanted and ``identify`` is off.
        """

    def priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]:
        """The order registrations are re-sent in after a reconnect: lowest first.

        The most important first, in case the new session takes fewer.
        """
