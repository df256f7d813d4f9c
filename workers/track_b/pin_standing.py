"""The Nextrade standing of pins outside the day's universe, asked of KIS by Track B.

The universe job asks each member's standing in the morning (CTPF1002R, `workers.universe`);
a pin outside the universe (an ETF, which Nextrade trades from November 2026; a stock below the
universe's price floor) has none, and a name whose standing is not known holds KRX's feeds
alone. Track B asks it for each such pin it reads, once a day, on its first account: at most
`ASK_AT_ONCE` a evaluation, and none after one fails, so that neither a long list pinned at
once nor a KIS that does not answer holds the slots still for long.
KIS keeps no history of the standing: the pin's Nextrade registration (a slot event on that
venue) is its record.

The same answer names the pin's product (`NxtStatus.kind`): an ETF or ETN trades in no
after-market (`observer.market.after_markets`), so from KRX's close it holds no feed
(`day_only`, `RegistrationPolicy.venues`). Where the answer names none (an older layout) or
none is asked (a paper account: the TR is real-only, so its pins hold KRX's feeds, as its
members do), the product is the one the master files list. They list its market measures
too (투자경고, 관리종목, ...: `under`), which no answer of KIS's names: a pin under one that a
venue's after-market excludes holds no feed of that venue there, as a member does. The master
files' listing is the instruments table's, read once a pin; a read that fails, or does not
answer within 2 s, is tried again `RETRY_S` later, the pin's feeds held meanwhile: a slot
spent, never a trade missed. An ask that fails is tried again `RETRY_S` of clock time later,
with one warning ``track_b_pin_standing_unknown`` per pin, resolved when KIS answers or the
pin is lifted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping

import httpx
from sqlalchemy.exc import SQLAlchemyError

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.db.queries import Listed
from observer.errors import KisError, StoreError
from observer.kis.client import KisClient
from observer.market.after_markets import trades_after_markets

__all__ = ["ASK_AT_ONCE", "PIN_STANDING_UNKNOWN", "RETRY_S", "PinStandings"]

log = logging.getLogger(__name__)

PIN_STANDING_UNKNOWN = "track_b_pin_standing_unknown"
ASK_AT_ONCE = 5  # pins asked in one evaluation; the rest at the next
RETRY_S = 60.0  # clock seconds before a failed ask is tried again
_ASK_TIMEOUT_S = 10.0  # wall seconds one ask may hold an evaluation
# Wall seconds the master's listings may hold one: a database that does not answer would hold
# it for its pool's timeout (10 s) once a `RETRY_S`; the read goes on on its thread, unused.
_LISTED_TIMEOUT_S = 2.0

_NS = 1_000_000_000


class PinStandings:
    """Which pins outside ``members`` Nextrade trades today, as KIS answered Track B.

    ``client``: the account that asks; None where none may (paper accounts): every pin
    outside the universe then holds KRX's feeds, and nothing is asked or alerted.
    ``listed``: how the master files list pins (`observer.db.queries.listed_as`, read on a
    thread): the product of a pin KIS does not name one of, and every pin's measures; None:
    not read.
    """

    def __init__(
        self,
        client: KisClient | None,
        clock: Clock,
        alerts: AlertBook,
        members: Collection[str],
        listed: Callable[[Collection[str]], Mapping[str, Listed]] | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.alerts = alerts
        self.members = frozenset(members)
        self.listed = listed
        self.answered: dict[str, bool] = {}  # pin -> Nextrade trades it today
        self.day_only: frozenset[str] = frozenset()  # pins of a product no after-market trades
        self._failed_ns: dict[str, int] = {}  # pin -> when its last ask failed (clock ns)
        self._answered_kind: dict[str, str] = {}  # pin -> its product as KIS answered it
        self._listed: dict[str, Listed] = {}  # pin -> as the master files list it
        self._listed_failed_ns: int | None = None  # when the last read of them failed

    async def nextrade(self, pins: Collection[str]) -> frozenset[str]:
        """The ``pins`` outside the universe that Nextrade trades today, asking those due."""
        outside = sorted(set(pins) - self.members)
        for lifted in self.alerts.subjects(PIN_STANDING_UNKNOWN) - set(outside):
            self._failed_ns.pop(lifted, None)  # an earlier run's too: the book took them over
            self.alerts.resolve(PIN_STANDING_UNKNOWN, lifted, f"the pin {lifted} is lifted")
        if self.client is not None:
            now = self.clock.now_ns()
            retry_ns = int(RETRY_S * _NS)
            failed = self._failed_ns
            due = [
                p
                for p in outside
                if p not in self.answered and (p not in failed or now - failed[p] >= retry_ns)
            ]
            for pin in due[:ASK_AT_ONCE]:
                if not await self._ask(self.client, pin):
                    break  # KIS failing: the rest wait for the next evaluation, not on it
        await self._read_listed(outside)
        # KIS's product where it names one; the master's where KIS will name none (no client,
        # or an answer without it), never before KIS's answer (a stale master's is no guess)
        named = {p: kind for p, kind in self._answered_kind.items() if kind != "other"}
        unnamed = {
            p: listed.kind
            for p, listed in self._listed.items()
            if self.client is None or self._answered_kind.get(p) == "other"
        }
        kinds = (unnamed | named).items()
        self.day_only |= {p for p, kind in kinds if not trades_after_markets(kind)}
        return frozenset(p for p in outside if self.answered.get(p))

    def under(self, pins: Collection[str], measures: Collection[str]) -> frozenset[str]:
        """The ``pins`` the master files list under one of ``measures`` (none not yet read)."""
        return frozenset(
            p
            for p in pins
            if p in self._listed and not set(measures).isdisjoint(self._listed[p].measures)
        )

    async def _read_listed(self, outside: Collection[str]) -> None:
        """How the master files list the pins outside the universe, each read once."""
        unread = [p for p in outside if p not in self._listed]
        failed = self._listed_failed_ns
        now = self.clock.now_ns()
        waiting = failed is not None and now - failed < RETRY_S * _NS
        if not unread or self.listed is None or waiting:
            return
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(self.listed, unread), _LISTED_TIMEOUT_S
            )
        except (SQLAlchemyError, StoreError, TimeoutError) as exc:
            self._listed_failed_ns = now
            log.warning(
                "the pins %s: their products and measures are not known (the master's listings "
                "did not read: %s); they hold their feeds through the after-markets, read "
                "again in %.0f s",
                ", ".join(unread),
                type(exc).__name__,
                RETRY_S,
            )
            return
        self._listed_failed_ns = None
        for pin in unread:
            self._listed[pin] = found.get(pin, Listed("other", ()))

    async def _ask(self, client: KisClient, pin: str) -> bool:
        """Ask ``pin``'s standing; False if the ask failed (alerted, tried again later)."""
        try:
            status = await asyncio.wait_for(client.nxt_status(pin), _ASK_TIMEOUT_S)
        except (KisError, httpx.HTTPError, TimeoutError) as exc:
            self._failed_ns[pin] = self.clock.now_ns()
            message = (
                f"Nextrade's standing of the pin {pin} is not known ({type(exc).__name__}: "
                f"{exc}); it holds KRX's feeds alone, asked again in {RETRY_S:.0f} s"
            )
            if self.alerts.raise_(PIN_STANDING_UNKNOWN, pin, "warning", message):
                log.warning("%s", message)
            return False
        trades = status.eligible and not status.halted
        self.answered[pin] = trades
        self._answered_kind[pin] = status.kind
        log.info(
            "the pin %s (%s) is outside the universe: Nextrade %s it today (CTPF1002R: %s%s)",
            pin,
            status.kind,
            "trades" if trades else "does not trade",
            "eligible" if status.eligible else "not eligible",
            ", halted" if status.halted else "",
        )
        self._failed_ns.pop(pin, None)
        self.alerts.resolve(PIN_STANDING_UNKNOWN, pin, f"KIS answered {pin}'s standing")
        return True
