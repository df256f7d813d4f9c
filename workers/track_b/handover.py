"""What an earlier Track B of the day left, taken over after this one began to stream.

A Track B that died left its slots held in the database and its account and session alerts
open; its successor takes them over (`workers.track_b.startup.take_back`). It reads them
once the writer has stored that run's last events, which the outbox sends again at the
start. A writer that serves stores them at once. One that is out or behind (a database
outage, its own restart) used to end the start: Track B exited after a minute, was started
again, and streamed nothing until the writer caught up. Now Track B streams, and takes
over late (`LateHandover`), once the writer has stored them:

* **The slots.** By then this run has filled its book, so none goes back. Each symbol the
  earlier run held is released, with a ``process_restart`` gap from where that run's data
  ends (`gap_starts`, from that run's ticks and gaps alone: `AsOf`) until now. A symbol
  this run holds itself is not released (its latest decision is this run's): its gap ends
  where this run placed it.
* **The alerts.** Taken over as at a start; an account that streams now is resolved at
  once, its confirmation came before.

A read the database fails is tried again on a backoff. If the writer has not caught up by
the session's end, an error alert says what was not taken over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from bus.producer import Producer
from observer.alerts import Notice
from observer.db.queries import AsOf, HeldSlot
from observer.retry import Backoff
from workers.track_b.slots import Candidate, Decision, SlotBook
from workers.track_b.startup import Resumer, gap_starts

__all__ = ["Earlier", "LateHandover", "release_late"]


@dataclass(frozen=True)
class Earlier:
    """What an earlier run of the day left: its open alerts and its slots."""

    account_alerts: tuple[set[str], set[str], set[str], set[str]]  # `Collector.take_over`'s
    session_alerts: list[Notice]
    held: list[HeldSlot]


@dataclass
class LateHandover:
    """What an earlier run left, to take over once the writer has stored it (see the module).

    ``alerts``: its open alerts are still to take over (False: taken at the start, only a
    read of the slots failed).
    """

    producer: Producer
    day: date
    as_of: AsOf  # this run's start: the earlier run's events are those up to its seq
    alerts: bool
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 30.0))
    reading: asyncio.Future[Earlier] | None = None  # under way

    def due(self) -> bool:
        """Whether the writer has stored the earlier run's events and no pause is on."""
        return self.producer.acked >= self.as_of.seq and self.backoff.wait_s() <= 0

    def abandon(self) -> None:
        """Drop a read under way (its thread ends with the read: nothing waits for it)."""
        if self.reading is not None:
            self.reading.cancel()
            self.reading = None


def release_late(held: Sequence[HeldSlot], book: SlotBook, collector: Resumer) -> int:
    """Release what an earlier run held, with its gaps (see the module); how many released."""
    released = 0
    for h, start in zip(held, gap_starts(held), strict=True):
        ours = book.held().get(h.symbol)
        if ours is not None:  # placed again by this run: streamed since then
            collector.missed(h.account, h.symbol, start, ours.since_ns)
            continue
        pinned = h.trigger == "manual"
        candidate = Candidate(
            h.symbol, h.trigger, float(h.score), expires_ns=h.expires_ns, pinned=pinned
        )
        why = "an earlier run's: taken over after this one had placed its own"
        collector.abandon(Decision("release", candidate, why, h.account, h.slot), start)
        released += 1
    return released
