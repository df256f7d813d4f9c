"""What an earlier Track B of the day left, taken over after this one began to stream.

A Track B that died left its slots held and its alerts open. Its successor reads them once
the writer has stored that run's last events; while the writer is behind, or the database
fails the read, it streams and takes over late (`LateHandover`): each symbol the earlier run
held and this one does not is released with a ``process_restart`` gap from where that run's
data ends; its alerts are taken over as at a start (an account up now is resolved at once).
A run that ends before its take-over keeps its start (`PendingRuns`) for its successor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import msgspec

from bus.events import Alert
from bus.producer import Producer
from observer.alerts.states import Notice
from observer.db.slot_queries import AsOf, HeldSlot
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from workers.track_b.slots import SlotAction, SlotBook, SlotCandidate
from workers.track_b.startup import ReadBeside, Resumer, gap_starts

__all__ = ["Earlier", "LateHandover", "PendingRuns", "release_late"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Earlier:
    """What an earlier run of the day left: its open alerts and its slots."""

    alerts: list[Notice]
    held: list[HeldSlot]


class LateHandover(ReadBeside[Earlier]):
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
