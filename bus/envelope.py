"""The envelope every event travels in, and the writer's acknowledgement."""

from __future__ import annotations

import msgspec

from bus.events import Event

__all__ = ["MAX_SEQ", "MAX_SOURCE_LENGTH", "Ack", "Envelope"]

# Sources are stored in 120-character columns; longer names are refused at both ends.
MAX_SOURCE_LENGTH = 120
# Seqs are stored as BIGINT; a frame carrying a larger one is refused.
MAX_SEQ = 2**63 - 1


class Envelope(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One event from one source.

    Parameters
    ----------
    source:
        Worker instance name, unique on the bus (``track_b.acct1``).
    seq:
        Per-source counter, 1, 2, 3, ... without holes; survives restarts through the outbox.
    ts:
        UTC nanoseconds when the event was produced.
    event:
        One member of the closed union in ``bus.events``.
    """

    source: str
    seq: int
    ts: int
    event: Event


class Ack(msgspec.Struct, frozen=True, array_like=True):
    """The writer has committed every seq of ``source`` up to and including ``seq``.

    ``resend`` asks the producer to send again everything after ``seq`` at once (the writer
    saw a frame start beyond its high-water mark, so earlier frames were lost in transit).
    ``duplicates`` and ``conflicts`` count the envelopes of ``source`` in the batch this ack
    answers that were at or below the mark already: the same bytes as committed, or other
    bytes (kept in ``bus_conflicts``). `observer replay --as-producer` reports them.

    Fields are only ever added at the end, with defaults: an array-like struct ignores
    trailing elements it does not know and fills missing ones from their defaults, so a
    producer and a writer of different releases still understand each other's acks.
    """

    source: str
    seq: int
    resend: bool = False
    duplicates: int = 0
    conflicts: int = 0
