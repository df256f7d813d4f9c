"""What Track B knows before its first evaluation: the day so far, and the slots it held.

* `context_sync` (09:29:50): Track A's snapshots of 09:00-09:30 replayed into the trigger
  engine and the slot guard, and the openings ranked (`workers.track_b.context`); the best
  become ``context_sync`` candidates. `LateSync` retries a sync the database failed.
* A start after full operation began replays every snapshot of the day so far in the order
  observed, so each trigger fired and lapsed at its real time and the guard holds each
  symbol's latest observation.
* `take_back`: the slots a dead process held, from the database, streamed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import msgspec
from sqlalchemy import Engine

from bus.events import PriceSnapshot, SlotTrigger
from observer.calendar.phases import KST
from observer.config.workers import TrackBSettings
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.db.queries import snapshots_of_cycles
from observer.db.slot_queries import HeldSlot
from observer.process.retry import Backoff
from workers.track_b.context import baseline, openings, ranked
from workers.track_b.guard import SlotGuard
from workers.track_b.slots import Holding, Room, SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine

__all__ = [
    "LateSync",
    "ReadBeside",
    "Synced",
    "context_sync",
    "day_so_far",
    "gap_starts",
    "lasting",
    "take_back",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_NONE = Reference("", 0, 0, 0, 0.0)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Synced:
    """What the context sync found."""

    candidates: list[SlotCandidate]  # the opening's best, still live
    snapshots: int  # replayed
    openings: int  # symbols with snapshots of the opening
    late: bool  # a start after full operation began: the day so far was replayed


class ReadBeside(Generic[T]):
    """A read of the database run beside the evaluations, tried again on a backoff.

    It runs in a thread, so that a read waiting the reader pool's timeout does not stall
    the evaluations: one round starts it (`start`), a later one takes what it read
    (`taken`). The backoff is of wall time.
    """

    def __init__(self) -> None:
        self.backoff = Backoff(1.0, 30.0)
        self.reading: asyncio.Future[T] | None = None  # under way

    def due(self) -> bool:
        """Whether no read is under way and the pause after the last failure is over."""
        return self.reading is None and self.backoff.wait_s() <= 0

    def start(self, read: Callable[[], T]) -> None:
        """Begin ``read`` in a thread."""
        self.reading = asyncio.ensure_future(asyncio.to_thread(read))

    def taken(self, failed: Callable[[str, float], object]) -> T | None:
        """What the read gave once it is done; None while under way or if it failed.

        A read the database failed is told to ``failed`` (why, and the pause before the
        next try); any other error is raised.
        """
        reading = self.reading
        if reading is None or not reading.done():
            return None
        self.reading = None
        try:
            return reading.result()
        except DATABASE_ERRORS as exc:
            failed(error_reason(exc), self.backoff.failed())
            return None

    def abandon(self) -> None:
        """Drop a read under way, or take the failure it ended with.

        Its thread ends with the read, nothing waits for it; a failure nobody takes is
        logged by asyncio as never retrieved.
        """
        reading, self.reading = self.reading, None
        if reading is None:
            return
        if reading.done() and not reading.cancelled():
            failure = reading.exception()
            if failure is not None and not isinstance(failure, DATABASE_ERRORS):
                log.error("a read dropped at the streams' end had failed", exc_info=failure)
        reading.cancel()


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


def lasting(engine: TriggerEngine, trigger: SlotTrigger) -> float:
    """How long a firing of ``trigger`` lasts unrenewed, as ``engine`` gives it (0: no expiry).

    A context sync's candidate is a volume surge; a pin and a placement by market cap have
    no expiry.
    """
    kind = "volume_surge" if trigger == "context_sync" else trigger
    if kind in ("volume_surge", "volatility_spike", "trade_velocity"):
        return engine.ttl_s(kind)
    return 0.0


class Resumer(Protocol):
    """The collector's part in taking slots back."""

    async def resume(
        self, holding: Holding, start_ns: int, chains: Sequence[tuple[str, int, int]] = ()
    ) -> None:
        """Stream the holding again, with a ``process_restart`` gap from ``start_ns``.

        ``chains``: each venue's last stored trade (venue, cumulative volume, stamp).
        """

    def abandon(self, release: SlotAction, start_ns: int) -> None:
        """Release a holding that cannot go back, its gap closed now."""

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        """A ``process_restart`` gap of ``symbol`` from ``start_ns`` to ``end_ns``."""


