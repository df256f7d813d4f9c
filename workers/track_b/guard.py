"""The slots' guard: refused registrations and untradable symbols leave their slots.

At every evaluation the worker asks which symbols are barred (`SlotGuard.barred`): the slot
manager releases those it holds with the bar's reason and places none of them. Refusals
(`SlotGuard.on_refused`) wake the evaluation loop so that a dead slot is released at once;
each refused symbol is barred (`workers.track_b.barred`) or, for OPSP0008, its slot closed
for the day. Halts and limit locks (`workers.track_b.halts`) bar a symbol until it trades
again, except a pin: its stream sees trading resume at the first trade. A refusal releases
a pin like any symbol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bus.events import MarketStatus, PriceSnapshot, Severity, TradeTick
from observer.config.workers import TrackBSettings
from workers.track_b.barred import Barred, refusal_kind
from workers.track_b.collect import Refusal
from workers.track_b.halts import Tradability
from workers.track_b.slots import SlotAction, SlotBook

__all__ = ["AlertSink", "SlotGuard"]

log = logging.getLogger(__name__)

# (severity, code, message, context): the worker's alert.
AlertSink = Callable[[Severity, str, str, dict[str, str]], None]


class SlotGuard:
    """Bars, closed slots and their alerts for one Track B day.

    Parameters
    ----------
    settings:
        Track B's settings (refusal backoff and codes, error share, limit-lock time).
    day_end_ns:
        When today's bars of permanent refusals end.
    alert:
        Raises an alert.
    """

    def __init__(self, settings: TrackBSettings, day_end_ns: int, alert: AlertSink) -> None:
        self.settings = settings
        self.bars = Barred(
            settings.refusal_retry_s,
            settings.refusal_retry_max_s,
            day_end_ns,
            settings.refusal_permanent_codes,
        )
        self.trading = Tradability(settings.limit_lock_s)
        self.alert = alert
        self.wake = asyncio.Event()  # set by a refusal: an evaluation is due now
        self._refused: list[Refusal] = []  # not handled yet
        self._alerted: set[tuple[str, str]] = set()  # (symbol, refusal kind) alerted today

    def __repr__(self) -> str:
        return f"<SlotGuard {self.bars!r} {self.trading!r}>"

    # ------------------------------------------------------------------ what is observed

    def on_refused(self, refusal: Refusal) -> None:
        """From a stream: KIS refused a registration."""
        self._refused.append(refusal)
        self.wake.set()

    def on_snapshot(self, snapshot: PriceSnapshot) -> None:
        """A Track A snapshot: the day's price limits, halts and locks."""
        self.trading.on_snapshot(snapshot)

    def on_tick(self, tick: TradeTick) -> None:
        """The latest trade of a streamed symbol."""
        self.trading.on_tick(tick)

    def on_status(self, status: MarketStatus) -> None:
        """The latest market-operation record of a streamed symbol (KRX's)."""
        self.trading.on_status(status)

    # ------------------------------------------------------------------ each evaluation

    def review(self, book: SlotBook, pins: set[str], now_ns: int) -> list[SlotAction]:
        """Handle the refusals since the last review and judge halts and locks.

        Returns the releases of closed slots (to apply first); the other symbols to release
        are in `barred`.
        """
        # Ended bars out first: a refusal's bar that ran out would otherwise hide a halt
        # from `Barred.hold` for one more round, and the halted symbol be placed again.
        self.bars.active(now_ns)
        closed = self._refusals(book, now_ns)
        self._trading(pins, now_ns)
        return closed

    def barred(self, now_ns: int) -> dict[str, str]:
        """Every symbol barred now, with its reason."""
        return self.bars.active(now_ns)

    def shown(self) -> list[dict[str, Any]]:
        """The bars, as ``observer track-b slots list`` shows them."""
        return [
            {
                "symbol": symbol,
                "kind": bar.kind,
                "reason": bar.reason,
                "code": bar.code,
                "since_ns": bar.since_ns,
                "until_ns": bar.until_ns,
            }
            for symbol, bar in sorted(self.bars.bars.items())
        ]

    def _refusals(self, book: SlotBook, now_ns: int) -> list[SlotAction]:
        """Bar each refused symbol or close its slot.

        For OPSP0008 the slot is closed (KIS counts the session full: our count is wrong, and KIS's
        is the one that refuses). One alert per symbol and kind: ``track_b_registration_refused``
        (a warning, an error once the refused symbols barred reach ``refused_error_share`` of the
        slots) or ``track_b_registration_limit`` (an error). A refusal of a symbol no longer
        held on that account changes nothing (it moved or left meanwhile); a symbol's trade and
        book registrations refused together count once.
        """
        refusals, self._refused = self._refused, []
        decisions: list[SlotAction] = []
        seen: set[str] = set()
        for r in refusals:
            holding = book.held().get(r.symbol)
            if holding is None or holding.account != r.account or r.symbol in seen:
                continue
            seen.add(r.symbol)
            kind = refusal_kind(r.code, self.bars.permanent)
            context = {
                "symbol": r.symbol,
                "account": r.account,
                "feed": r.feed_label,
                "code": r.code,
            }
            if kind == "limit":
                reason = f"registration refused: {r.code} {r.message} (slot closed)"
                decisions += book.close(r.account, holding.slot, reason[:200])
                self.alert(
                    "error",
                    "track_b_registration_limit",
                    f"account {r.account}: KIS counts its session full ({r.code}) where Track B "
                    f"counted a free registration: slot {holding.slot} closed for the day, "
                    f"{r.symbol} released",
                    context,
                )
                continue
            bar = self.bars.refuse(r.symbol, r.code, r.message, now_ns)
            if (r.symbol, kind) in self._alerted:
                continue  # one alert per symbol and kind, not one per retry
            self._alerted.add((r.symbol, kind))
            self.bars.active(now_ns)  # ended bars out of the count
            share = len(self.bars.of_kind("refused")) / (book.capacity * len(book.accounts))
            severity: Severity = (
                "error" if share >= self.settings.refused_error_share else "warning"
            )
            self.alert(
                severity,
                "track_b_registration_refused",
                f"{r.symbol} on account {r.account}: {bar.reason}; refused symbols barred: "
                f"{share:.0%} of the slots",
                context,
            )
        return decisions

    def _trading(self, pins: set[str], now_ns: int) -> None:
        """Bar the symbols halted or limit-locked now (not pins), lift those trading again.

        An info alert ``track_b_halted`` / ``track_b_limit_locked`` is raised when barred. A pin
        keeps its slot: the operator asked for that symbol, and its stream sees trading resume at
        the first trade, where a released symbol waits for Track A's next snapshot.
        """
        judged = self.trading.flagged | set(self.bars.of_kind("halted", "limit_locked"))
        for symbol in sorted(judged):  # in code order: the same inputs, the same alerts
            state = self.trading.state(symbol, now_ns)
            if state is None or symbol in pins:
                if self.bars.lift(symbol) is not None:
                    log.info("%s trades again: back among the candidates", symbol)
            elif (bar := self.bars.hold(symbol, state[0], state[1], now_ns)) is not None:
                self.alert(
                    "info",
                    f"track_b_{bar.kind}",
                    f"{symbol}: {bar.reason}: out of the slots until it trades again",
                    {"symbol": symbol},
                )
