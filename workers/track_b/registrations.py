"""The registration policy: which real-time feeds a watched symbol holds on an account.

KIS counts 41 registrations per app key, one per feed (`observer.kis.feeds.Feed`: KRX's and
Nextrade's trades of one stock are two), so Track B's capacity is in registrations, not
symbols (`SlotBook`). What a watched symbol holds is a row of ``[track_b.feeds]``
(`observer.config.workers.FeedTable`): the kinds of the part of the day in force, on each
venue its trades are registered on (``trades``):

* ``krx``: KRX's feeds alone, Nextrade's trades not seen;
* ``venues``: KRX's, and Nextrade's for a name Nextrade trades, each trade stored with its
  venue and checked against its venue's bars;
* ``combined``: the combined feed for a name Nextrade trades (trades without a venue,
  "combined"); KRX's for the others.

A venue may hold another row than the others for a while (`during`: KRX's closing auction
on KRX's and the combined feed, Nextrade's after-market on its own). ``status`` is the
venue's market-operation records (KRX's for the combined feed, whose own name no symbol);
``auction``, in a venue in an auction (`in_auction`), its expected matches, and its program
trading once the auction is over. Through KRX's opening auction and first half hour, when no
slot is held, names hold the rows of those parts (`opening_feeds`). A paper account is
offered trades and books alone (KIS refuses the others, OPSP8991). Outside KRX's trading
(``krx_trading`` false: Nextrade's pre- and after-market) a Nextrade name holds Nextrade's
feed (or the combined one) alone, and any other symbol holds nothing. After KRX's close
(``after_close``: both after-markets) an ETF or ETN pin (``day_only``) holds nothing: no
after-market trades them (`observer.market.after_markets`); a stock under a market measure
Nextrade's after-market excludes (``nxt_day_only``: 투자경고, 관리종목, ...; ``[venues.nxt]
after_market_excludes``) holds KRX's feeds alone, as a name Nextrade does not trade; one
KRX's after-market excludes (``krx_day_only``: ``[venues.krx] after_market_excludes``, none by
default) holds Nextrade's feed alone there (or the combined one), or nothing.

`swaps` orders a change of registrations (a session boundary): each new one before the old
ones are released, as far as the session's limit allows, so no trade falls between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Set
from dataclasses import dataclass
from typing import Literal, get_args

from bus.events import Venue
from observer.config.workers import Kinds, NameKind
from observer.kis.stream import Feed

__all__ = ["TRADES", "TRADE_FEEDS", "RegistrationPolicy", "Swap", "TradeFeeds", "swaps"]

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
# `[track_b.feeds] nextrade`: where a Nextrade name's trades are registered
TRADE_FEEDS: dict[str, TradeFeeds] = {"NXT": "venues", "combined": "combined", "off": "krx"}
_PAPER_KINDS = frozenset({"trades", "book"})  # what KIS offers a paper account
TRADES: Kinds = ("trades",)


@dataclass(frozen=True, slots=True)
class RegistrationPolicy:
    """What each watched symbol holds on each account (see the module).

    ``kinds``: the row in force on every venue but those ``apart`` (venue, row); ``nxt``:
    the symbols Nextrade trades today (eligible and not halted by it), from the day's
    universe and the pins outside it (`workers.track_b.pin_standing`); ``paper``: whether
    the accounts are paper accounts; ``krx_trading``: false while KRX does not trade for
    Track B (Nextrade's pre- and after-market); ``auctions``: the venues in an auction, where
    ``auction`` is the expected matches; ``follows_nxt``: false while Nextrade's feeds are not
    registered (`with_krx` without them), when no name joins ``nxt`` (`with_nxt`);
    ``day_only``: the symbols no after-market trades (ETF and ETN pins, `with_day_only`);
    ``nxt_day_only``: the Nextrade names its after-market does not trade (stocks under a
    market measure it excludes), ``krx_day_only`` the names KRX's does not;
    ``after_close``: KRX's regular day is over (the after-markets, `without_krx`,
    `with_krx`).
    """

    trades: TradeFeeds = "krx"
    kinds: Kinds = TRADES
    nxt: frozenset[str] = frozenset()
    paper: bool = False
    krx_trading: bool = True
    apart: tuple[tuple[Venue, Kinds], ...] = ()
    auctions: frozenset[Venue] = frozenset()
    follows_nxt: bool = True
    day_only: frozenset[str] = frozenset()
    nxt_day_only: frozenset[str] = frozenset()
    krx_day_only: frozenset[str] = frozenset()
    after_close: bool = False

    def venues(self, symbol: str) -> tuple[Venue, ...]:
        """The venues whose trades of ``symbol`` are registered, KRX's (or combined) first."""
        if self.after_close and symbol in self.day_only:
            return ()
        nextrade = symbol in self.nxt and not (self.after_close and symbol in self.nxt_day_only)
        if not self.krx_trading:
            return () if self.paper or not nextrade else _NXT_ALONE[self.trades]
        krx = not (self.after_close and symbol in self.krx_day_only)
        if self.paper or not nextrade:
            return ("KRX",) if krx else ()
        return _VENUES[self.trades] if krx else _NXT_ALONE[self.trades]

    def without_krx(self, kinds: Kinds, *, after_close: bool = False) -> RegistrationPolicy:
        """While KRX does not trade: Nextrade's ``kinds``.

        Its pre-market, or with ``after_close`` its after-market.
        """
        return dataclasses.replace(
            self, krx_trading=False, kinds=kinds, apart=(), after_close=after_close
        )

    def with_krx(self, kinds: Kinds, nextrade: Kinds = ()) -> RegistrationPolicy:
        """While KRX trades again (its after-market): ``kinds``, Nextrade's feeds ``nextrade``.

        Without ``nextrade`` a Nextrade name holds KRX's feeds alone.
        """
        return dataclasses.replace(
            self,
            krx_trading=True,
            kinds=kinds,
            nxt=self.nxt if nextrade else frozenset(),
            apart=(("NXT", nextrade),) if nextrade and self.trades == "venues" else (),
            auctions=frozenset(),
            follows_nxt=bool(nextrade),
            after_close=True,
        )

    def with_nxt(self, symbols: Collection[str]) -> RegistrationPolicy:
        """``symbols`` (pins outside the universe) among the names Nextrade trades.

        This policy itself where that changes nothing, or Nextrade is not followed now.
        """
        if not self.follows_nxt or self.nxt.issuperset(symbols):
            return self
        return dataclasses.replace(self, nxt=self.nxt | frozenset(symbols))

    def with_day_only(self, symbols: Collection[str]) -> RegistrationPolicy:
        """``symbols`` (ETF and ETN pins) among those no after-market trades.

        This policy itself where that changes nothing.
        """
        if self.day_only.issuperset(symbols):
            return self
        return dataclasses.replace(self, day_only=self.day_only | frozenset(symbols))

    def with_nxt_day_only(self, symbols: Collection[str]) -> RegistrationPolicy:
        """``symbols`` (stocks under a measure) among those Nextrade's after-market excludes."""
        if self.nxt_day_only.issuperset(symbols):
            return self
        return dataclasses.replace(self, nxt_day_only=self.nxt_day_only | frozenset(symbols))

    def with_krx_day_only(self, symbols: Collection[str]) -> RegistrationPolicy:
        """``symbols`` (stocks under a measure) among those KRX's after-market excludes."""
        if self.krx_day_only.issuperset(symbols):
            return self
        return dataclasses.replace(self, krx_day_only=self.krx_day_only | frozenset(symbols))

    def why_no_feed(self, symbol: str) -> str:
        """Why ``symbol`` holds no feed now (`venues` is empty), as a pin shown unplaced says."""
        if self.after_close and symbol in self.day_only:
            return "an ETF or ETN: no after-market trades it"
        if self.after_close and self.krx_trading and symbol in self.krx_day_only:
            return "under a market measure: KRX's after-market does not trade it"
        if self.after_close and symbol in self.nxt_day_only and symbol in self.nxt:
            return "under a market measure: Nextrade's after-market does not trade it"
        if self.paper:
            return "a paper account holds no feed while KRX does not trade"
        if not _NXT_ALONE[self.trades]:
            return "KRX does not trade now and Nextrade's feeds are off ([track_b.feeds] nextrade)"
        return "KRX does not trade now and Nextrade does not trade it"

    def during(self, venues: Collection[Venue], kinds: Kinds) -> RegistrationPolicy:
        """``venues``' feeds hold ``kinds`` (a part of the day of their own), in an auction."""
        apart = dict(self.apart) | dict.fromkeys(venues, kinds)
        return dataclasses.replace(
            self, apart=tuple(apart.items()), auctions=self.auctions | set(venues)
        )

    @property
    def streams_nextrade_alone(self) -> bool:
        """Whether a Nextrade name holds a feed while KRX does not trade (`without_krx`)."""
        return bool(self.nxt) and not self.paper and bool(_NXT_ALONE[self.trades])

    def kinds_on(self, venue: Venue) -> Kinds:
        """The row ``venue``'s feeds hold now, as offered (paper accounts: trades and books)."""
        return _offered(dict(self.apart).get(venue, self.kinds), self.paper)

    def feeds(self, symbol: str) -> tuple[Feed, ...]:
        """The feeds ``symbol`` is registered on: each kind of its row, on each of its venues."""
        return self._feeds(symbol, self.venues(symbol), self.kinds_on)

    def _feeds(
        self, symbol: str, venues: tuple[Venue, ...], kinds_on: Callable[[Venue], Kinds]
    ) -> tuple[Feed, ...]:
        rows = [kinds_on(v) for v in venues]
        depth = max((len(row) for row in rows), default=0)
        return tuple(  # each kind on every venue before the next kind (trades first)
            self._feed(row[i], venue, symbol)
            for i in range(depth)
            for venue, row in zip(venues, rows, strict=True)
            if i < len(row)
        )

    def _feed(self, kind: NameKind, venue: Venue, symbol: str) -> Feed:
        if kind == "status":  # the combined feed has none of its own: KRX's
            return Feed("status", "NXT" if venue == "NXT" else "KRX", symbol)
        if kind == "auction" and venue not in self.auctions:
            return Feed("program", venue, symbol)  # the auction is over: its program trades
        return Feed(kind, venue, symbol)

    def in_auction(self, venues: Collection[Venue], auction: bool = True) -> RegistrationPolicy:
        """The policy through an auction of ``venues``' feeds (``auction``), or after it.

        No program trade prints before the auction's match, while its expected price moves
        with every order: an ``auction`` kind follows the one until just before the match,
        then the other. KRX's closing auction is KRX's feed's and the combined one's;
        Nextrade's after-market opening, Nextrade's feed's.
        """
        changed = self.auctions | set(venues) if auction else self.auctions - set(venues)
        return dataclasses.replace(self, auctions=frozenset(changed))

    def opening_feeds(self, symbol: str, kinds: Kinds, auction: bool) -> tuple[Feed, ...]:
        """``kinds`` (as offered) through KRX's opening auction or first half hour.

        ``auction``: the opening auction, on KRX's feed, in it; else the half hour, on the
        symbol's venues.
        """
        offered = _offered(kinds, self.paper)
        policy = dataclasses.replace(self, auctions=frozenset({"KRX"})) if auction else self
        venues = ("KRX",) if auction else self.venues(symbol)
        return policy._feeds(symbol, venues, lambda venue: offered)

    def opening_auction_feeds(self, symbol: str) -> tuple[Feed, ...]:
        """What ``symbol`` holds through KRX's opening auction by default: its expected matches.

        None on paper accounts: KIS offers them no expected matches.
        """
        return self.opening_feeds(symbol, ("auction",), auction=True)

    def cost(self, symbol: str) -> int:
        """The registrations ``symbol`` takes."""
        return len(self.feeds(symbol))

    @property
    def widest(self) -> int:
        """The most registrations one symbol can take (while KRX trades)."""
        width = 1 if self.paper else len(_VENUES[self.trades])
        return width * len(self.kinds_on("KRX"))

    def registrations(self, symbols: Collection[str]) -> set[Feed]:
        """The feeds of ``symbols``."""
        return {feed for s in symbols for feed in self.feeds(s)}

    def describe(self) -> str:
        """What a watched symbol holds, in words (the start-of-day log line)."""
        kinds = self.kinds_on("KRX")
        held = ", ".join(_WORDS[k] for k in kinds)
        if self.paper:
            return f"{held} on KRX's feeds (paper accounts are offered KRX's trades and books)"
        if self.trades == "krx":
            return f"{held} on KRX's feeds (Nextrade's are not registered)"
        both = "KRX's and Nextrade's feeds" if self.trades == "venues" else "the combined feed"
        return f"{held} on {both} for {len(self.nxt)} Nextrade names, on KRX's for the rest"


_WORDS: dict[NameKind, str] = {
    "trades": "trades",
    "book": "book",
    "status": "market status",
    "program": "program trading",
    "auction": "expected matches",
    "brokers": "brokers' trading",
}
if set(_WORDS) != set(get_args(NameKind)):  # a kind added to the rows needs its words
    raise RuntimeError(f"no words for {set(get_args(NameKind)) - set(_WORDS)}")


def _offered(kinds: Kinds, paper: bool) -> Kinds:
    return tuple(k for k in kinds if k in _PAPER_KINDS) if paper else kinds


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
