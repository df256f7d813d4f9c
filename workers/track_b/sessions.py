"""Track B's sessions: when they open, on which keys, and when their data counts.

Each configured account gets a client paced at a call a second (`open_accounts`). The
sessions open ``preconnect_after_s`` into warmup (`preconnect_at`) with nothing registered;
before the first registration each account's approval key is made to last the session
(`rekey`): a pre-connected session restarts on a renewed key. With Nextrade's pre-market
followed (`pre_market`) they open a minute before it. Gaps, lag and stale sessions count in
continuous trading only (`Trading`): KRX's as the phases say, Nextrade's and the combined
feed's as ``[venues]`` says. The day's slots are evaluated in stretches (`Stretch`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from bus.events import Event, Venue
from observer.calendar.clock import Clock
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import Timeline
from observer.calendar.venues import Venues
from observer.config.tree import Settings
from observer.config.workers import TrackBSettings
from observer.errors import KisError
from observer.kis.client import RateLimits
from observer.kis.journal import Journal
from observer.kis.session import KisAccount, open_account, token_alert
from observer.kis.token_cache import key_digest
from workers.track_b.collect import Collector
from workers.track_b.registrations import RegistrationPolicy
from workers.track_b.triggers import TriggerEngine

__all__ = [
    "PRE_MARKET_LEAD_S",
    "PolicySwitch",
    "Stretch",
    "Trading",
    "open_accounts",
    "pre_market",
    "preconnect_at",
    "rekey",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
# The sessions open this long before Nextrade's pre-market, when Track B follows it: the
# connections are up and its first registrations answered when the first trades print.
PRE_MARKET_LEAD_S = 60.0


def open_accounts(
    settings: Settings,
    clock: Clock,
    send: Callable[[Event], object],
    journal: Journal | None = None,
) -> list[KisAccount]:
    """Every configured account's client, paced at one REST call a second.

    Track B's calls are the token's and the first account's asks of pins' Nextrade standing
    (`workers.track_b.pin_standing`): a few a day, beside the process shares of ``[kis]``.
    Their streams' frames go to ``journal``.
    """
    aliases = [a.alias for a in settings.kis.accounts]
    limits = RateLimits({alias: 1.0 for alias in aliases})
    return [
        open_account(
            settings.kis, a, clock, limits, on_unavailable=token_alert(a, send), journal=journal
        )
        for a in aliases
    ]


def preconnect_at(
    starts: dict[Phase, datetime], after_s: float, pre: tuple[datetime, datetime] | None = None
) -> float:
    """When the sessions open (UTC seconds): ``after_s`` into warmup, by full operation at last.

    With Nextrade's pre-market ``pre`` followed, `PRE_MARKET_LEAD_S` before it at the latest.
    Shifted days shift it with their phases (``starts`` is the day's, as scheduled).
    """
    at = min(starts[Phase.WARMUP].timestamp() + after_s, starts[Phase.FULL_OPERATION].timestamp())
    return at if pre is None else min(at, pre[0].timestamp() - PRE_MARKET_LEAD_S)


def pre_market(
    config: TrackBSettings, venues: Venues, policy: RegistrationPolicy, day: date
) -> tuple[datetime, datetime] | None:
    """Nextrade's pre-market of ``day`` as Track B streams it (start, end), else None.

    To its end and the close grace, as every session's close (`Venues.followed`): its last
    minute's trades are read whole before the release, so the minute counts as watched
    (Nextrade trades nothing until 09:00:30). It does with a ``[track_b.feeds]
    nxt_pre_market`` row, a policy that gives Nextrade's names a feed while KRX does not
    trade (not paper accounts) and a ``pre_market`` session of Nextrade's that day (the CSAT
    day has none).
    """
    if not config.feeds.nxt_pre_market or not policy.streams_nextrade_alone:
        return None
    spans = venues.spans("NXT", day)
    start = next((s for s, _, span in spans if span.session == "pre_market"), None)
    return None if start is None else (start, venues.followed("NXT", day, start, "pre_market"))


@dataclass(frozen=True, slots=True)
class PolicySwitch:
    """At ``at``, what every holding registers becomes ``change(policy)`` (`Collector.switch`)."""

    at: datetime
    change: Callable[[RegistrationPolicy], RegistrationPolicy]
    why: str


@dataclass(frozen=True, slots=True)
class Stretch:
    """A part of the day Track B evaluates its slots in, every ``evaluate_s``, to ``until``.

    ``venue``'s snapshots fire ``engine``'s triggers (KRX's from 09:30 to 15:00, Nextrade's
    in its pre- and after-market, whose engine knows Nextrade's names alone). ``switches``,
    in time order, change the policy within it (KRX's closing auction).
    """

    venue: Venue
    engine: TriggerEngine
    until: datetime
    evaluate_s: float
    switches: tuple[PolicySwitch, ...] = ()


@dataclass(frozen=True, slots=True)
class Trading:
    """When each feed trades continuously (its gaps, lag and stale sessions count then).

    KRX's feed: the phases' continuous trading (09:00-15:30 by default, late days shifted)
    and KRX's after-market; Nextrade's and the combined feed: their venue's continuous
    sessions.
    """

    timeline: Timeline
    venues: Venues

    def krx(self, ns: int) -> bool:
        """Whether ``ns`` (UTC) falls in KRX's continuous trading: the phases', its evening's."""
        phase = self.timeline.phase_at(datetime.fromtimestamp(ns / _NS, KST))
        if phase in (Phase.TRACK_A_ONLY, Phase.FULL_OPERATION, Phase.TRACK_A_CLOSING):
            return True
        return self.venues.session_of_ns("KRX", ns) == "after_market"

    def feed(self, venue: Venue, ns: int) -> bool:
        """Whether ``venue``'s feed trades continuously at ``ns`` (gaps count then)."""
        return self.krx(ns) if venue == "KRX" else self.venues.continuous(venue, ns)


async def rekey(collector: Collector, clock: Clock, closing: float) -> None:
    """Approval keys that last the session; a pre-connected session restarts on a new one.

    The pre-market renewal (08:30) replaces the key a session opened at 08:03 presented:
    it starts again on the new one (planned: no backoff, no budget) before registering.
    Every account at once, and none waits for the token job: a reader takes the key at
    hand (the job's renewal, if it made one); one without a key is left to its session,
    which waits for it and is down alone (`Collector`), while the others stream.
    """
    await asyncio.gather(*(_rekey_one(collector, clock, a, closing) for a in collector.accounts))


async def _rekey_one(collector: Collector, clock: Clock, alias: str, closing: float) -> None:
    tokens = collector.accounts[alias].tokens
    try:
        if tokens.issuer:  # renewed if it would not last: one request, within KIS's minute
            key = await tokens.approval_key(lasting_s=closing - clock.now_ns() / _NS)
        elif (at_hand := tokens.approval_key_now()) is not None:
            key = at_hand
        else:
            log.error("account %s: no approval key at hand: its session waits for it", alias)
            return
    except KisError as exc:  # the account's alone: its session meets it (Collector)
        log.error("account %s: no approval key for the session: %s", alias, exc)
        return
    stream = collector.streams[alias]
    if stream.presented is not None and stream.presented != key_digest(key.reveal()):
        log.info("account %s: the session restarts on the renewed approval key", alias)
        await stream.restart()
