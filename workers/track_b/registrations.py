"""The registration policy: which real-time feeds a watched symbol holds on an account.

KIS counts 41 registrations per app key, one per feed (`observer.kis.feeds.Feed`: KRX's and
Nextrade's trades of one stock are two), so Track B's capacity is in registrations, not
symbols (`SlotBook`). What a watched symbol holds follows ``[track_b] trades`` and ``books``:

* ``krx``: KRX's trades alone: one registration, Nextrade's trades not seen;
* ``venues``: KRX's trades, and Nextrade's for a name Nextrade trades: two, each trade stored
  with its venue and checked against its venue's bars;
* ``combined``: the combined feed's trades for a name Nextrade trades: one registration whose
  trades carry no venue ("combined"); KRX's feed for the others.

With ``books`` each trade feed has its venue's book beside it; with ``statuses`` its venue's
market-operation records (halts, VIs, session events; KRX's for the combined feed, whose own
name no symbol); with ``programs`` its venue's program trading. Each is a registration of its
own. Through KRX's opening auction, when no slot is held, a name holds KRX's expected matches
alone (`opening_auction_feeds`); through an auction while the name is held (KRX's closing one,
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
from observer.kis.stream import Feed

__all__ = ["RegistrationPolicy", "Swap", "TradeFeeds", "swaps"]

TradeFeeds = Literal["krx", "venues", "combined"]

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

    def feeds(self, symbol: str) -> tuple[Feed, ...]:
        """The feeds ``symbol`` is registered on: trades, books, statuses, program trading."""
        venues = self.venues(symbol)
        feeds = [Feed("trades", v, symbol) for v in venues]
        if self.books:
            feeds += [Feed("book", v, symbol) for v in venues]
        if self.statuses and not self.paper:
            feeds += [Feed("status", "NXT" if v == "NXT" else "KRX", symbol) for v in venues]
        if self.programs and not self.paper:
            feeds += [self._program(v, symbol) for v in venues]
        return tuple(feeds)

    def _program(self, venue: Venue, symbol: str) -> Feed:
        """The program-trading registration: the expected matches in an auction."""
        return Feed("auction" if venue in self.auctions else "program", venue, symbol)

    def in_auction(self, venues: Collection[Venue], auction: bool = True) -> RegistrationPolicy:
        """The policy through an auction of ``venues``' feeds (``auction``), or after it.

        No program trade prints before the auction's match, while its expected price moves
        with every order: the registration follows the one until just before the match.
        KRX's closing auction is KRX's feed's and the combined one's; Nextrade's after-market
        opening, Nextrade's feed's.
        """
        changed = self.auctions | set(venues) if auction else self.auctions - set(venues)
        return dataclasses.replace(self, auctions=frozenset(changed))

    def opening_auction_feeds(self, symbol: str) -> tuple[Feed, ...]:
        """What ``symbol`` holds through KRX's opening auction: KRX's expected matches.

        None on paper accounts: KIS offers them no expected matches.
        """
        return () if self.paper else (Feed("auction", "KRX", symbol),)

    def opening_half_hour_feeds(self, symbol: str) -> tuple[Feed, ...]:
        """What ``symbol`` holds through KRX's first half hour: its venues' trades."""
        return tuple(Feed("trades", v, symbol) for v in self.venues(symbol))

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

    def registrations(self, symbols: Collection[str]) -> set[Feed]:
        """The feeds of ``symbols``."""
        return {feed for s in symbols for feed in self.feeds(s)}

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


Swap = tuple[Literal["add", "drop"], Feed]


def swaps(current: Set[Feed], target: Set[Feed], capacity: int) -> list[Swap]:
    """The order that takes a session from ``current`` registrations to ``target``'s.

    Each registration to add goes before those to drop while the session has room for it
    (``capacity``); without room, one to drop goes first: of a symbol that gains nothing
    if there is one, so a symbol that changes feeds keeps its old ones to the last. Never
    more than ``capacity`` held at once. ValueError if ``target`` does not fit.
    """
    if len(target) > capacity:
        raise ValueError(f"{len(target)} registrations do not fit in {capacity}")
    adds = sorted(target - current, key=lambda r: r.order)
    gaining = {r.symbol for r in adds}
    drops = sorted(current - target, key=lambda r: (r.symbol in gaining, r.order))
    held, plan = len(current), list[Swap]()
    for registration in adds:
        while held >= capacity:
            plan.append(("drop", drops.pop(0)))
            held -= 1
        plan.append(("add", registration))
        held += 1
    plan.extend(("drop", r) for r in drops)
    return plan