def gap_starts(held: Sequence[HeldSlot]) -> list[int]:
    """Where each holding's data ends, its ``process_restart`` gap's start (`take_back`).

    The account's newest tick of the run that placed it: that run's session delivered
    every earlier frame, so a quiet symbol missed nothing before it.
    """
    delivered: dict[tuple[str, int], int] = {}
    for h in held:
        key = (h.account, h.run)
        delivered[key] = max(delivered.get(key, 0), h.last_tick_ns or 0)
    return [max(h.since_ns, delivered[h.account, h.run], h.last_gap_end_ns or 0) for h in held]


async def take_back(
    held: Sequence[HeldSlot],
    engine: TriggerEngine,
    book: SlotBook,
    collector: Resumer,
    ttl_of: Callable[[SlotTrigger], float],
    now_ns: int,
) -> list[SlotCandidate]:
    """Put ``held`` back into ``book`` and stream it again; the candidates they stand as.

    A stored expiry is the allocation's (a renewal is no decision, so it is not stored), so
    each triggered holding lasts at least ``ttl_of`` its trigger from ``now_ns`` and stands as a
    candidate that long, beside the replayed triggers: a symbol renewed by its snapshots is
    renewed by the replay, one renewed by its trade velocity keeps its slot until the new
    session's stream measures it again. The gap starts at the newest of: the account's newest
    stored tick (its session delivered every earlier frame, which the outbox kept in order; a
    quiet symbol missed nothing before it), the end of the symbol's newest recorded gap (a
    second restart opens a new gap, never the same one again), and the slot's allocation. One
    that cannot go back (its account or slot no longer configured, another host's shard) is
    released, its gap closed now. A holding a later run placed again (``until_ns``) is only the
    gap until then.
    """
    standing = []
    # Two runs' holdings of one slot (the later run placed its own): the later one goes back.
    ordered = sorted(zip(held, gap_starts(held), strict=True), key=lambda p: -p[0].run)
    for h, start in ordered:
        if h.until_ns is not None:
            collector.missed(h.account, h.symbol, start, h.until_ns)
            continue
        pinned = h.trigger == "manual"
        expires = h.expires_ns
        if expires and not pinned:
            expires = max(expires, now_ns + int(ttl_of(h.trigger) * _NS))
        candidate = SlotCandidate(
            h.symbol,
            h.trigger,
            float(h.score),
            market_cap=engine.references.get(h.symbol, _NONE).market_cap,
            expires_ns=expires,
            pinned=pinned,
        )
        holding = Holding(h.account, h.slot, candidate, h.since_ns)
        if engine.shard.owns(h.symbol) and book.restore(holding):
            await collector.resume(holding, start, h.chains)
            if expires and not pinned:
                standing.append(candidate)
        else:  # its slot is gone or a later run's, or the shard changed
            why = f"not taken back after a restart: slot {h.slot} of {h.account} is gone"
            if h.account in book.accounts and 0 <= h.slot < book.capacity:
                why = f"not taken back after a restart: a later run's holds slot {h.slot}"
            if not engine.shard.owns(h.symbol):
                owner = engine.shard.owner(h.symbol)
                why = f"not taken back after a restart: another host's (shard {owner})"
            collector.abandon(SlotAction("release", candidate, why, h.account, h.slot), start)
    return standing


def as_snapshot(row: dict[str, object]) -> PriceSnapshot:
    """A stored price snapshot as the event it came from."""
    fields = {k: v for k, v in row.items() if k in PriceSnapshot.__struct_fields__}
    return msgspec.convert(fields, PriceSnapshot)
