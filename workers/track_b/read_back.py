"""Track A's snapshots the feed did not deliver, read back from the database.

The feed is lossy by contract (PUB drops at its high-water mark; a restarting writer
publishes resent commits before its subscribers are back), and a lost snapshot is a surge,
halt or price limit Track B never sees. Every Track A interval `ReadBack` reads the cycles
from the newest seen at the reading before on (a cycle whose end was lost is read whole),
and takes each snapshot of a universe symbol the trigger engine has not
(`TriggerEngine.seen`) once it is old enough to have come by the feed (`GRACE_S` of clock
time and `GRACE_WALL_S` of wall time). Each is counted (``snapshots_read_back``) and logged.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Engine

from bus.events import PriceSnapshot, Venue
from observer.calendar.clock import Clock, wall_seconds_between
from observer.calendar.phases import KST
from observer.db.queries import snapshots_of_cycles
from workers.track_b.context_sync import as_snapshot
from workers.track_b.guard import SlotGuard
from workers.track_b.triggers import TriggerEngine

__all__ = ["GRACE_S", "GRACE_WALL_S", "ReadBack", "cycle_of"]

log = logging.getLogger(__name__)

# How long after its observation a snapshot has surely come by the feed, if it ever will: a
# cycle's snapshots are committed as Track A gathers them, and the feed follows the commit.
GRACE_S = 60.0
GRACE_WALL_S = 5.0  # under a fast simulated clock, 60 s are half a wall second
_NS = 1_000_000_000


def cycle_of(at_ns: int) -> str:
    """The id of the Track A cycle that starts in the minute of ``at_ns`` (KST)."""
    return f"{datetime.fromtimestamp(at_ns / _NS, KST):%Y%m%d-%H%M}"


class ReadBack:
    """The snapshots Track B has seen by the feed, and those it reads back (see the module).

    ``venue``: whose cycles (the stretch's: `workers.track_b.sessions.Stretch`).
    """

    def __init__(self, db: Engine, clock: Clock, interval_s: float, venue: Venue = "KRX") -> None:
        self.db = db
        self.venue = venue
        self.clock = clock
        self.interval_ns = int(interval_s * _NS)
        now = clock.now_ns()
        # The cycles before the one under way were read at the start (or are before it).
        self.newest_cycle = self.since_cycle = cycle_of(now - self.interval_ns)
        self.due_ns = now + self.interval_ns
        self.read_back = 0

    def saw(self, snapshot: PriceSnapshot) -> None:
        """A snapshot came by the feed: its cycle is the newest seen if no other is newer."""
        self.newest_cycle = max(self.newest_cycle, snapshot.cycle_id)

    def due(self, now_ns: int) -> bool:
        """Whether a Track A interval has passed since the last reading."""
        return now_ns >= self.due_ns

    def read(self, now_ns: int) -> list[PriceSnapshot]:
        """The venue's stored snapshots of the cycles since the last reading's newest (blocking)."""
        self.due_ns = now_ns + self.interval_ns
        with self.db.connect() as conn:
            rows = snapshots_of_cycles(conn, self.since_cycle, cycle_of(now_ns), self.venue)
        return sorted((as_snapshot(row) for row in rows), key=lambda s: s.observed_ns)

    def take(
        self, snapshots: list[PriceSnapshot], engine: TriggerEngine, guard: SlotGuard, now_ns: int
    ) -> int:
        """Give the engine and the guard each snapshot the feed did not deliver; how many."""
        unseen = [s for s in snapshots if s.symbol in engine.references and not engine.seen(s)]
        missed = [s for s in unseen if self._overdue(s, now_ns)]
        for snapshot in missed:
            engine.on_snapshot(snapshot)
            guard.on_snapshot(snapshot)
        for snapshot in snapshots:
            self.saw(snapshot)
        # The next reading starts at the newest cycle, or at the oldest with a snapshot that
        # may still be on its way (a fast clock's grace spans cycles).
        waiting = [s.cycle_id for s in unseen if not self._overdue(s, now_ns)]
        self.since_cycle = min(waiting, default=self.newest_cycle)
        if missed:
            self.read_back += len(missed)
            log.warning(
                "%d Track A snapshots the feed did not deliver were read from the database "
                "(cycles %s to %s)",
                len(missed),
                missed[0].cycle_id,
                missed[-1].cycle_id,
            )
        return len(missed)

    def _overdue(self, snapshot: PriceSnapshot, now_ns: int) -> bool:
        """Whether the feed would have brought ``snapshot`` by ``now_ns``."""
        return (
            now_ns - snapshot.observed_ns >= GRACE_S * _NS
            and wall_seconds_between(self.clock, snapshot.observed_ns, now_ns) >= GRACE_WALL_S
        )
