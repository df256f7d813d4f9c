"""Each evaluation's slots: the default placement, the overflow ledger, the display.

`fill`: the largest market caps not barred take the slots no trigger claims. Each overflow
of a triggered symbol is published once a firing (`Slotting._should_publish`). The slots
are shown to ``observer track-b slots list`` in ``slots.json`` and the heartbeat's counters
(`Slotting._show`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

from observer.market.grid import OFF_GRID
from observer.process.private_files import write_private
from workers.track_b.collect import Collector
from workers.track_b.pins import slots_path
from workers.track_b.slots import Room, SlotAction, SlotBook, SlotCandidate
from workers.track_b.watchers import Watchers

__all__ = ["Slotting", "fill"]

log = logging.getLogger(__name__)


class Slotting(Watchers):
    """The worker's overflow ledger and slots display (see the module)."""

    def _should_publish(self, d: SlotAction) -> bool:
        """Whether to publish: the ledger records each triggered symbol's overflow once.

        Not again for the same firing, and never for a default placement by market cap.
        """
        if d.action != "overflow":
            self._overflowed.pop(d.candidate.symbol, None)
            return True
        if d.candidate.trigger == "market_cap":
            return False
        firing = (d.candidate.trigger, d.candidate.expires_ns)
        if self._overflowed.get(d.candidate.symbol) == firing:
            return False
        self._overflowed[d.candidate.symbol] = firing
        return True

    def _show(self, book: SlotBook, collector: Collector, waiting: Mapping[str, str]) -> None:
        """The slots as ``observer track-b slots list`` shows them (owner-only, atomic).

        Each row names the TRs its symbol is registered on (``feeds``).

        ``waiting``: the pins that hold no slot, with why.
        """
        now = self.clock.now_ns()
        rows = [
            {
                "account": h.account,
                "slot": h.slot,
                "symbol": h.candidate.symbol,
                "trigger": h.candidate.trigger,
                "score": round(h.candidate.score, 2),
                "pinned": h.candidate.pinned,
                "since_ns": h.since_ns,
                # its registrations, in words ("KRX trades")
                "feeds": [f.label for f in collector.policy.feeds(h.candidate.symbol)],
                "state": (self.guard.trading.state(h.candidate.symbol, now) or ("", ""))[1],
            }
            for h in book.holdings()
        ]
        barred = self.guard.shown()
        self.counters.update(
            slots=len(rows),
            ticks=collector.ticks,
            # stored trades between two ticks: mid-points, and those outside their spread
            mid_point_trades=sum(n for (_, k), n in collector.off_grid.items() if k != OFF_GRID),
            off_grid_trades=sum(n for (_, k), n in collector.off_grid.items() if k == OFF_GRID),
            # stored trades whose MARKET_CLS_CODE names another session than [venues]'s hours
            session_disagreements=sum(collector.session_codes.disagreements.values()),
            # trades whose ACML_VOL ran backwards: a chain restarted (a correction, a feed's)
            volume_chain_resets=collector.chain_resets,
            gaps=collector.gaps,
            healthy_accounts=len(collector.healthy()),
            refused=collector.refusals,
            barred=len(barred),
            halted=len(self.guard.bars.of_kind("halted", "limit_locked")),
            closed_slots=len(book.closed),
            pins_unplaced=len(waiting),
            pins_unreadable=int(bool(self.pin_file.unreadable)),
        )
        for account in self.settings.kis.accounts:  # per account: "slots.acct1", symbols held
            alias = account.alias
            self.counters[f"slots.{alias}"] = sum(r["account"] == alias for r in rows)
            self.counters[f"registrations.{alias}"] = book.registrations(alias)
        shown = {
            "at_ns": now,
            "slots": rows,
            "barred": barred,
            "closed": [{"account": a, "slot": n} for a, n in sorted(book.closed)],
            "unplaced_pins": [{"symbol": p, "reason": why} for p, why in waiting.items()],
            "aside": [  # held beside the slots: an auction's expected matches, the VI feed
                {
                    "account": alias,
                    "symbol": r.symbol,
                    "feeds": [r.label],
                    "for": "market VIs" if r.kind == "vi" else "auction",
                }
                for alias, held in sorted(collector.held_aside.items())
                for r in sorted(held, key=lambda r: r.order)
            ],
        }
        try:
            write_private(slots_path(self.data_dir), json.dumps(shown).encode())
        except OSError as exc:  # a display: a full disk must not end the streams
            self._count("slots_unwritten")
            if self._slots_written:  # once an episode
                log.warning("cannot write %s: %s", slots_path(self.data_dir), exc)
            self._slots_written = False
            return
        if not self._slots_written:
            log.info("%s is written again", slots_path(self.data_dir))
            self._slots_written = True


def fill(
    by_cap: Sequence[SlotCandidate], barred: Mapping[str, str], room: Room
) -> list[SlotCandidate]:
    """The default placement: the largest market caps not barred that fit in ``room``.

    A barred one (refused for the day, halted) is passed over for the next, or its slot
    would stay empty while the universe has symbols to stream.
    """
    free = [c for c in by_cap if c.symbol not in barred]
    return free[: room.fitting(c.symbol for c in free)]
