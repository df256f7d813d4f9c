"""Track B's real-time sessions: one `KisStream` per account, slot decisions applied, ticks out.

A slot decision becomes registrations on its account, the feeds the registration policy gives
its symbol (`workers.track_b.registrations`), kept across reconnects and re-sent best score
first; each decision (one per trade venue), session state and gap (per venue) is published
(`SlotDecision`/`SlotOverflow`, `StreamStateChanged`, `GapDetected`). What a session delivers
goes through its account's `AccountFeed`. The account alerts (down, stale, behind,
data refused) are open in the process's `AlertBook`; `Collector.taken_over` takes an earlier
run's over.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

from bus.events import (
    Event,
    GapDetected,
    GapReason,
    MarketStatus,
    SlotDecision,
    SlotOverflow,
    StreamStateChanged,
    TradeTick,
    TradingSession,
    Venue,
)
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import Clock
from observer.calendar.venues import VENUES, CodeJudge, SessionOf, no_session
from observer.config.workers import Kinds, TrackBSettings
from observer.errors import KisError
from observer.kis.account_health import counter, state_code
from observer.kis.record_checks import RECORD_KINDS, Checks
from observer.kis.session import KisAccount
from observer.kis.stream import (
    PERSISTENT_REFUSALS,
    BudgetSpent,
    Feed,
    KisStream,
    StreamSettings,
    StreamState,
    SubscriptionError,
)
from observer.market.grid import PriceKind
from observer.runtime import alongside, sleep_unless
from workers.track_b.account_feed import AccountFeed
from workers.track_b.gaps import Carried, GapDetector, SilenceRule, TickGap
from workers.track_b.lag import FEED_LAGGING, FeedLag
from workers.track_b.layouts import LAYOUT_UNKNOWN, UnknownLayouts
from workers.track_b.outages import ACCOUNT_DOWN, Outages, resolve
from workers.track_b.refused import DATA_UNDECODED, QUIET_S, RefusedData
from workers.track_b.registrations import (
    TRADE_FEEDS,
    TRADES,
    RegistrationPolicy,
    TradeFeeds,
    swaps,
)
from workers.track_b.rejections import BAD_FRAMES, DATA_REJECTED, Rejections
from workers.track_b.session_codes import SessionCodes
from workers.track_b.slots import Holding, SlotAction
from workers.track_b.stale import STREAM_STALE, StaleWatch
from workers.track_b.vi_feed import VI_FEED_REFUSED

__all__ = [
    "ACCOUNT_CODES",
    "REGISTRATIONS_MISMATCH",
    "Collector",
    "CollectorSettings",
    "Refusal",
    "decision_event",
]

log = logging.getLogger(__name__)

# The alert of a session whose registrations do not match the slots (`Collector.reconcile`).
REGISTRATIONS_MISMATCH = "track_b_registrations_mismatch"
_NS = 1_000_000_000
# Wall seconds a stopping Track B waits for its releases' confirmations (a round trip to
# KIS; well inside the program's stop_grace_s), looking this often.
SETTLE_S = 3.0
# Clock seconds between an account's sessions while it has no approval key (the token job's
# is awaited for minutes before each attempt fails anyway).
KEYLESS_RETRY_S = 60.0
_SETTLE_POLL_S = 0.02
_PLACING = ("allocate", "replace")  # the decisions that register a symbol

AccountState = StreamState | Literal["idle", "down"]  # see observer.kis.account_health


def _dec(value: float, places: str = "0.0001") -> Decimal:
    return Decimal(repr(value)).quantize(Decimal(places))


def decision_event(
    d: SlotAction, trading_session: TradingSession = "", venue: Venue = "KRX"
) -> SlotDecision | SlotOverflow:
    """The bus event of a slot decision on ``venue``'s feed, taken in its ``trading_session``."""
    c = d.candidate
    if d.action == "overflow":
        return SlotOverflow(
            symbol=c.symbol,
            trigger=c.trigger,
            score=_dec(c.score),
            reason=d.reason,
            lowest_held_score=_dec(d.lowest_held),
            strength=_dec(c.strength),
            measure=_dec(c.measure),
            market_cap=c.market_cap,
        )
    return SlotDecision(
        account=d.account,
        action=d.action,
        symbol=c.symbol,
        slot=d.slot,
        trigger=c.trigger,
        score=_dec(c.score),
        reason=d.reason,
        replaced_symbol=d.replaced.symbol if d.replaced else "",
        expires_ns=c.expires_ns,
        venue=venue,
        trading_session=trading_session,
    )


class Refusal(NamedTuple):
    """KIS refused one of a symbol's registrations on an account (the stream dropped it)."""

    account: str
    symbol: str
    feed_label: str  # what the registration was for, in words: "KRX trades"
    code: str  # KIS's msg_cd, e.g. OPSP8992
    message: str  # KIS's msg1
    at_ns: int


