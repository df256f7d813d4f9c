"""The slot manager and provider pool: which account streams which symbol.

Each account's WebSocket session holds ``capacity`` registrations (41), a symbol taking as
many as its feeds (`workers.track_b.registrations`: one, or up to four with Nextrade's and
the books), less one for each slot closed because KIS counted more registrations on the
session than we did (`SlotBook.close`). `SlotBook.evaluate` decides, from the
candidates of the moment and the symbols barred (symbol -> reason), what to release, renew,
allocate and replace. The same state and inputs always give the same decisions: every
choice is ordered by score, market cap and code, and the round-robin position is state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from bus.events import SlotTrigger

__all__ = ["Holding", "Room", "SlotAction", "SlotBook", "SlotCandidate"]

Action = Literal["allocate", "replace", "release", "expire", "overflow"]


class SlotCandidate(msgspec.Struct, frozen=True, gc=False):
    """A symbol that wants a slot, with the trigger that makes it want one."""

    symbol: str
    trigger: SlotTrigger
    score: float
    strength: float = 0.0
    measure: float = 0.0
    market_cap: int = 0
    expires_ns: int = 0  # 0: never
    pinned: bool = False

    def rank(self) -> tuple[bool, float, int, str, float, str, float, float]:
        """Sort key, best first (ties: market cap, then code; then the longest-lived)."""
        lasts = self.expires_ns or float("inf")
        return (
            not self.pinned,
            -self.score,
            -self.market_cap,
            self.symbol,
            -lasts,
            self.trigger,
            -self.strength,
            -self.measure,
        )


class Holding(msgspec.Struct, frozen=True, gc=False):
    """A symbol in one slot of one account since ``since_ns``."""

    account: str
    slot: int
    candidate: SlotCandidate
    since_ns: int


class SlotAction(msgspec.Struct, frozen=True, gc=False):
    """One thing the slot manager did, with its reason."""

    action: Action
    candidate: SlotCandidate
    reason: str
    account: str = ""
    slot: int = -1
    replaced: SlotCandidate | None = None
    lowest_held: float = 0.0
    # An overflow only because every unpinned holding is newer than the minimum hold (the
    # 09:30 minute, when the context sync's placements cannot be replaced yet): a wait.
    waiting: bool = False


def _one(symbol: str) -> int:
    return 1


class Room(msgspec.Struct, frozen=True):
    """Registrations to fill, and how many a symbol takes (``cost``)."""

    registrations: int
    cost: Callable[[str], int] = _one

    def fitting(self, symbols: Iterable[str]) -> int:
        """How many of ``symbols``, in order, fit: their costs summed within the room."""
        left, fit = self.registrations, 0
        for symbol in symbols:
            left -= self.cost(symbol)
            if left < 0:
                break
            fit += 1
        return fit


class SlotBook:
    """Every account's slots and the round-robin position: the slot manager's state.

    ``capacity`` is in registrations per account; ``cost`` gives a symbol's (1 each by
    default). A holding takes the lowest free slot number of its account; an account takes
    a symbol while its registrations held, plus the symbol's, plus its closed slots, plus
    what ``reserved`` keeps of it (a registration held beside the slots all day: the VI
    feed's), stay within ``capacity``.
    """

    def __init__(
        self,
        accounts: Sequence[str],
        capacity: int,
        cost: Callable[[str], int] = _one,
        reserved: Mapping[str, int] | None = None,
    ) -> None:
        if not accounts or capacity < 1:
            raise ValueError("a slot book needs accounts and capacity")
        self.accounts = list(accounts)
        self.capacity = capacity
        self.cost = cost
        self.reserved = {a: n for a, n in (reserved or {}).items() if a in self.accounts}
        self.slots: dict[str, list[Holding | None]] = {a: [None] * capacity for a in accounts}
        self.closed: set[tuple[str, int]] = set()  # (account, slot): never placed into again
        self.cursor = 0

    def registrations(self, account: str) -> int:
        """The registrations ``account``'s holdings take."""
        return sum(self._cost(h) for h in self.slots[account] if h is not None)

    def _cost(self, holding: Holding) -> int:
        return self.cost(holding.candidate.symbol)

    def free(self) -> Room:
        """The room of every account's session, closed and reserved aside, held or not."""
        aside = len(self.closed) + sum(self.reserved.values())
        return Room(self.capacity * len(self.accounts) - aside, self.cost)

    def room(self, account: str) -> int:
        """The registrations ``account`` has free: capacity less held, closed and reserved."""
        closed = sum(1 for a, _ in self.closed if a == account) + self.reserved.get(account, 0)
        return self.capacity - closed - self.registrations(account)

    def holdings(self) -> list[Holding]:
        """Every holding, by account then slot."""
        return [h for a in self.accounts for h in self.slots[a] if h is not None]

    def held(self) -> dict[str, Holding]:
        """Symbol -> its holding."""
        return {h.candidate.symbol: h for h in self.holdings()}

    def _put(self, account: str, slot: int, candidate: SlotCandidate, now_ns: int) -> None:
        self.slots[account][slot] = Holding(account, slot, candidate, now_ns)

    def _free(self, holding: Holding) -> None:
        self.slots[holding.account][holding.slot] = None

    def restore(self, holding: Holding) -> bool:
        """Put back a holding that an earlier process left (a restart); False if it cannot be.

        It cannot be on an account no longer configured, in a slot beyond the capacity or
        taken, or when the symbol is held already.
        """
        slots = self.slots.get(holding.account)
        if slots is None or not 0 <= holding.slot < self.capacity:
            return False
        if slots[holding.slot] is not None or holding.candidate.symbol in self.held():
            return False
        if (holding.account, holding.slot) in self.closed:
            return False
        if self.room(holding.account) < self.cost(holding.candidate.symbol):
            return False
        slots[holding.slot] = holding
        return True

    def beyond(self, cost: Callable[[str], int]) -> list[str]:
        """The symbols to release, lowest-ranked first, for every account to fit ``cost``.

        A policy that makes holdings costlier (KRX's feeds joining Nextrade's at KRX's
        after-market) keeps each account's best holdings that fit beside what is aside.
        """
        return [symbol for account in self.accounts for symbol in self._beyond(account, cost)]

    def _beyond(self, account: str, cost: Callable[[str], int]) -> list[str]:
        """`beyond` for one account."""
        held = sorted(
            (h for h in self.slots[account] if h is not None),
            key=lambda h: h.candidate.rank(),
            reverse=True,
        )
        closed = sum(1 for a, _ in self.closed if a == account)
        used = closed + self.reserved.get(account, 0) + sum(cost(h.candidate.symbol) for h in held)
        beyond = []
        for holding in held:
            if used <= self.capacity:
                break
            used -= cost(holding.candidate.symbol)
            beyond.append(holding.candidate.symbol)
        return beyond

    def release(self, symbol: str, reason: str) -> SlotAction | None:
        """Release ``symbol`` (an unpin, a halted stock); None if it holds no slot."""
        holding = self.held().get(symbol)
        if holding is None:
            return None
        self._free(holding)
        return SlotAction("release", holding.candidate, reason, holding.account, holding.slot)

    def close(self, account: str, slot: int, reason: str) -> list[SlotAction]:
        """Close a slot for good, releasing its holding and any more the account no longer fits.

        For a session that KIS says is full (OPSP0008) while we count a free registration:
        our count is wrong, and KIS's is the one that refuses. A closed slot takes one
        registration: where the account's holdings would exceed its session beside it, the
        lowest-ranked are released too.
        """
        self.closed.add((account, slot))
        released = []
        holding = self.slots[account][slot]
        if holding is not None:
            self._free(holding)
            released.append(SlotAction("release", holding.candidate, reason, account, slot))
        for symbol in self._beyond(account, self.cost):
            if (action := self.release(symbol, reason)) is not None:
                released.append(action)
        return released

    def _next_free(self, healthy: set[str], need: int) -> tuple[str, int] | None:
        for step in range(len(self.accounts)):
            account = self.accounts[(self.cursor + step) % len(self.accounts)]
            if account not in healthy or self.room(account) < need:
                continue
            for slot, holding in enumerate(self.slots[account]):
                if holding is None and (account, slot) not in self.closed:
                    self.cursor = (self.cursor + step + 1) % len(self.accounts)
                    return account, slot
        return None

    def evaluate(
        self,
        candidates: Iterable[SlotCandidate],
        now_ns: int,
        healthy: Iterable[str],
        *,
        threshold: float = 1.2,
        min_hold_ns: int = 0,
        barred: Mapping[str, str] | None = None,
    ) -> list[SlotAction]:
        """One evaluation round; returns its decisions in order.

        0. Held symbols that are barred are released with their bar's reason, and barred
           candidates are not wanted.
        1. Held symbols that are candidates again are renewed (score and expiry updated): a pin
           lifted while another candidate claims the symbol (a live trigger, the market-cap
           placement) keeps its slot under that claim, with no release and no new registration.
        2. Held symbols whose trigger lapsed are released (``expire``); pins never lapse, but a
           pin that is no candidate any more (unpinned) and that nothing else claims is released
           (``release``, "unpinned").
        3. Symbols held on an unhealthy account are released there (``release``, failover) and
           compete again for the capacity left on healthy accounts.
        4. The other candidates, pins first, then by score, market cap and code, each take a free
           slot on the next healthy account in round-robin order with room for its registrations
           (``allocate``). With none, a candidate replaces the lowest-scoring replaceable holding
           (not pinned, held at least ``min_hold_ns``, on an account where its registrations
           free enough) if it scores above ``threshold`` times that holding (``replace``); a
           pin replaces the lowest unpinned holding whatever its score. Otherwise it is an
           ``overflow`` with the lowest replaceable score; when every unpinned holding is newer
           than ``min_hold_ns``, with the lowest held score, a reason that says so, and
           ``waiting`` set. A replaced symbol, whose trigger is still live, overflows too.
        """
        alive = set(healthy)
        barred = barred or {}
        decisions: list[SlotAction] = []
        for holding in self.holdings():
            why = barred.get(holding.candidate.symbol)
            if why is not None:
                self._free(holding)
                c = holding.candidate
                decisions.append(SlotAction("release", c, why, holding.account, holding.slot))
        wanted: dict[str, SlotCandidate] = {}
        for c in candidates:
            if c.symbol in barred:
                continue
            if c.pinned or not c.expires_ns or c.expires_ns > now_ns:  # lapsed: not wanted
                best = wanted.setdefault(c.symbol, c)  # a symbol's best candidate
                if best is not c and c.rank() < best.rank():
                    wanted[c.symbol] = c
        pool: list[SlotCandidate] = []
        for holding in self.holdings():
            symbol = holding.candidate.symbol
            current = wanted.pop(symbol, None)
            if current is not None:
                holding = msgspec.structs.replace(holding, candidate=current)
                self.slots[holding.account][holding.slot] = holding
            c = holding.candidate
            if c.pinned and current is None:  # unpinned, and nothing else claims it
                self._free(holding)
                decisions.append(
                    SlotAction("release", c, "unpinned", holding.account, holding.slot)
                )
            elif not c.pinned and c.expires_ns and c.expires_ns <= now_ns:
                self._free(holding)
                why = f"{c.trigger} lapsed (score {c.score:.2f})"
                decisions.append(SlotAction("expire", c, why, holding.account, holding.slot))
            elif holding.account not in alive:
                self._free(holding)
                why = f"account {holding.account} unhealthy: failover"
                decisions.append(SlotAction("release", c, why, holding.account, holding.slot))
                pool.append(c)
        pool.extend(wanted.values())
        full: SlotAction | None = None  # the first candidate that found no slot
        for c in sorted(pool, key=SlotCandidate.rank):
            # Every later one scores no higher (pins come first): one that takes no fewer
            # registrations finds no slot either.
            if full is not None and self.cost(c.symbol) >= self.cost(full.candidate.symbol):
                decisions.append(
                    SlotAction(
                        "overflow",
                        c,
                        full.reason,
                        lowest_held=full.lowest_held,
                        waiting=full.waiting,
                    )
                )
                continue
            decision = self._place(c, now_ns, alive, threshold, min_hold_ns)
            decisions.append(decision)
            if decision.action == "overflow" and not c.pinned and full is None:
                full = decision
            if decision.replaced is not None:  # still triggered, now without a slot
                why = f"replaced by {c.symbol} (score {c.score:.2f})"
                lowest = min(
                    (h.candidate.score for h in self.holdings() if not h.candidate.pinned),
                    default=0.0,
                )
                decisions.append(SlotAction("overflow", decision.replaced, why, lowest_held=lowest))
        return decisions

    def _place(
        self, c: SlotCandidate, now_ns: int, alive: set[str], threshold: float, min_hold_ns: int
    ) -> SlotAction:
        if not alive:
            return SlotAction("overflow", c, "no healthy account")
        need = self.cost(c.symbol)
        free = self._next_free(alive, need)
        if free is not None:
            account, slot = free
            self._put(account, slot, c, now_ns)
            return SlotAction(
                "allocate", c, f"{c.trigger} (score {c.score:.2f}): free slot", account, slot
            )
        unpinned = [h for h in self.holdings() if not h.candidate.pinned and h.account in alive]
        if not unpinned:
            return SlotAction("overflow", c, "every slot pinned")
        # Only a holding whose registrations, with its account's free ones, take the new one's.
        unpinned = [h for h in unpinned if self.room(h.account) + self._cost(h) >= need]
        if not unpinned:
            return SlotAction("overflow", c, f"no account has {need} registrations to free")
        replaceable = [h for h in unpinned if c.pinned or now_ns - h.since_ns >= min_hold_ns]
        if not replaceable:  # the slots are all newer than the minimum hold: it waits
            lowest_held = min(h.candidate.score for h in unpinned)
            why = f"every slot held for less than the minimum hold ({min_hold_ns / 1e9:g} s)"
            return SlotAction("overflow", c, why, lowest_held=lowest_held, waiting=True)
        weakest = min(replaceable, key=_weakness)
        old = weakest.candidate
        if c.pinned or c.score > old.score * threshold:
            self._put(weakest.account, weakest.slot, c, now_ns)
            why = (
                "pinned"
                if c.pinned
                else f"{c.trigger} (score {c.score:.2f}) > {threshold:g} x {old.score:.2f}"
            )
            return SlotAction("replace", c, why, weakest.account, weakest.slot, replaced=old)
        why = f"not above {threshold:g} x the lowest replaceable score ({old.score:.2f})"
        return SlotAction("overflow", c, why, lowest_held=old.score)


def _weakness(h: Holding) -> tuple[float, int, str]:
    """The weakest holding first: lowest score, then smallest market cap, then code."""
    return (h.candidate.score, h.candidate.market_cap, h.candidate.symbol)
