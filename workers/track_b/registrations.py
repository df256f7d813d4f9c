"""The registration policy: which real-time feeds a watched symbol holds on an account.

KIS counts 41 registrations per app key, one per TR and symbol (H0STCNT0 and H0NXCNT0 of one
stock are two), so Track B's capacity is in registrations, not symbols (`SlotBook`). What a
watched symbol holds follows ``[track_b] trades`` and ``books``:

* ``krx``: KRX's trades (H0STCNT0) alone: one registration, Nextrade's trades not seen;
* ``venues``: KRX's trades, and Nextrade's (H0NXCNT0) for a name Nextrade trades: two, each
  trade stored with its venue and checked against its venue's bars;
* ``combined``: the combined feed (H0UNCNT0) for a name Nextrade trades: one registration
  whose trades carry no venue ("combined"); KRX's feed for the others.

With ``books`` each trade feed has its venue's book beside it. A paper account is offered
KRX's feeds alone (KIS refuses the others, OPSP8991): there every symbol holds those.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from bus.events import Venue
from observer.kis.realtime import BOOK_TRS, TRADE_TRS, VENUE_OF_TR

__all__ = ["PAPER_FEEDS", "RegistrationPolicy", "TradeFeeds"]

TradeFeeds = Literal["krx", "venues", "combined"]

# The real-time TRs a paper account offers among those Track B registers.
PAPER_FEEDS = frozenset({TRADE_TRS["KRX"], BOOK_TRS["KRX"]})
_VENUES: dict[TradeFeeds, tuple[Venue, ...]] = {
    "krx": ("KRX",),
    "venues": ("KRX", "NXT"),
    "combined": ("combined",),
}


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """What each watched symbol holds on each account (see the module).

    ``nxt``: the symbols Nextrade trades today (eligible and not halted by it), from the
    day's universe; ``paper``: whether the accounts are paper accounts.
    """

    trades: TradeFeeds = "krx"
    books: bool = False
    nxt: frozenset[str] = frozenset()
    paper: bool = False

    def venues(self, symbol: str) -> tuple[Venue, ...]:
        """The venues whose trades of ``symbol`` are registered, KRX's (or combined) first."""
        if self.paper or symbol not in self.nxt:
            return ("KRX",)
        return _VENUES[self.trades]

    def feeds(self, symbol: str) -> tuple[str, ...]:
        """The TRs ``symbol`` is registered on, trades before books (its registrations)."""
        venues = self.venues(symbol)
        trades = tuple(TRADE_TRS[v] for v in venues)
        return trades + tuple(BOOK_TRS[v] for v in venues) if self.books else trades

    def cost(self, symbol: str) -> int:
        """The registrations ``symbol`` takes."""
        return len(self.venues(symbol)) * (2 if self.books else 1)

    @property
    def widest(self) -> int:
        """The most registrations one symbol can take."""
        width = 1 if self.paper else len(_VENUES[self.trades])
        return width * (2 if self.books else 1)

    def describe(self) -> str:
        """What a watched symbol holds, in words (the start-of-day log line)."""
        books = " and its book" if self.books else ""
        if self.paper:
            return f"KRX's trades{books} (paper accounts are offered KRX's feeds alone)"
        if self.trades == "krx":
            return f"KRX's trades{books} (Nextrade's are not registered)"
        what = "KRX's and Nextrade's trades" if self.trades == "venues" else "combined trades"
        return f"{what}{books} for {len(self.nxt)} Nextrade names, KRX's{books} for the rest"


def venue_of(tr_id: str) -> Venue:
    """The venue of a trade or book TR's records."""
    return VENUE_OF_TR[tr_id]


def is_trade(tr_id: str, trades: Collection[str] = frozenset(TRADE_TRS.values())) -> bool:
    """Whether ``tr_id`` is a trade feed (any venue's)."""
    return tr_id in trades
