"""WebSocket frames a session cannot read: oversized or malformed ones cost that frame alone.

A frame over `FrameLimits.max_bytes`, not UTF-8, or refused whole by the decoder
(`KisProtocolError`) is dropped and counted, and the session goes on: a reconnect is a gap for
each of its symbols. A *rate* of them (`BadFrameRate`) starts an episode, in which the stream
reconnects once, with its backoff and within its budget; the listener holds the episode (in its
process's alert book, so a restart takes it over). A frame of a layout the client does
not know (`KisLayoutUnknown`) is dropped as `UNKNOWN_LAYOUT`, logged once per TR and width: a
layout KIS changed refuses every frame, one episode and one reconnect, as any format change. Above
`HARD_MAX_BYTES` the WebSocket library ends the connection itself (close code 1009).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import NamedTuple, Protocol

from websockets.exceptions import ConnectionClosed

from observer.errors import KisLayoutUnknown

__all__ = [
    "HARD_MAX_BYTES",
    "KEPT_CHARS",
    "MALFORMED",
    "OVERSIZED",
    "UNKNOWN_LAYOUT",
    "BadFrameRate",
    "DroppedFrame",
    "FrameGuard",
    "FrameLimits",
    "FrameListener",
    "frame_text",
]

log = logging.getLogger(__name__)

# The library's max_size, for memory's sake (it buffers at most 16 frames unread, its
# max_queue): a frame above is never read whole, the library ends the connection (close code
# 1009), and the stream reports a dropped frame and reconnects.
HARD_MAX_BYTES = 16 * 2**20
KEPT_CHARS = 4096  # of a dropped frame's text, for its record (never the whole of a flood)
OVERSIZED, MALFORMED = "oversized_frame", "malformed_frame"
UNKNOWN_LAYOUT = "unknown_layout"  # a record width no known layout of its TR has
_NS = 1_000_000_000


class FrameLimits(NamedTuple):
    """The application's frame limit and the rate of bad frames that restarts a session.

    ``max_bytes``' default, 1 MiB (the library's own default limit), is above anything KIS's
    format makes: a frame says its record count in three digits (kis-api.md §5.5), and 999
    records of the widest TR the decoder knows (an order book of 59 fields: 288 characters in
    the tests' sample after §5.7, some 400 with every quantity in the millions; its 2026-09
    layout's 63 a few more) are about 400 KB. A frame of real trades is a few KB: the
    reference's example trade, completed to 46 fields, is 252 characters, and the simulator
    sends ten trades a frame at most.
    """

    max_bytes: int = 2**20
    bad_per_window: int = 10  # more than this many within the window: an episode
    window_s: float = 60.0  # clock seconds


class DroppedFrame(NamedTuple):
    """A frame the session dropped: its cause, why, and its text (its start, `KEPT_CHARS`).

    ``cause``, not ``kind``: a feed's kind (`observer.kis.feeds.FeedKind`) is another thing.
    """

    cause: str  # OVERSIZED, MALFORMED or UNKNOWN_LAYOUT
    error: str
    text: str
    length: int  # of the whole frame, in bytes
    received_ns: int
    tr_id: str = ""  # an UNKNOWN_LAYOUT frame's TR ...
    width: str = ""  # ... and its record width (`KisLayoutUnknown.width_text`)

    @classmethod
    def of(cls, cause: str, error: str, message: bytes, received_ns: int) -> DroppedFrame:
        """The frame ``message`` dropped for ``error``: its start as text, its length."""
        return cls(cause, error, _start(message), len(message), received_ns)

    @classmethod
    def unknown(cls, exc: KisLayoutUnknown, message: bytes, received_ns: int) -> DroppedFrame:
        """The frame ``message`` refused for a layout the client does not know."""
        start, length = _start(message), len(message)
        return cls(UNKNOWN_LAYOUT, str(exc), start, length, received_ns, exc.tr_id, exc.width_text)


def frame_text(message: bytes, limits: FrameLimits, received_ns: int) -> str | DroppedFrame:
    """The text of a frame as received, or why it is dropped (over the limit, not UTF-8)."""
    size = len(message)
    if size > limits.max_bytes:
        error = f"{size:,} bytes, over the limit of {limits.max_bytes:,}"
        return DroppedFrame.of(OVERSIZED, error, message, received_ns)
    try:
        return message.decode()
    except UnicodeDecodeError as exc:
        error = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        return DroppedFrame.of(MALFORMED, error, message, received_ns)


def _start(message: bytes) -> str:
    return message[:KEPT_CHARS].decode("utf-8", "replace")


class BadFrameRate:
    """Bad frames within a sliding window: the burst that starts an episode, the quiet that ends it.

    More than ``bad_per_window`` within ``window_s`` start an episode unless ``episode_open``
    says one is open; an open one ends at the first good frame a window after the last bad
    frame, or after ``started_ns`` for an episode open before this session's first (one an
    earlier process left open).
    """

    def __init__(
        self, limits: FrameLimits, episode_open: Callable[[], bool], started_ns: int = 0
    ) -> None:
        self.limit = limits.bad_per_window
        self.window_ns = int(limits.window_s * _NS)
        self.episode_open = episode_open
        self.recent: deque[int] = deque()  # receive times of the bad frames in the window
        self.last_ns = started_ns  # the latest bad frame

    def bad(self, now_ns: int) -> bool:
        """Count a bad frame; True if it starts an episode (the session reconnects once)."""
        self.last_ns = now_ns
        self.recent.append(now_ns)
        while self.recent[0] <= now_ns - self.window_ns:
            self.recent.popleft()
        return len(self.recent) > self.limit and not self.episode_open()

    def good(self, now_ns: int) -> bool:
        """A frame read well; True if it ends the open episode (a window without a bad frame)."""
        return now_ns - self.last_ns >= self.window_ns and self.episode_open()


class FrameListener(Protocol):
    """Hears of the frames a session drops, and of the bursts among them."""

    def on_dropped_frame(self, dropped: DroppedFrame) -> None:
        """A frame dropped (logged and counted already)."""

    def on_flood(self, why: str) -> None:
        """A burst of bad frames starts an episode: the session reconnects once."""

    def on_flood_over(self, why: str) -> None:
        """The burst's episode is over: a window passed without a bad frame."""

    def flooding(self) -> bool:
        """Whether a burst's episode is open (`on_flood` to `on_flood_over`, or left open)."""


