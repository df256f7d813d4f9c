"""The worker's context sync: Track A's day into the trigger engine before the first slot.

At 09:29:50 (or at a late start) Track A's snapshots are replayed into the engine and the
slot guard (`workers.track_b.startup.context_sync`); the ranking's best are the first
candidates. A sync the database fails is alerted (``track_b_degraded``: the slots fill by
market cap) and tried again beside the evaluations (`LateSync`).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from bus.events import PriceSnapshot
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from workers.track_b.session_alerts import DEGRADED
from workers.track_b.slots import Room, SlotCandidate
from workers.track_b.startup import LateSync, Synced, context_sync, day_so_far
from workers.track_b.triggers import TriggerEngine
from workers.track_b.watchers import Watchers

__all__ = ["ContextSyncing"]

log = logging.getLogger(__name__)


class ContextSyncing(Watchers):
    """The worker's context sync, on time or late (see the module)."""

    def _sync_or_degrade(
        self, full: datetime, engine: TriggerEngine, room: Room
    ) -> list[SlotCandidate] | None:
        """`_sync`; None if the database fails it: alerted, and tried again (`LateSync`).

        At 09:29:50 the sessions are open: a failed read ended them all, and the restarts
        met the same database. Meanwhile the slots fill by market cap.
        """
        try:
            return self._sync(full, engine, room)
        except DATABASE_ERRORS as exc:
            self._alert(
                "warning",
                DEGRADED,
                f"context sync could not read Track A's snapshots ({error_reason(exc)}): "
                "slots fill by market cap until it can or triggers fire",
            )
            return None

    def _sync(self, full: datetime, engine: TriggerEngine, room: Room) -> list[SlotCandidate]:
        """Track A's day into the engine; the context's first candidates (may be []).

        In the morning, the opening's snapshots; after full operation began (a restart, a late
        start), every snapshot of the day so far (`workers.track_b.startup.context_sync`).
        """
        started = time.perf_counter()
        now = self.clock.now_ns()
        snapshots = day_so_far(self._engine, full, now)
        return self._replay(snapshots, full, engine, room, now, started).candidates

    def _sync_late(
        self, late: LateSync, engine: TriggerEngine, context: list[SlotCandidate], now: int
    ) -> LateSync | None:
        """The context sync the database failed, tried again (`LateSync`).

        Its candidates join ``context``. The sync still to come, or None: done, or too late
        to offer any. The read runs beside the evaluations (it may wait the reader pool's
        timeout): one round starts it, a later round takes what it read.
        """
        if late.reading is None:
            if now >= late.until_ns:
                log.warning("context sync: given up, its candidates would have lapsed by now")
                return None
            if late.due():
                late.start(lambda: day_so_far(self._engine, late.full, now))
            return late

        def failed(why: str, pause: float) -> None:
            self._count("context_syncs_failed")
            log.warning(
                "context sync: cannot read Track A's snapshots (%s); again in %.1f s", why, pause
            )

        if (snapshots := late.taken(failed)) is None:
            return late
        synced = self._replay(snapshots, late.full, engine, late.room, now, time.perf_counter())
        context.extend(synced.candidates)
        if synced.openings:
            self.notices.over(DEGRADED, "the context sync went through late")
        return None

    def _replay(
        self,
        snapshots: list[PriceSnapshot],
        full: datetime,
        engine: TriggerEngine,
        room: Room,
        now: int,
        started: float,
    ) -> Synced:
        synced = context_sync(snapshots, self.config, engine, self.guard, full, room, now)
        seconds = time.perf_counter() - started
        self.counters["context_sync_s"] = round(seconds, 3)
        if not (synced.snapshots if synced.late else synced.openings):
            what = "of the day so far" if synced.late else "of the opening"
            self._alert(
                "warning",
                DEGRADED,
                f"context sync found no Track A snapshots {what}: slots fill by market cap "
                "until triggers fire",
            )
        log.info(
            "context sync%s: %d symbols from %d snapshots in %.3f s, %d candidates",
            " (the day so far)" if synced.late else "",
            synced.openings,
            synced.snapshots,
            seconds,
            len(synced.candidates),
        )
        return synced
