"""The registration policy: which real-time feeds a watched symbol holds on an account.

KIS counts 41 registrations per app key, one per TR and symbol (H0STCNT0 and H0NXCNT0 of one
stock are two), so Track B's capacity is in registrations, not symbols (`SlotBook`). What a
watched symbol holds follows ``[track_b] trades`` and ``books``:

* ``krx``: KRX's trades (H0STCNT0) alone: one registration, Nextrade's trades not seen;
* ``venues``: KRX's trades, and Nextrade's (H0NXCNT0) for a name Nextrade trades: two, each
  trade stored with its venue and checked against its venue's bars;
* ``combined``: the combined feed (H0UNCNT0) for a name Nextrade trades: one registration
  whose trades carry no venue ("combined"); KRX's feed for the others.

With ``books`` each trade feed has its venue's book beside it; with ``statuses`` its venue's
market-operation records (halts, VIs, session events: H0STMKO0, H0NXMKO0; KRX's for the
combined feed, whose own names no symbol); with ``programs`` its venue's program trading
(H0STPGM0, H0NXPGM0, H0UNPGM0). Each is a registration of its own. Through KRX's opening
auction, when no slot is held, a name holds KRX's expected matches (H0STANC0) alone
(`opening_auction_feeds`); through an auction while the name is held (KRX's closing one,
Nextrade's after-market opening) its program-trading registration of that venue holds them
instead (`in_auction`). A paper account is offered KRX's trades and books
alone (KIS refuses the others, OPSP8991): there every symbol holds those. Outside KRX's
trading (``krx_trading`` false: Nextrade's pre- and after-market) a Nextrade name holds
Nextrade's feed (or the combined one) alone, and any other symbol holds nothing.

`swaps` orders a change of registrations (a session boundary): each new one before the old
ones are released, as far as the session's limit allows, so no trade falls between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Set
from dataclasses import dataclass
from typing import Literal

from bus.events import Venue
from observer.kis.realtime import (
    BOOK_TRS,
    EXPECTED_TRS,
    PROGRAM_TRS,
    STATUS_TRS,
    TRADE_TRS,
    VENUE_OF_TR,
    VI_TRS,
)
from observer.kis.stream import Registration

__all__ = [
    "RegistrationPolicy",
    "Swap",
    "TradeFeeds",
    "feed_label",
    "is_trade",
    "swaps",
    "venue_of",
]

TradeFeeds = Literal["krx", "venues", "combined"]

_TRADE_FEEDS = frozenset(TRADE_TRS.values())
_VENUES: dict[TradeFeeds, tuple[Venue, ...]] = {
    "krx": ("KRX",),
    "venues": ("KRX", "NXT"),
    "combined": ("combined",),
}
# What a Nextrade name holds while KRX does not trade: the feeds that carry Nextrade's trades.
_NXT_ALONE: dict[TradeFeeds, tuple[Venue, ...]] = {
    "krx": (),
    "venues": ("NXT",),
    "combined": ("combined",),
}


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """What each watched symbol holds on each account (see the module).

    ``nxt``: the symbols Nextrade trades today (eligible and not halted by it), from the
    day's universe; ``paper``: whether the accounts are paper accounts; ``krx_trading``:
    false while KRX does not trade for Track B (Nextrade's pre- and after-market).
    """

    trades: TradeFeeds = "krx"
    books: bool = False
    nxt: frozenset[str] = frozenset()
    paper: bool = False
    krx_trading: bool = True
    statuses: bool = False
    programs: bool = False
    # The venues in an auction (KRX's closing one, Nextrade's after-market opening): a name's
    # program-trading registration there holds its expected matches instead (`in_auction`)
    auctions: frozenset[Venue] = frozenset()

    def venues(self, symbol: str) -> tuple[Venue, ...]:
        """The venues whose trades of ``symbol`` are registered, KRX's (or combined) first."""
        if not self.krx_trading:
            return () if self.paper or symbol not in self.nxt else _NXT_ALONE[self.trades]
        if self.paper or symbol not in self.nxt:
            return ("KRX",)
        return _VENUES[self.trades]

    def without_krx(self) -> RegistrationPolicy:
        """The policy while KRX does not trade (Nextrade's pre- and after-market)."""
        return dataclasses.replace(self, krx_trading=False)

    def with_krx(self, nextrade: bool = True) -> RegistrationPolicy:
        """The policy while KRX trades again (its after-market); Nextrade's feeds or not."""
        return dataclasses.replace(
            self, krx_trading=True, nxt=self.nxt if nextrade else frozenset()
        )

    @property
    def streams_nextrade_alone(self) -> bool:
        """Whether a Nextrade name holds a feed while KRX does not trade (`without_krx`)."""
        return bool(self.nxt) and not self.paper and bool(_NXT_ALONE[self.trades])

    def feeds(self, symbol: str) -> tuple[str, ...]:
        """The TRs ``symbol`` is registered on: trades, books, statuses, program trading."""
        venues = self.venues(symbol)
        feeds = [TRADE_TRS[v] for v in venues]
        if self.books:
            feeds += [BOOK_TRS[v] for v in venues]
        if self.statuses and not self.paper:
            feeds += [STATUS_TRS["NXT" if v == "NXT" else "KRX"] for v in venues]
        if self.programs and not self.paper:
            feeds += [self._program(v) for v in venues]
        return tuple(feeds)

    def _program(self, venue: Venue) -> str:
        """The program-trading registration's TR: the expected matches in an auction."""
        return EXPECTED_TRS[venue] if venue in self.auctions else PROGRAM_TRS[venue]

    def in_auction(self, venues: Collection[Venue], auction: bool = True) -> RegistrationPolicy:
        """The policy through an auction of ``venues``' feeds (``auction``), or after it.

        No program trade prints before the auction's match, while its expected price moves
        with every order: the registration follows the one until just before the match.
        KRX's closing auction is KRX's feed's and the combined one's; Nextrade's after-market
        opening, Nextrade's feed's.
        """
        changed = self.auctions | set(venues) if auction else self.auctions - set(venues)
        return dataclasses.replace(self, auctions=frozenset(changed))

    def opening_auction_feeds(self, symbol: str) -> tuple[str, ...]:
        """What ``symbol`` holds through KRX's opening auction: KRX's expected matches.

        None on paper accounts: KIS offers them no expected matches.
        """
        return () if self.paper else (EXPECTED_TRS["KRX"],)

    def opening_half_hour_feeds(self, symbol: str) -> tuple[str, ...]:
        """What ``symbol`` holds through KRX's first half hour: its venues' trades."""
        return tuple(TRADE_TRS[v] for v in self.venues(symbol))

    def cost(self, symbol: str) -> int:
        """The registrations ``symbol`` takes."""
        return len(self.venues(symbol)) * self._kinds

    @property
    def _kinds(self) -> int:
        """The registrations each of a symbol's venues takes."""
        extra = 0 if self.paper else int(self.statuses) + int(self.programs)
        return 1 + int(self.books) + extra

    @property
    def widest(self) -> int:
        """The most registrations one symbol can take (while KRX trades)."""
        width = 1 if self.paper else len(_VENUES[self.trades])
        return width * self._kinds

    def registrations(self, symbols: Collection[str]) -> set[Registration]:
        """The registrations of ``symbols``, each its feeds."""
        return {Registration(tr_id, s) for s in symbols for tr_id in self.feeds(s)}

    def describe(self) -> str:
        """What a watched symbol holds, in words (the start-of-day log line)."""
        books = " and its book" if self.books else ""
        if not self.paper:
            books += ", market status" if self.statuses else ""
            books += ", program trading" if self.programs else ""
        if self.paper:
            return f"KRX's trades{books} (paper accounts are offered KRX's feeds alone)"
        if self.trades == "krx":
            return f"KRX's trades{books} (Nextrade's are not registered)"
        what = "KRX's and Nextrade's trades" if self.trades == "venues" else "combined trades"
        return f"{what}{books} for {len(self.nxt)} Nextrade names, KRX's{books} for the rest"


Swap = tuple[Literal["add", "drop"], Registration]


def swaps(current: Set[Registration], target: Set[Registration], capacity: int) -> list[Swap]:
    """The order that takes a session from ``current`` registrations to ``target``'s.

    Each registration to add goes before those to drop while the session has room for it
    (``capacity``); without room, one to drop goes first: of a symbol that gains nothing
    if there is one, so a symbol that changes feeds keeps its old ones to the last. Never
    more than ``capacity`` held at once. ValueError if ``target`` does not fit.
    """
    if len(target) > capacity:
        raise ValueError(f"{len(target)} registrations do not fit in {capacity}")
    adds = sorted(target - current, key=_order)
    gaining = {r.tr_key for r in adds}
    drops = sorted(current - target, key=lambda r: (r.tr_key in gaining, *_order(r)))
    held, plan = len(current), list[Swap]()
    for registration in adds:
        while held >= capacity:
            plan.append(("drop", drops.pop(0)))
            held -= 1
        plan.append(("add", registration))
        held += 1
    plan.extend(("drop", r) for r in drops)
    return plan


def _order(registration: Registration) -> tuple[str, str]:
    return registration.tr_key, registration.tr_id


def venue_of(tr_id: str) -> Venue:
    """The venue of a real-time TR's records."""
    return VENUE_OF_TR[tr_id]


_KINDS = (
    (TRADE_TRS, "trades"),
    (BOOK_TRS, "book"),
    (STATUS_TRS, "status"),
    (PROGRAM_TRS, "program"),
    (EXPECTED_TRS, "auction"),
    (VI_TRS, "VIs"),
)
_LABELS = {tr_id: f"{venue} {kind}" for trs, kind in _KINDS for venue, tr_id in trs.items()}


def feed_label(tr_id: str) -> str:
    """What a registration of ``tr_id`` is for, in words ("NXT trades", "KRX status")."""
    return _LABELS.get(tr_id, tr_id)


def is_trade(tr_id: str) -> bool:
    """Whether ``tr_id`` is a trade feed (any venue's)."""
    return tr_id in _TRADE_FEEDS
