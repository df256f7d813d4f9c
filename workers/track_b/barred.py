"""Symbols kept out of the slots for now, and why: refused registrations, halts, limit locks.

A bar keeps a symbol out of the slots: the slot manager releases it with the bar's reason
(a ``release`` slot event) and places nothing barred, so the slot goes to the next candidate.
A refused registration (`refusal_kind`) is barred for the day or for a doubling backoff; a
halt or limit lock (`workers.track_b.halts.Tradability`) until an observation says trading
resumed. `Barred.hold` never shortens a refusal's bar, and `Barred.lift` lifts only halts
and locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from observer.process.retry import backoff_s

__all__ = [
    "PERMANENT_REFUSALS",
    "BarKind",
    "Barred",
    "RefusalKind",
    "SymbolBar",
    "refusal_kind",
]

BarKind = Literal["refused", "halted", "limit_locked"]
RefusalKind = Literal["permanent", "transient", "limit"]

# SUBSCRIBE ERROR: invalid tr_id / invalid tr_key; JSON PARSING ERROR: invalid tr_key (§5.3).
PERMANENT_REFUSALS = ("OPSP8991", "OPSP8992", "OPSP8993")
_LIMIT = "OPSP0008"  # MAX SUBSCRIBE OVER
_NS = 1_000_000_000
_REASON_LENGTH = 200  # slot_events.reason is VARCHAR(200)


def refusal_kind(code: str, permanent: Iterable[str] = PERMANENT_REFUSALS) -> RefusalKind:
    """What a refusal's ``msg_cd`` (shared/reference/kis-api.md §5.3) means for asking again.

    * ``permanent``: the request itself is wrong for this symbol (OPSP8991 invalid tr_id,
      OPSP8992 / OPSP8993 invalid tr_key; configurable: the reference gives the codes' texts,
      not their permanence). Asked again the same day, it would be refused again: barred until
      the end of the KST day.
    * ``limit``: OPSP0008 MAX SUBSCRIBE OVER. KIS counts the session full while we count a free
      registration; the symbol is not at fault, our count is. No bar: the worker closes the slot.
    * ``transient``: OPSP0007 SUBSCRIBE INTERNAL ERROR, and every code not known (retrying a
      code we cannot place costs a registration after a backoff; never retrying would lose the
      symbol for the day). Barred for ``retry_s``, doubling with each refusal of the symbol that
      day up to ``retry_max_s`` (on the Clock), then it competes again.
    """
    if code == _LIMIT:
        return "limit"
    return "permanent" if code in permanent else "transient"


class SymbolBar(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Why a symbol is kept out of the slots, since when, and until when."""

    kind: BarKind
    reason: str  # the release's reason, as the slot event and `slots list` show it
    since_ns: int
    until_ns: int = 0  # 0: until lifted (trading resumed)
    code: str = ""  # KIS's msg_cd, for a refusal


class Barred:
    """The barred symbols of one Track B day.

    Parameters
    ----------
    retry_s, retry_max_s:
        A transient refusal's bar: ``retry_s``, doubling per refusal of the symbol, capped.
    day_end_ns:
        When a permanent refusal's bar ends (the next KST midnight).
    permanent:
        The codes refused for the rest of the day.
    """

    def __init__(
        self,
        retry_s: float,
        retry_max_s: float,
        day_end_ns: int,
        permanent: Iterable[str] = PERMANENT_REFUSALS,
    ) -> None:
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.day_end_ns = day_end_ns
        self.permanent = frozenset(permanent)
        self.bars: dict[str, SymbolBar] = {}
        self.strikes: dict[str, int] = {}  # transient refusals of a symbol today

    def __repr__(self) -> str:
        return f"<Barred {len(self.bars)} symbols>"

    def refuse(self, symbol: str, code: str, message: str, now_ns: int) -> SymbolBar:
        """Bar a symbol whose registration KIS refused (not for ``limit``: see `refusal_kind`)."""
        refused = f"registration refused: {code} {message}".strip()
        if refusal_kind(code, self.permanent) == "permanent":
            reason, until_ns = f"{refused} (not retried today)", self.day_end_ns
        else:
            strikes = self.strikes[symbol] = self.strikes.get(symbol, 0) + 1
            pause = backoff_s(strikes, self.retry_s, self.retry_max_s)
            reason, until_ns = f"{refused} (retry in {pause:g} s)", now_ns + int(pause * _NS)
        bar = SymbolBar(
            kind="refused", reason=_fit(reason), since_ns=now_ns, until_ns=until_ns, code=code
        )
        self.bars[symbol] = bar
        return bar

    def hold(self, symbol: str, kind: BarKind, reason: str, now_ns: int) -> SymbolBar | None:
        """Bar a halted or limit-locked symbol until lifted; the new bar, or None if unchanged.

        A refusal's bar is kept: it ends by itself, and the halt is judged again then.
        """
        current = self.bars.get(symbol)
        if current is not None and (current.kind == "refused" or current.kind == kind):
            return None
        bar = self.bars[symbol] = SymbolBar(kind=kind, reason=_fit(reason), since_ns=now_ns)
        return bar

    def lift(self, symbol: str) -> SymbolBar | None:
        """Lift a halt's or a limit lock's bar (trading resumed); the bar lifted, if any."""
        current = self.bars.get(symbol)
        if current is None or current.kind == "refused":
            return None
        return self.bars.pop(symbol)

    def active(self, now_ns: int) -> dict[str, str]:
        """Every symbol barred at ``now_ns``, with its reason; ended bars are dropped."""
        for symbol in [s for s, b in self.bars.items() if b.until_ns and b.until_ns <= now_ns]:
            del self.bars[symbol]
        return {symbol: bar.reason for symbol, bar in self.bars.items()}

    def of_kind(self, *kinds: BarKind) -> list[str]:
        """The symbols barred for one of ``kinds``."""
        return [symbol for symbol, bar in self.bars.items() if bar.kind in kinds]


def _fit(reason: str) -> str:
    return reason if len(reason) <= _REASON_LENGTH else reason[: _REASON_LENGTH - 3] + "..."