# The account alerts, each about an account (`DATA_REJECTED`: ``account/kind/symbol``).
ACCOUNT_CODES = (
    ACCOUNT_DOWN,
    REGISTRATIONS_MISMATCH,
    STREAM_STALE,
    FEED_LAGGING,
    DATA_UNDECODED,
    DATA_REJECTED,
    BAD_FRAMES,
)
_FIXED_SILENCE = SilenceRule()  # ticks expected every 500 ms, 200 ms late at most
_CHECKS, _STREAM = Checks(), StreamSettings()


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """What configures the collector: ``[track_b]``'s (`of`), or the defaults (tests)."""

    trades: TradeFeeds = "krx"  # what a symbol's trades are registered as (its venues)
    kinds: Kinds = TRADES  # the feeds a held symbol holds on each (`[track_b.feeds] regular`)
    silence: SilenceRule = _FIXED_SILENCE  # when a pause between a symbol's ticks is a gap
    # ... and in which of its venue's sessions (given the venues' hours: `session_of`)
    silence_sessions: frozenset[TradingSession] = frozenset({"regular"})
    unhealthy_after_s: float = 30.0  # an account down this long: its slots fail over
    velocity_window_s: float = 10.0  # executions per second over this window (`velocity`)
    stale_after_s: float = 0.0  # a session streaming nothing this long restarts; 0: off
    # ... outside the `silence_sessions` (the thin ones) after this long; 0: not judged there
    stale_after_thin_s: float = 0.0
    lag_alert_s: float = 0.0  # a feed this far behind the exchange is alerted; 0: off
    refused_quiet_s: float = QUIET_S  # refused or rejected data's episode ends this quiet
    volume_chain: bool = True  # each trade's cumulative volume checked against the last's
    checks: Checks = _CHECKS  # what is published, what is rejected
    stream: StreamSettings = _STREAM  # each account's session

    @classmethod
    def of(cls, config: TrackBSettings, stream: StreamSettings) -> CollectorSettings:
        """The collector ``[track_b]`` and ``[kis.stream]`` configure."""
        return cls(
            trades=TRADE_FEEDS[config.feeds.nextrade],
            kinds=config.feeds.regular,
            silence=SilenceRule(
                config.silence_expected_s,
                config.silence_tolerance_s,
                config.silence_cadence_factor,
                config.silence_window_s,
                resolution_s=1.0,  # trades are stamped HHMMSS
            ),
            silence_sessions=frozenset(config.silence_sessions),
            unhealthy_after_s=config.unhealthy_after_s,
            velocity_window_s=config.velocity_window_s,
            stale_after_s=config.stale_after_s,
            stale_after_thin_s=config.stale_after_thin_s,
            lag_alert_s=config.lag_alert_s,
            volume_chain=config.volume_chain,
            checks=Checks.of(config),
            stream=stream,
        )


_SETTINGS = CollectorSettings()