class FrameGuard:
    """One session's frames it could not read: dropped, counted, and the bursts among them.

    The stream reads each frame's text through `text`, drops what the decoder refuses with
    `drop`, and closes the connection when `drop` names a burst; ``listener`` hears of each
    and holds the episode. ``started_ns``: when the session started (`BadFrameRate`).
    """

    def __init__(
        self, url: str, limits: FrameLimits, listener: FrameListener, started_ns: int = 0
    ) -> None:
        self.url = url
        self.limits = limits
        self.listener = listener
        self.rate = BadFrameRate(limits, listener.flooding, started_ns)
        self.dropped = 0  # since the start
        self.layouts_seen: set[tuple[str, str]] = set()  # (tr_id, width) unknown, logged

    def text(self, message: bytes, received_ns: int) -> str | DroppedFrame:
        """`frame_text` of a frame received."""
        return frame_text(message, self.limits, received_ns)

    def read(self, received_ns: int) -> None:
        """A data frame read well: the end of a burst's episode, a window after its last."""
        if self.rate.good(received_ns):
            self.listener.on_flood_over(f"no bad frame for {self.limits.window_s:.0f}s")

    def drop(self, dropped: DroppedFrame) -> str:
        """Count and hand on a frame dropped; why to reconnect if it starts a burst, else "".

        A frame of an unknown layout is logged once per TR and width (they come by thousands).
        """
        self.dropped += 1
        if dropped.cause == UNKNOWN_LAYOUT:
            if (dropped.tr_id, dropped.width) not in self.layouts_seen:
                self.layouts_seen.add((dropped.tr_id, dropped.width))
                log.error("stream %s: dropped a frame: %s", self.url, dropped.error)
        elif not self.listener.flooding():  # a burst is logged once, here
            log.warning("stream %s: dropped a frame: %s", self.url, dropped.error)
        self.listener.on_dropped_frame(dropped)
        if not self.rate.bad(dropped.received_ns):
            return ""
        why = (
            f"more than {self.limits.bad_per_window} bad frames within {self.limits.window_s:.0f}s"
        )
        log.error("stream %s: %s: reconnecting once", self.url, why)
        self.listener.on_flood(why)
        return why

    def closed(self, exc: ConnectionClosed, now_ns: int) -> str:
        """Why the peer or the library closed the connection; a frame over the cap is dropped."""
        if exc.rcvd is not None:
            return f"closed: {exc.rcvd.code}"
        if exc.sent is not None and exc.sent.code == 1009:  # the library's max_size
            error = f"over {HARD_MAX_BYTES:,} bytes: the connection ends on it"
            self.drop(DroppedFrame(OVERSIZED, error, "", 0, now_ns))
            return f"closed: 1009, a frame {error}"
        return "closed: no frame"
