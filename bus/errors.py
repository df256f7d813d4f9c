"""Exceptions raised by the bus (each class says when); `observer.errors` re-exports them.

::

    BusError
    ├── FrameError, EventError, CaptureError, LockHeld, KeyFileError
    └── OutboxError → OutboxLocked, OutboxFull, OutboxBehindWriter
"""

from __future__ import annotations

__all__ = [
    "BusError",
    "CaptureError",
    "EventError",
    "FrameError",
    "KeyFileError",
    "LockHeld",
    "OutboxBehindWriter",
    "OutboxError",
    "OutboxFull",
    "OutboxLocked",
]


class BusError(Exception):
    """Base of every bus failure."""


class FrameError(BusError):
    """Bytes that do not decode as a bus frame (garbage, truncation, unknown event type)."""


class EventError(BusError):
    """An event the bus cannot carry: a value msgpack cannot encode, or a frame too large.

    Raised by `Producer.send` before a seq is assigned, so nothing else is affected.
    """


class CaptureError(BusError):
    """A capture file with a bad header, a bad checksum or a truncated frame."""


class KeyFileError(BusError):
    """A CURVE key file that is missing, malformed, or a secret readable by others.

    The message names the file, never a key's secret part.
    """


class LockHeld(BusError):
    """Another live process holds the single-instance lock at ``path`` (see `bus.lock`)."""

    def __init__(self, path: object, holder: str) -> None:
        super().__init__(f"{path} is held by pid {holder}")
        self.path = path
        self.holder = holder


class OutboxError(BusError):
    """The durable outbox cannot be opened or written."""


class OutboxLocked(OutboxError):
    """Another live process already owns this source's outbox."""


class OutboxBehindWriter(OutboxError):
    """The writer acknowledged a seq above anything this outbox assigned.

    The outbox was lost or a source name is reused by two producers; sending on would make
    the writer skip new events as duplicates, so the producer stops instead.
    """


class OutboxFull(OutboxError):
    """The outbox's volume is full: the frame was not written and the outbox is unchanged.

    Writing again once there is room goes on from the same seq.
    """