class Collector:
    """Every account's session, the registrations the slots call for, and what they deliver.

    ``in_session`` says whether a time (UTC ns) is in KRX's continuous trading (gaps and lag
    count only then); ``continuous`` whether a venue trades continuously at a time (a feed's
    gaps count in its venue's; a session is stale only while one of its venues does, so not
    through KRX's closing auction; once KRX's feeds are released, lag and stale sessions in
    Nextrade's; ``in_session`` for every venue if not given);
    ``on_refused`` hears each registration KIS refused; ``limits`` maps a symbol to the
    day's (lower, upper) price limits (the slot guard's); ``session_of`` gives each record
    its session on its venue and ``judge_code`` judges its MARKET_CLS_CODE against the
    hours (`observer.calendar.venues`; None: not judged);
    ``nxt``: the symbols Nextrade trades today and ``paper``: paper accounts, for what each
    symbol holds (`RegistrationPolicy`).
    """

    def __init__(
        self,
        accounts: Sequence[KisAccount],
        clock: Clock,
        publish: Callable[[Event], object],
        settings: CollectorSettings = _SETTINGS,
        *,
        in_session: Callable[[int], bool] = lambda ns: True,
        on_refused: Callable[[Refusal], None] = lambda refusal: None,
        limits: Mapping[str, tuple[int, int]] | None = None,
        alerts: AlertBook | None = None,
        session_of: SessionOf | None = None,
        judge_code: CodeJudge | None = None,
        nxt: Collection[str] = (),
        paper: bool = False,
        continuous: Callable[[Venue, int], bool] | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.policy = RegistrationPolicy(settings.trades, settings.kinds, frozenset(nxt), paper)
        self.capacity = settings.stream.max_registrations  # a session's (a swap stays within)

        def trading(venue: Venue) -> Callable[[int], bool]:
            if continuous is None:
                return in_session
            return lambda ns: continuous(venue, ns)

        def silent(venue: Venue) -> Callable[[int], bool] | None:
            """Where a silence of ``venue``'s feed is a gap (None: wherever it trades).

            Its continuous trading, in the sessions `CollectorSettings.silence_sessions` names.
            """
            if session_of is None:
                return None
            within, sessions = trading(venue), settings.silence_sessions
            return lambda ns: within(ns) and session_of(venue, ns) in sessions

        after_krx = trading("NXT")

        def streamed(ns: int) -> bool:
            """Whether the feeds streamed at ``ns`` trade continuously (KRX's, or after)."""
            return in_session(ns) if self.policy.krx_trading else after_krx(ns)

        either = trading("combined")

        def printing(ns: int) -> bool:
            """Whether a trade of the feeds streamed at ``ns`` may print (a quiet session: stale).

            Not in KRX's closing auction with Nextrade in its break (nothing prints until the
            15:30 match), nor in Nextrade's after-market auction.
            """
            return either(ns) if self.policy.krx_trading else after_krx(ns)

        thick = [f for f in (silent("KRX"), silent("NXT")) if f is not None]

        def busy(ns: int) -> bool:
            """Whether the feeds streamed at ``ns`` print often (a stale session's limit).

            A venue in a session of `CollectorSettings.silence_sessions` (without the venues'
            hours: wherever they print); elsewhere a few names may print nothing for minutes.
            """
            return printing(ns) and (not thick or any(f(ns) for f in thick))

        self.session_of: SessionOf = session_of or no_session
        self.alerts = alerts or AlertBook(publish)  # the process's: its account alerts
        self.lag = FeedLag(clock, self.alerts, streamed, settings.lag_alert_s)
        self.refused_data = RefusedData(clock, self.alerts, settings.refused_quiet_s)
        self.rejections = Rejections(clock, publish, self.alerts, settings.refused_quiet_s)
        self.layouts = UnknownLayouts(clock, self.alerts, settings.refused_quiet_s)
        self.limits: Mapping[str, tuple[int, int]] = {} if limits is None else limits
        self.stale_watch = StaleWatch(
            clock,
            self.alerts,
            printing,
            settings.stale_after_s,
            busy=busy,
            thin_after_s=settings.stale_after_thin_s,
        )
        self.session_codes = SessionCodes(self.alerts, judge_code)
        self.publish = publish
        self.window_ns = int(settings.velocity_window_s * _NS)
        self.streams: dict[str, KisStream] = {}
        self.accounts = {account.alias: account for account in accounts}
        self.detectors: dict[str, dict[Venue, GapDetector]] = {}  # alias -> venue -> its
        self.feeds: dict[str, AccountFeed] = {}  # alias -> its session's listener
        aliases = [account.alias for account in accounts]
        self.outages = Outages(clock, self.alerts, aliases, settings.unhealthy_after_s)
        self.state: dict[str, tuple[AccountState, int]] = {}  # alias -> (state, since)
        self.last_data_ns: dict[str, int] = {}  # alias -> receive time of its last data frame
        self.recent: dict[str, deque[int]] = {}  # symbol -> receive times within the window
        self.latest: dict[str, TradeTick] = {}  # symbol -> its latest tick, while streamed
        # symbol -> its latest market-operation record of KRX, while streamed
        self.statuses: dict[str, MarketStatus] = {}
        # alias -> the registrations held beside the slots (an auction's: `hold`)
        self.held_aside: dict[str, set[Feed]] = {}
        self.on_refused = on_refused
        self.refusals = 0
        self.ticks = 0
        # (venue, kind) -> the stored trades priced off the grid: "mid_point" or "off_grid"
        self.off_grid: Counter[tuple[Venue, PriceKind]] = Counter()
        self.gaps = 0
        for account in accounts:
            alias = account.alias
            self.detectors[alias] = {
                venue: GapDetector(
                    alias,
                    settings.silence,
                    trading(venue),
                    venue,
                    silent(venue),
                    chain=settings.volume_chain,
                )
                for venue in VENUES
            }
            self.feeds[alias] = AccountFeed(self, alias)
            self.streams[alias] = account.stream(
                self.feeds[alias], settings.stream, self.session_of
            )
            self.state[alias] = ("idle", clock.now_ns())  # healthy until it fails to come up
        self.scores: dict[str, float] = {}  # symbol -> its slot's score
        # (symbol, venue) -> its connection gap and chain, released on an account that is
        # down and placed on another in the same decisions (`apply`)
        self.carried: dict[tuple[str, Venue], Carried] = {}

    # ------------------------------------------------------------------ the slots

    def symbols(self, alias: str) -> set[str]:
        """The symbols account ``alias`` streams (any venue's trades)."""
        return {r.symbol for r in self.streams[alias].wanted if r.kind == "trades"}

    def streamed(self, alias: str, venue: Venue) -> set[str]:
        """The symbols account ``alias`` streams the trades of on ``venue``'s feed."""
        wanted = self.streams[alias].wanted
        return {r.symbol for r in wanted if r.kind == "trades" and r.venue == venue}

    def detector(self, alias: str, venue: Venue) -> GapDetector:
        """Account ``alias``'s gap detector of ``venue``'s trade feed."""
        return self.detectors[alias][venue]

    def _venues_down(self, alias: str, reason: GapReason) -> None:
        """Every feed of the account may miss data from now (`GapDetector.on_disconnect`)."""
        now = self.clock.now_ns()
        for venue, detector in self.detectors[alias].items():
            detector.on_disconnect(now, reason, self.streamed(alias, venue))

    def taken_over(self, notices: Iterable[Notice], *, late: bool = False) -> None:
        """The account alerts an earlier Track B left open, now open in the book (a restart).

        Their next confirmation or data resolves them as if raised here; a down account
        raises no second alert, nor a stuck session restarted here. An account no longer
        configured is resolved at once: nothing would judge it again. ``late``: after the
        sessions started (`workers.track_b.earlier_run`): an account up now is resolved at once.
        """
        notices = list(notices)
        left: dict[str, set[str]] = {code: set() for code in ACCOUNT_CODES}
        for notice in notices:
            if notice.code in left:
                left[notice.code].add(notice.subject)
        ours = self.streams.keys()
        if late:
            self.outages.taken_over(left[ACCOUNT_DOWN])
        self.lag.taken_over(left[FEED_LAGGING] & ours)
        self.refused_data.taken_over(left[DATA_UNDECODED] & ours)
        self.rejections.taken_over([s for s in left[DATA_REJECTED] if s.partition("/")[0] in ours])
        # A layout's alert is about a TR, whichever account saw it.
        self.layouts.taken_over(n.subject for n in notices if n.code == LAYOUT_UNKNOWN)
        for code in ACCOUNT_CODES:
            for subject in sorted(s for s in left[code] if s.partition("/")[0] not in ours):
                resolve(self.alerts, code, subject, "no longer configured: nothing streams it")

    @property
    def chain_resets(self) -> int:
        """Trades whose cumulative volume ran backwards, every account's feeds summed."""
        return sum(d.chain_resets for feeds in self.detectors.values() for d in feeds.values())

    def healthy(self) -> set[str]:
        """Accounts that are up, or down for less than ``unhealthy_after_s`` (`Outages`)."""
        return self.outages.healthy()

    async def apply(
        self, decisions: Sequence[SlotAction], holdings: Iterable[Holding] | None = None
    ) -> None:
        """Register and release what the decisions say; publish each decision.

        Never waits for an account's session or approval key (`KisStream.subscribe`): one
        account without a key holds up no other. With ``holdings`` (the slot book's, after
        the decisions) the registrations are checked against them afterwards (`reconcile`).
        Each evaluation publishes the connection gaps the chain will not measure (`overdue`).
        """
        for alias in self.detectors:
            self.overdue(alias)
        # A symbol released on one account and placed on another (a failover) takes its
        # connection gap and chain there (`GapDetector.hand_over`)
        placed = {d.candidate.symbol: d.account for d in decisions if d.action in _PLACING}
        for d in decisions:
            symbol = d.candidate.symbol
            if d.action in ("release", "expire"):
                await self._drop(
                    d.account, symbol, moving=placed.get(symbol, d.account) != d.account
                )
            elif d.action == "replace":
                assert d.replaced is not None
                await self._drop(d.account, d.replaced.symbol)
                await self._add(d.account, symbol)
            elif d.action == "allocate":
                await self._add(d.account, symbol)
            if d.action in ("allocate", "replace"):
                self.scores[symbol] = d.candidate.score
            self._publish_decision(d)
        if holdings is not None:
            await self.reconcile(holdings)

    def _publish_decision(self, d: SlotAction) -> None:
        """One event per venue whose trades the decision registers or releases.

        An overflow is one event: it registered nothing. A replacement is one on each of the
        new symbol's venues, and a release of the replaced symbol on each venue of its that
        the new one does not stream (its holding there ends too).
        """
        now = self.clock.now_ns()
        if d.action == "overflow":
            self.publish(decision_event(d, self.session_of("KRX", now)))
            return
        venues = self.policy.venues(d.candidate.symbol)
        for venue in venues:
            self.publish(decision_event(d, self.session_of(venue, now), venue))
        if d.replaced is None:
            return
        left = SlotAction(
            "release", d.replaced, f"replaced by {d.candidate.symbol}", d.account, d.slot
        )
        for venue in self.policy.venues(d.replaced.symbol):
            if venue not in venues:
                self.publish(decision_event(left, self.session_of(venue, now), venue))

    async def switch(
        self, policy: RegistrationPolicy, holdings: Iterable[Holding], why: str
    ) -> None:
        """Each holding's feeds become ``policy``'s (a session boundary): no trade lost between.

        Per account, the new registrations go before the old ones are released while its
        session has room (`swaps`); each venue a holding leaves is released with ``why``
        (a `SlotDecision` on that venue, its gap detector's delivery-lag gap), each it
        joins is allocated.
        """
        old, self.policy = self.policy, policy
        now = self.clock.now_ns()
        by_account: dict[str, list[Holding]] = {}
        for h in holdings:
            by_account.setdefault(h.account, []).append(h)
        for alias, held in by_account.items():
            symbols = [h.candidate.symbol for h in held]
            stream = self.streams[alias]
            current = old.registrations(symbols)
            # within the session less what it holds beside the slots (the VI feed's: the
            # slot book keeps the holdings within that, `SlotBook.reserved`)
            target = policy.registrations(symbols)
            room = self.capacity - len(self.held_aside.get(alias, ()))
            plan = swaps(current, target, max(len(current), len(target), room))
            for h in held:
                symbol = h.candidate.symbol
                for venue in policy.venues(symbol):
                    if venue not in old.venues(symbol):
                        self.detectors[alias][venue].on_placed(symbol, now)
                        joined = SlotAction("allocate", h.candidate, why, alias, h.slot)
                        self.publish(decision_event(joined, self.session_of(venue, now), venue))
            for step, registration in plan:
                if step == "add":
                    await self._subscribe(alias, registration)
                else:
                    await stream.unsubscribe(registration)
            for h in held:
                symbol = h.candidate.symbol
                for venue in old.venues(symbol):
                    if venue in policy.venues(symbol):
                        continue
                    left = SlotAction("release", h.candidate, why, alias, h.slot)
                    self.publish(decision_event(left, self.session_of(venue, now), venue))
                    self._forget(alias, symbol, venue, now)

    async def reconcile(self, holdings: Iterable[Holding]) -> bool:
        """Check that each account's session wants exactly what its slots hold; repair it.

        Each held symbol's registrations (its feeds) on its account, nothing else, but what
        KIS refused (the slot guard releases those). A mismatch is a fault of Track B's
        own bookkeeping: logged, alerted (`REGISTRATIONS_MISMATCH`, an error, once while it
        lasts) and repaired, what is held wanted and the rest released, rather than
        streaming a symbol no slot holds, or a held one without its book, until the process
        ends; the next check that finds them matching resolves it. False on a mismatch.
        """
        expected = {alias: set(self.held_aside.get(alias, ())) for alias in self.streams}
        for h in holdings:
            expected.setdefault(h.account, set()).update(self.policy.feeds(h.candidate.symbol))
        matched = True
        for alias, stream in self.streams.items():
            extra = stream.wanted - expected[alias]
            missing = expected[alias] - stream.wanted - stream.refused.keys()
            if not (extra or missing):
                resolve(self.alerts, REGISTRATIONS_MISMATCH, alias, "registrations match slots")
                continue
            matched = False
            names = ", ".join(map(str, sorted(extra | missing, key=lambda r: r.order)))
            message = (
                f"account {alias}: its session's registrations do not match its slots "
                f"({len(missing)} missing, {len(extra)} not held: {names}); repaired"
            )
            log.error("%s", message[:500])
            self.alerts.raise_(
                REGISTRATIONS_MISMATCH, alias, "error", message[:500], {"account": alias}
            )
            for r in sorted(extra, key=self._priority):
                await stream.unsubscribe(r)
            for r in sorted(missing, key=self._priority):
                if r.kind == "trades":
                    self.detector(alias, r.venue).on_placed(r.symbol, self.clock.now_ns())
                await self._subscribe(alias, r)
        return matched

    async def hold(self, registrations: Mapping[str, Set[Feed]]) -> None:
        """Hold ``registrations`` per account beside the slots, instead of those held so.

        No slot: no decision or trigger counts them (an auction's expected matches, the
        first half hour's trades: `workers.track_b.auction`); a held trade feed's gaps are
        detected like a slot's. `reconcile` wants them too. What KIS refuses of them is
        dropped here, never handed to the slot guard. ``hold({})`` releases them all; a
        released trade feed is forgotten as a slot's is (`_forget`: a gap open on it closes,
        a later placement starts afresh) and its pace too, so that no trigger counts it.
        """
        for alias in self.streams.keys() & (self.held_aside.keys() | registrations.keys()):
            stream, now = self.streams[alias], set(self.held_aside.get(alias, ()))
            wanted = set(registrations.get(alias, ()))
            for r in sorted(now - wanted, key=lambda r: r.order):
                await stream.unsubscribe(r)
                if r.kind == "trades" and r.symbol not in self.scores:
                    self._forget(alias, r.symbol, r.venue, self.clock.now_ns())
                    self.recent.pop(r.symbol, None)
                    self.latest.pop(r.symbol, None)
            self.held_aside[alias] = wanted
            for r in sorted(wanted - now, key=lambda r: r.order):
                await self._subscribe(alias, r)
        self.held_aside = {alias: held for alias, held in self.held_aside.items() if held}

    async def resume(
        self, holding: Holding, start_ns: int, chains: Sequence[tuple[str, int, int]] = ()
    ) -> None:
        """Stream again a slot that an earlier process held.

        A ``process_restart`` gap runs from ``start_ns`` until the symbol is registered on
        the new session (or leaves its slot first). ``chains``: each venue's last stored
        trade of the symbol (venue, cumulative volume, stamp), where its volume chain goes
        on: the gap is then measured at the symbol's first trade (`GapDetector.resume`).
        """
        symbol = holding.candidate.symbol
        last = {venue: (cum, at) for venue, cum, at in chains}
        for venue in self.policy.venues(symbol):
            self.detectors[holding.account][venue].resume(symbol, start_ns, last.get(venue))
        self.scores[symbol] = holding.candidate.score
        await self._add(holding.account, symbol)

    def abandon(self, release: SlotAction, start_ns: int) -> None:
        """Release a slot that an earlier process held and this one cannot take back.

        Its data is missing from ``start_ns`` until now: a ``process_restart`` gap.
        """
        now = max(start_ns, self.clock.now_ns())
        symbol = release.candidate.symbol
        for venue in self.policy.venues(symbol):
            self.publish_gap(
                TickGap(release.account, symbol, start_ns, now, "process_restart", venue)
            )
        self._publish_decision(release)

    def missed(self, account: str, symbol: str, start_ns: int, end_ns: int) -> None:
        """``symbol``'s data is missing from ``start_ns`` to ``end_ns``: a ``process_restart`` gap.

        An earlier process held it, and no process streamed it between (none if empty).
        """
        if end_ns > start_ns:
            for venue in self.policy.venues(symbol):
                self.publish_gap(
                    TickGap(account, symbol, start_ns, end_ns, "process_restart", venue)
                )

    def _priority(self, registration: Feed) -> tuple[float, tuple[str, int, str]]:
        """Re-registration order after a reconnect: the best-scoring slots first."""
        return -self.scores.get(registration.symbol, 0.0), registration.order

    async def _add(self, alias: str, symbol: str) -> None:
        # Each registration is wanted at once and on its own: none waits for a key, and
        # none is skipped because another could not be sent (the session sends them).
        now = self.clock.now_ns()
        for venue in self.policy.venues(symbol):
            if (carried := self.carried.pop((symbol, venue), None)) is not None:
                self.detectors[alias][venue].resume(
                    symbol, carried.start_ns, carried.chain, carried.reason
                )
            self.detectors[alias][venue].on_placed(symbol, now)
        for feed in self.policy.feeds(symbol):
            await self._subscribe(alias, feed)

    async def _subscribe(self, alias: str, feed: Feed) -> None:
        try:
            await self.streams[alias].subscribe(feed)
        except SubscriptionError as exc:  # a registration not released: `reconcile` repairs
            log.error("account %s: %s not registered: %s", alias, feed.symbol, exc)

    async def _drop(self, alias: str, symbol: str, *, moving: bool = False) -> None:
        """Release ``symbol`` on ``alias``; ``moving``: to be placed on another account next."""
        for feed in self.policy.feeds(symbol):  # each released on its own, at once (`_add`)
            await self.streams[alias].unsubscribe(feed)
        now = self.clock.now_ns()
        for venue in self.policy.venues(symbol):
            detector = self.detectors[alias][venue]
            if moving and (carried := detector.hand_over(symbol, now)) is not None:
                self.carried[symbol, venue] = carried
            else:
                self._forget(alias, symbol, venue, now)
        self.recent.pop(symbol, None)
        self.latest.pop(symbol, None)
        self.statuses.pop(symbol, None)
        self.scores.pop(symbol, None)

    def _forget(self, alias: str, symbol: str, venue: Venue, now: int) -> None:
        """``symbol`` left ``venue``'s feed on ``alias``: its gap, if any (`GapDetector.forget`)."""
        detector = self.detectors[alias][venue]
        # Behind by more than a pause between two trades of a liquid symbol (and the stamps'
        # second), whatever its own pace: a quiet one's limit would hide minutes.
        behind = self.lag.behind(alias, now, int(detector.expected_ns + detector.tolerance_ns))
        if gap := detector.forget(symbol, now, behind_ns=behind):
            self.publish_gap(gap)

    def restarting(self) -> bool:
        """Whether a slot taken back after a restart waits for its registration.

        Its ``process_restart`` gap goes out then (or when it leaves its slot first).
        """
        return any(
            reason == "process_restart"
            for venues in self.detectors.values()
            for detector in venues.values()
            for _, reason in detector.open.values()
        )

    def velocity(self, symbol: str) -> float:
        """Executions per second over the window up to now (a symbol gone quiet: 0)."""
        times = self.recent.get(symbol)
        since = self.clock.now_ns() - self.window_ns
        while times and times[0] < since:
            times.popleft()
        return len(times) * _NS / self.window_ns if times else 0.0

    # ------------------------------------------------------------------ the sessions

    async def refresh(self, alias: str, reason: GapReason = "token_refresh") -> None:
        """Renew the account's approval key and restart its session on it.

        A planned gap: every streamed symbol's gap carries ``reason`` and closes when the
        symbol is registered on the new connection; the slots stay as they are.
        """
        await self.accounts[alias].tokens.refresh_approval(reason)
        self._venues_down(alias, reason)
        await self.streams[alias].restart()

    async def settle(self, seconds: float = SETTLE_S) -> bool:
        """Wait until KIS has confirmed every release sent (``seconds`` of wall time at most).

        A confirmation follows its symbol's last frame: the sessions read on meanwhile, so a
        Track B that releases its slots and stops stores every trade it was sent (closed at
        once, what was still in the socket was lost without a gap). False, with a warning,
        if some were not confirmed in time: each trade feed among them is a ``delivery_lag``
        gap (`unconfirmed_gaps`), so what was still on its way is recovered, not lost unsaid.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not all(stream.settled for stream in self.streams.values()):
            if loop.time() >= deadline:
                gaps = self.unconfirmed_gaps()
                for gap in gaps:
                    self.publish_gap(gap)
                log.warning(
                    "releases not confirmed within %.1f s: the trades of %d feeds still on "
                    "their way are delivery-lag gaps, recovered from KIS",
                    seconds,
                    len(gaps),
                )
                return False
            await asyncio.sleep(_SETTLE_POLL_S)
        return True

    def unconfirmed_gaps(self) -> list[TickGap]:
        """A gap per trade feed whose release KIS has not confirmed (`settle`).

        From the newest trade stamp its venue's feed delivered on that account (what was still
        on its way carries that stamp or a later one) to now; none outside its venue's
        continuous trading.
        """
        now = self.clock.now_ns()
        gaps = []
        for alias, stream in self.streams.items():
            for feed in sorted(stream.unconfirmed):
                detector = self.detectors[alias].get(feed.venue)
                if feed.kind != "trades" or detector is None or not detector.in_session(now):
                    continue
                start = min(detector.last_frame_ns or now, now)
                gaps.append(TickGap(alias, feed.symbol, start, now, "delivery_lag", feed.venue))
        return gaps

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every session up until ``stop``, and restart one that is stuck."""
        keeping = [self._keep(alias, stop) for alias in self.streams]
        if self.stale_watch.stale_ns:
            keeping.append(self.stale_watch.watch(self.streams, stop))
        try:
            async with alongside(self.outages.tasks.failures()):
                await asyncio.gather(*keeping)
        finally:
            self.outages.cancel()

    async def _keep(self, alias: str, stop: asyncio.Event) -> None:
        """One account's session until ``stop``, through its outages.

        A spent reconnect budget, or no approval key (KIS refused the app key, or the token
        job issued none in time), puts the account down (`_down`) until the oldest reconnect
        of the hour ages out (`KEYLESS_RETRY_S` after a keyless attempt); the others go on.
        """
        self.outages.starting(alias)
        while not stop.is_set():
            try:
                await self.streams[alias].run(stop)
                continue
            except BudgetSpent as spent:
                reason, reopens_ns = str(spent), spent.reopens_ns
            except KisError as exc:  # its credentials or keys: the account's failure alone
                reason = f"no approval key: {exc}"
                reopens_ns = self.clock.now_ns() + int(KEYLESS_RETRY_S * _NS)
            self._down(alias, reason, reopens_ns)
            await sleep_unless(self.clock, (reopens_ns - self.clock.now_ns()) / _NS, stop)
            if not stop.is_set():
                log.info("account %s: a new session", alias)

    def _down(self, alias: str, why: str, reopens_ns: int) -> None:
        """Unhealthy until a session is up again; alerted once per outage (`Outages`)."""
        retry_s = max(0.0, (reopens_ns - self.clock.now_ns()) / _NS)
        reason = f"{why}; next session in {retry_s:.0f}s"
        log.error("account %s: %s", alias, reason)
        self._on_state(alias, "down", reason)
        self.outages.down(alias, reason)

    def account_counters(self) -> dict[str, float]:
        """Every account's stream figures, as `observer.kis.account_health` names them."""
        now = self.clock.now_ns()
        healthy = self.healthy()
        counters: dict[str, float] = {}
        for alias, stream in self.streams.items():
            state, since = self.state[alias]
            figures = {
                "stream_state": state_code(state),
                "state_age_s": round((now - since) / _NS, 1),
                "registered": len(stream.registered),
                "wanted": len(stream.wanted),
                "healthy": float(alias in healthy),
                "identified": float(stream.identified),
                "dropped_frames": stream.dropped,
                "dropped_records": self.refused_data.records[alias],
                "rejected_records": sum(self.rejections.counts[alias, k] for k in RECORD_KINDS),
                "reconnects_1h": stream.reconnects_in_hour(),
                "reconnect_budget": stream.budget,
                "lag_alert_s": self.lag.limit_ns / _NS,
            }
            if alias in self.last_data_ns:
                figures["last_tick_age_s"] = round((now - self.last_data_ns[alias]) / _NS, 1)
            if alias in self.lag.lag_ns:
                figures["delivery_lag_s"] = round(self.lag.lag_ns[alias] / _NS, 1)
            counters.update((counter(alias, k), float(v)) for k, v in figures.items())
        for (alias, kind), count in self.rejections.counts.items():  # "rejected.<kind>"
            counters[counter(alias, f"rejected.{kind}")] = float(count)
        return counters

    def _on_state(self, alias: str, state: StreamState | Literal["down"], reason: str) -> None:
        now = self.clock.now_ns()
        if self.state[alias][0] != state:
            self.state[alias] = (state, now)
        if state in ("disconnected", "refused", "stopped", "down"):
            self.outages.failed(alias)
            if state not in ("stopped", "down"):  # "down" follows a disconnect
                self._venues_down(alias, "disconnect")
        if state == "refused" and (code := reason.split(" ", 1)[0]) in PERSISTENT_REFUSALS:
            self.outages.refused(alias, code)
        self.publish(
            StreamStateChanged(
                account=alias,
                state=state,
                reason=reason[:200],
                registrations=len(self.streams[alias].registered),
            )
        )

    def _on_confirmed(self, alias: str) -> None:
        """KIS confirmed the account's session: up again, the end of an outage."""
        self.stale_watch.heard(alias, self.clock.now_ns())
        for detector in self.detectors[alias].values():
            detector.on_confirmed()
        self.outages.confirmed(alias)

    def _on_registered(self, alias: str, registration: Feed) -> None:
        if registration.kind == "vi":  # an earlier refusal of it is over
            self.alerts.resolve(VI_FEED_REFUSED, alias, "KIS took the VI feed")
        if registration.kind != "trades":
            return
        detector = self.detector(alias, registration.venue)
        if gap := detector.on_registered(registration.symbol, self.clock.now_ns()):
            self.publish_gap(gap)

    def _on_refused(self, alias: str, registration: Feed, code: str, message: str) -> None:
        self.refusals += 1  # the stream has logged it
        aside = self.held_aside.get(alias, set())
        if registration in aside:  # no slot's: nothing for the guard to release or bar
            aside.discard(registration)
            if registration.kind == "vi":
                self.alerts.raise_(
                    VI_FEED_REFUSED,
                    alias,
                    "warning",
                    f"account {alias}: KIS refused the {registration.venue} VI feed under "
                    f"{registration.symbol} ({code} {message}): the market's VIs come from the "
                    "watched names' market status alone today; see [track_b] vi_feed and "
                    "`observer kis check`",
                )
            return
        self.on_refused(
            Refusal(
                alias, registration.symbol, registration.label, code, message, self.clock.now_ns()
            )
        )

    def overdue(self, alias: str) -> None:
        """Publish ``alias``'s connection gaps no trade will measure (`GapDetector.overdue`).

        Called on each of its frames and each evaluation: a symbol that never trades again
        has its gap out within a minute of its registration.
        """
        now = self.clock.now_ns()
        for detector in self.detectors[alias].values():
            if detector.awaiting:
                for gap in detector.overdue(now):
                    self.publish_gap(gap)

    def publish_gap(self, gap: TickGap) -> None:
        """Count and publish a gap (`GapDetected`)."""
        self.gaps += 1
        self.publish(
            GapDetected(
                gap_id=gap.gap_id,
                symbol=gap.symbol,
                start_ns=gap.start_ns,
                end_ns=gap.end_ns,
                reason=gap.reason,
                account=gap.account,
                venue=gap.venue,
                trading_session=self.session_of(gap.venue, gap.start_ns),
                missing_volume=gap.missing_volume,
                cum_before=gap.cum_before,
                cum_after=gap.cum_after,
            )
        )
