"""What an earlier Track B of the day left, and how its successor takes it back.

A Track B that died left its slots held and its alerts open. Its successor reads them once
the writer has stored that run's last events and takes its slots back (`take_back`), each
streamed again with a ``process_restart`` gap from where that run's data ends
(`gap_starts`). While the writer is behind, or the database fails the read, it streams and
takes over late (`LateTakeOver`): each symbol the earlier run held and this one does not is
released with its gap (`release_late`); its alerts are taken over as at a start (an account
up now is resolved at once). A run that ends before its take-over keeps its start
(`PendingRuns`) for its successor. The worker's part is `workers.track_b.takeover`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import msgspec

from bus.events import Alert, SlotTrigger
from bus.producer import Producer
from observer.alerts.states import Notice
from observer.db.slot_queries import AsOf, HeldSlot
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from workers.track_b.read_beside import ReadBeside
from workers.track_b.slots import Holding, SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine

__all__ = [
    "Earlier",
    "LateTakeOver",
    "PendingRuns",
    "Resumer",
    "gap_starts",
    "lasting",
    "release_late",
    "take_back",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_NONE = Reference("", 0, 0, 0, 0.0)


@dataclass(frozen=True)
class Earlier:
    """What an earlier run of the day left: its open alerts and its slots."""

    alerts: list[Notice]
    held: list[HeldSlot]


class LateTakeOver(ReadBeside[Earlier]):
    """What an earlier run left, to take over once the writer has stored it (see the module).

    ``alerts``: its open alerts are still to take over (False: taken at the start, only a
    read of the slots failed).
    """

    def __init__(
        self, producer: Producer, day: date, as_of: AsOf, runs: list[AsOf], alerts: bool
    ) -> None:
        super().__init__()
        self.producer = producer
        self.day = day
        self.as_of = as_of  # this run's start: the earlier run's events are those up to its seq
        self.runs = runs  # the earlier runs' starts that ended before their take-over
        self.alerts = alerts

    def due(self) -> bool:
        """Whether the writer has stored the earlier run's events and a read may begin."""
        return self.producer.acked >= self.as_of.seq and super().due()


class _Saved(msgspec.Struct, frozen=True):
    day: date
    runs: list[tuple[int, int]]  # (seq, ns) of each start


def _decode(data: bytes) -> _Saved:
    return msgspec.json.decode(data, type=_Saved)


class PendingRuns:
    """The day's runs that streamed before they took over what the run before them left.

    ``<data_dir>/track_b/takeovers.json``, owner-only, replaced whole and durably: a run adds
    its start before it streams without the take-over. The file is emptied once a take-over is done
    and what it published is stored (`settle`): the releases and gaps of a late one, the
    ``process_restart`` gaps of slots taken back, which go out at their registration. A
    successor started before then still tells the runs apart; a file left (emptying
    refused) only makes later gaps start earlier. A file of another day is none; so is one
    that does not read, set aside with a ``state_file_unreadable`` alert given to ``send``
    (`observer.process.state_files`): the gaps of the runs it named start at the newest tick of
    their accounts, as for a single run.
    """

    def __init__(self, data_dir: Path, day: date, send: Callable[[Alert], object]) -> None:
        self.path = data_dir / "track_b" / "takeovers.json"
        self.day = day
        self.send = send
        self.named = False  # the file names runs (read so, or written by this run)
        self.settling = False  # a take-over is done: empty the file once it is stored
        self._through: int | None = None  # the take-over's last seq, once all of it is out

    def read(self) -> list[AsOf]:
        """The starts of the day's runs whose take-over never happened, oldest first."""
        lost = (
            "the earlier runs whose take-over it kept are told apart no more: their gaps "
            "start at the newest tick of their accounts"
        )
        try:
            saved = read_state(self.path, _decode, lost, self.send)
        except OSError as exc:
            log.warning("%s does not read (%s): %s", self.path, exc, lost)
            return []
        if saved is None or saved.day != self.day:
            return []
        runs = [AsOf(seq, ns) for seq, ns in saved.runs]
        self.named = bool(runs)
        return runs

    def write(self, runs: Sequence[AsOf]) -> bool:
        """Keep ``runs`` (none: remove the file); False, logged, if the disk refuses it."""
        try:
            if runs:
                saved = _Saved(self.day, [(r.seq, r.ns) for r in runs])
                write_private(self.path, msgspec.json.encode(saved))
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.error(
                "cannot write %s (%s): a successor started before this run's take-over "
                "is stored would start the earlier runs' gaps at this run's ticks",
                self.path,
                exc,
            )
            return False
        self.named = bool(runs)
        return True

    def taken_over(self) -> None:
        """What the runs named left is taken over: empty the file once it is stored."""
        self.settling = self.named

    def settle(self, restarting: bool, producer: Producer) -> bool:
        """Empty the file once the take-over is stored; False if the disk refused it.

        ``restarting``: a slot taken back still waits for its registration, and its gap.
        """
        if not self.settling or restarting:
            return True
        if self._through is None:
            self._through = producer.last_seq  # everything the take-over published
        if producer.acked < self._through:
            return True
        self.settling, self._through = False, None
        return self.write([])


def release_late(held: Sequence[HeldSlot], book: SlotBook, collector: Resumer) -> int:
    """Release what an earlier run held, with its gaps (see the module); how many released."""
    released = 0
    for h, start in zip(held, gap_starts(held), strict=True):
        if h.until_ns is not None:  # placed again by a run between it and this one
            collector.missed(h.account, h.symbol, start, h.until_ns)
            continue
        ours = book.held().get(h.symbol)
        if ours is not None:  # placed again by this run: streamed since then
            collector.missed(h.account, h.symbol, start, ours.since_ns)
            continue
        pinned = h.trigger == "manual"
        candidate = SlotCandidate(
            h.symbol, h.trigger, float(h.score), expires_ns=h.expires_ns, pinned=pinned
        )
        why = "an earlier run's: taken over after this one had placed its own"
        collector.abandon(SlotAction("release", candidate, why, h.account, h.slot), start)
        released += 1
    return released


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
