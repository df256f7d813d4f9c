"""The context sync: Track A's day into the trigger engine before Track B's first slot.

At 09:29:50 (or at a late start) Track A's snapshots are replayed into the engine and the
slot guard (`context_sync`): the opening's ranking (`workers.track_b.opening_rank`) gives the
first candidates. A start after full operation began replays every snapshot of the day so
far in the order observed, so each trigger fired and lapsed at its real time and the guard
holds each symbol's latest observation. A sync the database fails is alerted
(``track_b_degraded``: the slots fill by market cap) and tried again beside the evaluations
(`LateSync`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import Engine

from bus.events import PriceSnapshot
from observer.calendar.phases import KST
from observer.config.workers import TrackBSettings
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.db.queries import snapshots_of_cycles
from workers.track_b.guard import SlotGuard
from workers.track_b.opening_rank import baseline, openings, ranked
from workers.track_b.read_beside import ReadBeside
from workers.track_b.session_alerts import DEGRADED
from workers.track_b.slots import Room, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine
from workers.track_b.watchers import Watchers

__all__ = ["ContextSyncing", "LateSync", "Synced", "as_snapshot", "context_sync", "day_so_far"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_NONE = Reference("", 0, 0, 0, 0.0)


@dataclass(frozen=True, slots=True)
class Synced:
    """What the context sync found."""

    candidates: list[SlotCandidate]  # the opening's best, still live
    snapshots: int  # replayed
    openings: int  # symbols with snapshots of the opening
    late: bool  # a start after full operation began: the day so far was replayed


class LateSync(ReadBeside[list[PriceSnapshot]]):
    """A context sync the database failed at 09:29:50, tried again during full operation.

    The opening's best stand as candidates until the scheduled sync's candidates lapse
    (``volume_surge.ttl_s`` after it): until then a read that goes through still places
    them (a late start's sync, `context_sync`); after, it would offer nothing, and the
    read-back and the feed bring the day's later snapshots. Tried again on a backoff of
    wall time, without end inside that window.
    """

    def __init__(self, config: TrackBSettings, full: datetime, room: Room) -> None:
        super().__init__()
        self.full = full
        self.room = room
        scheduled = full.timestamp() - config.sync_lead_s
        self.until_ns = int((scheduled + config.volume_surge.ttl_s) * _NS)


def day_so_far(db: Engine, full: datetime, now_ns: int) -> list[PriceSnapshot]:
    """The KRX snapshots a context sync at ``now_ns`` replays, in the order observed (blocking).

    Before full operation (``full``): the cycles of the opening. From then on: every
    snapshot of the day observed by now.
    """
    late = now_ns >= int(full.timestamp()) * _NS
    opening = f"{full:%Y%m%d-%H%M}"  # the cycles up to full operation's start
    last = f"{datetime.fromtimestamp(now_ns / _NS, KST):%Y%m%d-%H%M}" if late else opening
    with db.connect() as conn:
        rows = snapshots_of_cycles(conn, f"{full:%Y%m%d}-", last)
    snapshots = sorted((as_snapshot(row) for row in rows), key=lambda s: s.observed_ns)
    return [s for s in snapshots if s.observed_ns <= now_ns] if late else snapshots


def context_sync(
    snapshots: Sequence[PriceSnapshot],
    config: TrackBSettings,
    engine: TriggerEngine,
    guard: SlotGuard,
    full: datetime,
    room: Room,
    now_ns: int,
) -> Synced:
    """Replay ``snapshots`` (`day_so_far`) into ``engine`` and ``guard``; the opening's best.

    Before full operation (``full``): the candidates lasting from now. From then on: those
    lasting from the scheduled sync (those lapsed are left out), so a restart after 09:35
    offers nothing and does not hand the morning's leaders fresh expiries.
    """
    late = now_ns >= int(full.timestamp()) * _NS
    opening = f"{full:%Y%m%d-%H%M}"
    for snapshot in snapshots:
        # A sync tried again during full operation finds the feed's later snapshots taken:
        # an older one must not take the symbol's place back (`LateSync`).
        if not engine.seen(snapshot):
            engine.on_snapshot(snapshot)
        guard.on_snapshot(snapshot)  # the day's price limits, halts (the older ignored)
    since = int((full.timestamp() - config.sync_lead_s) * _NS) if late else now_ns
    # A late start ranks what the sync would have read: nothing observed after it.
    found = openings(
        s for s in snapshots if s.cycle_id <= opening and (not late or s.observed_ns <= since)
    )
    surge = config.volume_surge
    chosen = []
    ours = [r for r in ranked(found, baseline(found)) if engine.shard.owns(r[0].symbol)]
    for found_opening, _score, volume_ratio in ours[: room.fitting(r[0].symbol for r in ours)]:
        strength = min(volume_ratio / 3, 1.0)
        symbol = found_opening.symbol
        candidate = SlotCandidate(
            symbol,
            "context_sync",
            engine.score(symbol, surge.weight, strength),
            strength,
            volume_ratio,
            engine.references.get(symbol, _NONE).market_cap,
            since + int(surge.ttl_s * _NS),
        )
        if candidate.expires_ns > now_ns:
            chosen.append(candidate)
    return Synced(chosen, len(snapshots), len(found), late)


def as_snapshot(row: dict[str, object]) -> PriceSnapshot:
    """A stored price snapshot as the event it came from."""
    fields = {k: v for k, v in row.items() if k in PriceSnapshot.__struct_fields__}
    return msgspec.convert(fields, PriceSnapshot)


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
        start), every snapshot of the day so far (`workers.track_b.context_sync.context_sync`).
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
