"""The ``gap_recovery`` daemon: every gap Track B detects ends recovered, unrecoverable or marked.

Gaps come from the feed (``gap_detected``) and from database sweeps (at start-up, then every
``sweep_s``), each planned by `workers.gap_recovery.plan` and recovered under the account's
``gap_recovery`` REST share; the day's reconciliation (`workers.gap_recovery.verify`) runs
here after Track B's stream ends. Killed at any point, the next instance recovers the gap
again and publishes only the bars still missing: none is lost and none doubled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

import msgspec
from sqlalchemy import Engine

from bus.events import GapDetected, GapState, GapStateChanged, MinuteBars, Venue
from bus.feed import FeedSubscriber
from bus.producer import Producer
from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.cluster.hosts import host_of
from observer.cluster.transport import feed_subscriber
from observer.config.tree import Settings
from observer.db.outages import DATABASE_ERRORS, ReadRetries
from observer.db.readers import reader_engine
from observer.errors import (
    KisAuthError,
    KisError,
    KisPaperRefused,
    KisProtocolError,
    KisTokenThrottled,
)
from observer.kis.bars import BARS_PER_CALL, BarLedger, fetch_gap
from observer.kis.client import RateLimits
from observer.kis.rate_alert import RateWatch
from observer.kis.session import (
    KisAccount,
    open_account,
    rate_limits,
    rest_error_counters,
    token_alert,
)
from observer.kis.time_trades import (
    TradeLedger,
    TradesAsk,
    chain_closes,
    fetch_gap_trades,
    trade_tick,
    within,
)
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.process.retry import backoff_s
from observer.runtime import AsyncWorker, alongside, beat_forever, journal_for
from workers.gap_recovery import SOURCE
from workers.gap_recovery.outcomes import (
    NOT_ON_PAPER_ALERT,
    UNRECOVERABLE_ALERT,
    RecoveryCounters,
    Settled,
    UnrecoverableAlerts,
)
from workers.gap_recovery.plan import PRIORITY, Pending, Plan, minutes_of, plan_for, ready_ns
from workers.gap_recovery.reads import GapReads, Sweep, day_of
from workers.gap_recovery.trades import ChainMisses, capped, why_not
from workers.gap_recovery.verify import Verifier, lanes_for

__all__ = ["SOURCE", "UNRECOVERABLE_ALERT", "GapRecovery", "Pending", "RecoveryCounters"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_POLL_S = 0.02  # wall seconds between looks at the feed and the queue
# KIS's EGW00201 answers judged every minute (wall, as KIS counts), of 20 calls at least
_RATES_S, _RATES_CALLS = 60.0, 20
_FORGET_NS = 3600 * _NS  # a finished gap is surely committed after this long
# Not KIS saying no to the gap: it refused or failed the call, or the token is not there yet
# (the token job issues it; EGW00133: issued less than a minute ago). Waited out, no attempt.
_LATER: tuple[type[KisError], ...] = (KisAuthError, KisTokenThrottled)


def _later(exc: KisError) -> bool:
    return exc.retryable or isinstance(exc, _LATER)


@dataclass
class QueuedGap:
    """A gap in the queue."""

    gap: Pending
    plan: Plan
    ready_ns: int  # clock time: its bars are final, or its backoff is over
    attempts: int = 0  # answers that were not the gap's bars (KIS unavailable is none)
    failures: int = 0  # failed tries in a row, of any kind: the backoff
    failing_since: int | None = None  # clock time of the first failure
    started: float | None = None  # wall time of its first call
    retake: bool = False  # an unrecoverable gap tried again: one try, unrecoverable until then
    # Why the exchange's trades did not close its volume chain (then its bars are asked);
    # empty: not tried yet, or not a volume-chain gap
    trades_note: str = ""


class GapRecovery(AsyncWorker):
    """One gap-recovery process.

    Gaps are taken from the database at start-up (after the writer has acknowledged what an
    earlier instance left in the outbox) and every ``sweep_s``, so a gap the feed did not
    deliver is still found. Queued gaps are ready once their last minute has closed, ordered by
    priority, then the shortest, then readiness; ``requests_per_account`` recoveries run per
    account.

    A recovery publishes ``recovering``, then the minute bars nobody has published yet (quality
    ``recovered``, with the gap's id), then ``recovered`` with the number of bars; a gap whose
    minutes KIS proves had no trades is ``recovered`` with 0 bars at once.

    A failure is retried with doubling backoff (up to ``backoff_max_s``). KIS refusing or
    failing the call (EGW00201, 5xx, no answer) and a token not there yet (EGW00133) are no
    attempts: KIS serves today's bars all day. An answer that is not the gap's bars (none, a
    garbled row of its minutes, an error code) is an attempt. After ``max_attempts`` attempts,
    or ``retry_window_s`` of failures, the gap is ``unrecoverable``; each sweep retakes those of
    the last ``retake_days``, one try each ``retake_s`` (`workers.gap_recovery.outcomes` says
    what is alerted and counted). A sweep the database fails is logged, counted
    (``sweep_failures``) and retried on a backoff (`observer.db.outages`: 600 s of failures end
    the process); any other server failure ends the process, which the supervisor restarts.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Heartbeat,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.gap_recovery
        self.tally = RecoveryCounters()
        self.jobs: dict[str, QueuedGap] = {}  # gap id -> its job, until its final state
        # Gap ids that reached a final state here: the sweep may still read them as pending
        # until the writer has committed that state, and an unrecoverable one is tried again
        # only ``retake_s`` after its last failure.
        self.done: dict[str, Settled] = {}
        self.running: set[str] = set()
        self.ledger = BarLedger()
        self.trade_ledger = TradeLedger()
        self.venues = venues_from(
            settings.venues, timeline_from(settings.phases, settings.calendar)
        )
        self._engine: Engine = reader_engine(settings.database, "gap_recovery")
        self.reads = GapReads(self._engine, settings, clock)
        self._reads = ReadRetries(
            self.config.backoff_initial_s, self.config.sweep_s, self.tally.read_failed
        )
        self._next_sweep_ns = 0
        self.watched: dict[str, int] = {}  # seconds held today, the last sweep's (`Sweep.watched`)
        self._stored_unrecoverable: dict[str, date] = {}  # the last sweep's: gap id -> day
        retake = f"; tried again every {self.config.retake_s:g} s"
        self.unrecoverable = UnrecoverableAlerts(
            self.alerts, retake if self.config.retake_days else ""
        )
        self.chain_misses = ChainMisses(self.alerts, self.config.trade_misses_alert)

    async def run(self) -> None:
        """Recover gaps until ``stop``."""
        feed = feed_subscriber(self.settings.bus, self.settings.paths.run, ["gap_detected."])
        limits = rate_limits(self.settings.kis, SOURCE)
        accounts = [
            open_account(
                self.settings.kis,
                a.alias,
                self.clock,
                limits,
                on_unavailable=token_alert(a.alias, self.producer.send),
                journal=journal_for(self.settings, self.producer),
            )
            for a in self.settings.kis.accounts
        ]
        beating = beat_forever(
            self.notifier,
            lambda: (
                self.tally.counters(len(self.jobs), day_of(self.clock.now_ns()))
                | rest_error_counters(accounts)
                | {FAILING_S: self._reads.failing_s()}  # the database fails reads
            ),
        )
        try:
            # Heart-beating while the start-up waits for the database: alive, not hung.
            async with alongside(beating):
                if await self._start_up():
                    await self._work(feed, accounts, limits)
        finally:
            for account in accounts:
                await account.aclose()
            feed.close()
            self._engine.dispose()

    async def _work(
        self, feed: FeedSubscriber, accounts: list[KisAccount], limits: RateLimits
    ) -> None:
        """Serve the queue, follow the feed, sweep, and reconcile, until ``stop``.

        Every `_RATES_S` (wall), KIS's rate-limit refusals of the calls since are judged.
        """
        each = range(self.config.requests_per_account)
        rates, judged = RateWatch(self.settings.kis, accounts, SOURCE), time.monotonic()
        verifying = []
        if self.config.verify:  # the day's reconciliation, on this process's limiters
            verifier = Verifier(
                self.settings,
                self.clock,
                self.producer.send,
                self._engine,
                lanes_for(self.settings, self.clock, accounts, limits),
                ReadRetries(
                    self.config.backoff_initial_s, self.config.backoff_max_s, self.tally.read_failed
                ),
                self.alerts,
                self.tally.reconciled,
            )
            verifying.append(verifier.run_daily(self.stop))
        # A server that fails ends the process (the supervisor restarts it), rather than
        # leaving it heart-beating while its gaps wait for ever.
        async with alongside(
            *(self._serve(account) for account in accounts for _ in each), *verifying
        ):
            while not self.stop.is_set():
                self._drain(feed)
                if self.clock.now_ns() >= self._next_sweep_ns:
                    await self._try_sweep()
                if time.monotonic() - judged >= _RATES_S:
                    rates.judge(self.alerts, _RATES_CALLS)
                    judged = time.monotonic()
                await asyncio.sleep(_POLL_S)

    # ------------------------------------------------------------------ the database

    async def _start_up(self) -> bool:
        """The ledger, the day's settled gaps, open alerts and the first sweep; False if stopped.

        Read again on the backoff while the database fails (`ReadRetries`): nothing is
        recovered before the ledger is loaded, or a bar could be published twice.
        """
        if self.stop.is_set():
            return False
        found = await self._reads.read(self.reads.start, "the start-up reads", self.stop)
        if found is None:
            return False
        self.ledger = BarLedger(found.stored)
        self.trade_ledger = TradeLedger(found.trades)
        today = day_of(self.clock.now_ns())
        for gap_id, state in found.settled:
            self.tally.settle(gap_id, today, cast(GapState, state))
        self.alerts.take_over(found.alerted)  # judged by the next update (`UnrecoverableAlerts`)
        self._take(found.sweep)
        self._next_sweep_ns = self.clock.now_ns() + int(self.config.sweep_s * _NS)
        log.info(
            "gap recovery ready: %d gaps pending, %d recovered bars known",
            len(self.jobs),
            len(found.stored),
        )
        return True

    async def _try_sweep(self) -> bool:
        """A sweep; False if the database failed it (tried again on the backoff).

        Read in a thread, so the servers and the heartbeat go on while a read waits.
        """
        try:
            rows = await asyncio.to_thread(self.reads.open)
        except DATABASE_ERRORS as exc:
            pause = self._reads.failed("the sweep", exc)
            self._next_sweep_ns = self.clock.now_ns() + int(pause * _NS)
            return False
        self._reads.succeeded()
        self._next_sweep_ns = self.clock.now_ns() + int(self.config.sweep_s * _NS)
        self._take(rows)
        return True

    def _take(self, sweep: Sweep) -> None:
        """Gaps the database holds as pending, or unrecoverable, that this process has not."""
        self.watched = sweep.watched
        rows = sweep.gaps
        now = self.clock.now_ns()
        retake_ns = int(self.config.retake_s * _NS)
        unrecoverable: dict[str, date] = {}
        for gap_id, symbol, start, end, reason, detected, state, venue, before, after in rows:
            gap = Pending(
                gap_id, symbol, start, end, reason, detected, cast(Venue, venue), before, after
            )
            if state != "unrecoverable":
                self.admit(gap)
                continue
            unrecoverable[gap_id] = day_of(start)
            settled = self.done.get(gap_id)
            if self.config.retake_days and (settled is None or now - settled.at_ns >= retake_ns):
                self.admit(gap, retake=True)
        self._stored_unrecoverable = unrecoverable
        old = now - max(_FORGET_NS, retake_ns)
        self.done = {gap_id: at for gap_id, at in self.done.items() if at.at_ns > old}
        self._alert_unrecoverable()

    # ------------------------------------------------------------------ intake

    def _drain(self, feed: FeedSubscriber) -> None:
        while (envelopes := feed.recv(0)) is not None:
            for envelope in envelopes:
                event = envelope.event
                if isinstance(event, GapDetected) and self._detected_here(envelope.source):
                    self.admit(
                        Pending(
                            event.gap_id,
                            event.symbol,
                            event.start_ns,
                            event.end_ns,
                            event.reason,
                            envelope.ts,
                            event.venue,
                            event.cum_before,
                            event.cum_after,
                        )
                    )

    def _detected_here(self, source: str) -> bool:
        """True if a gap detected by ``source`` is this host's to recover.

        A host with a name (several collectors hosts) recovers the gaps its own Track B
        and reconciliation found, on its own accounts; a host without one, every gap.
        """
        host = self.settings.supervisor.host
        return not host or host_of(source) == host

    def admit(self, gap: Pending, *, retake: bool = False) -> None:
        """Take a gap in (once): a marker at once, or a job in the queue.

        ``retake``: an unrecoverable gap tried again (not detected again: not counted).
        """
        if gap.gap_id in self.jobs or not gap.symbol:
            return
        if not retake and gap.gap_id in self.done:
            return
        plan = plan_for(gap.duration_s, self.config, gap.reason)
        if retake:
            if plan == "marker":
                return  # the policy changed since: left as it was
            self.jobs[gap.gap_id] = QueuedGap(gap, plan, self.clock.now_ns(), retake=True)
            return
        self.tally.detected += 1
        # A reconciliation's gap is found after the close, hours after its minute: its
        # delay says nothing of how soon Track B's gaps are seen.
        if gap.reason != "reconciliation":
            self.tally.detection_s.append(max(0, gap.detected_ns - gap.end_ns) / _NS)
        if plan == "marker":
            limit = self.config.queue_max_s
            self._final(gap, "marker_only", 0, f"{gap.duration_s:.1f} s > {limit:g} s: marker only")
            return
        ready = ready_ns(gap.start_ns, gap.end_ns, self.config.settle_s)
        self.jobs[gap.gap_id] = QueuedGap(gap, plan, ready)
        self.tally.queue_peak = max(self.tally.queue_peak, len(self.jobs))

    # ------------------------------------------------------------------ recovery

    def _next(self) -> QueuedGap | None:
        """The ready job of highest priority: cheapest, most watched, shortest, earliest.

        Retakes last. Cheapest first: after an outage every symbol's gap is ready at once,
        and a short one costs a call while a long one may cost ten (its bars' calls,
        `_calls`). Among gaps of one cost, the symbol Track B's slots held longest today goes
        first: the one its users watch most. A gap reaching a minute of the
        same symbol and venue that a running recovery asks for waits for it: its bars (or
        trades) then serve both, one call instead of two.
        """
        now = self.clock.now_ns()
        fetching = {  # the minutes the running recoveries ask: their answer may do for others
            minute
            for gap_id in self.running
            if (job := self.jobs.get(gap_id)) is not None
            for minute in _reach(job.gap)
        }
        ready = [
            j
            for j in self.jobs.values()
            if j.ready_ns <= now
            and j.gap.gap_id not in self.running
            and fetching.isdisjoint(_reach(j.gap))
        ]
        return min(
            ready,
            key=lambda j: (
                j.retake,
                PRIORITY[j.plan],
                _calls(j.gap),
                -self.watched.get(j.gap.symbol, 0),
                j.gap.duration_s,
                j.ready_ns,
            ),
            default=None,
        )

    async def _serve(self, account: KisAccount) -> None:
        while True:
            job = self._next()
            if job is None:
                await asyncio.sleep(_POLL_S)
                continue
            self.running.add(job.gap.gap_id)
            try:
                await self._recover(job, account)
            finally:
                self.running.discard(job.gap.gap_id)

    async def _recover(self, job: QueuedGap, account: KisAccount) -> None:
        gap = job.gap
        if job.started is None:
            job.started = time.monotonic()
            if not job.retake:  # a gap tried again stays unrecoverable until it is recovered
                self.producer.send(
                    GapStateChanged(gap_id=gap.gap_id, state="recovering", bars=0, detail=job.plan)
                )
        if gap.cum_before is not None and gap.cum_before == gap.cum_after:
            # A silence or an outage the stream's own chain proves held no trade: nothing to
            # ask, whether trades are asked for or not
            detail = "recovered_trades: 0 trades, 0 shares (the chain ran on unbroken, 0 calls)"
            self._final(gap, "recovered", 0, detail, retake=job.retake)
            return
        if self._by_trades(job) and await self._recover_trades(job, account):
            return
        minutes = minutes_of(gap.start_ns, gap.end_ns)
        if self.ledger.holds(gap.symbol, minutes, gap.venue):
            # Another gap's call brought these final bars (a volume chain breaks many times a
            # minute on a lossy feed): no call, nothing new to publish.
            detail = f"0 bars for {_span(minutes)}: recovered already, with another gap"
            if job.trades_note:
                detail += f"; not by trades: {job.trades_note}"
            self._final(gap, "recovered", 0, detail, retake=job.retake)
            return
        today = day_of(self.clock.now_ns())
        try:
            answer = await fetch_gap(
                account.client,
                gap.symbol,
                minutes,
                today,
                self.config.bar_label,
                gap.venue,
                gap.gap_id,
            )
        except KisPaperRefused as exc:  # KIS will never give them: no retries, a marker
            self._not_offered(account.alias, gap, str(exc))
            return
        except KisError as exc:
            self._failed(job, str(exc), attempt=not _later(exc))
            return
        found = answer.bars
        if answer.no_trades:  # KIS answered back to the minute before and none of the gap's
            self.tally.call_to_record_s.append(time.monotonic() - job.started)
            self._final(gap, "recovered", 0, f"no trades in {_span(minutes)}", retake=job.retake)
            return
        fresh = self.ledger.claim(gap.symbol, found.values(), gap.venue)
        if fresh:  # the good minutes are kept whatever else the answer lacks
            bars = tuple(
                msgspec.structs.replace(
                    bar, trading_session=self.venues.session_of_ns(gap.venue, bar.minute_ns)
                )
                for bar in fresh
            )
            self.producer.send(
                MinuteBars(
                    symbol=gap.symbol,
                    quality="recovered",
                    bars=bars,
                    gap_id=gap.gap_id,
                    venue=gap.venue,
                )
            )
            self.tally.bars += len(fresh)
        if answer.garbled:
            self._failed(job, f"KIS sent garbled bars for {_span(list(answer.garbled))}", True)
            return
        if not found:
            self._failed(job, f"KIS answered no minute bars up to {_span(minutes)}", True)
            return
        quiet = len(minutes) - len(found)
        detail = f"{len(found)} bars for {_span(minutes)}, {len(fresh)} new" + (
            f", {quiet} minutes without trades" if quiet else ""
        )
        if job.trades_note:
            detail += f"; not by trades: {job.trades_note}"
        self.tally.call_to_record_s.append(time.monotonic() - job.started)
        self._final(gap, "recovered", len(found), detail, retake=job.retake)

    def _by_trades(self, job: QueuedGap) -> bool:
        """Whether ``job``'s gap is asked for the exchange's trades first (not tried yet).

        A gap the chain measured (a volume-chain gap, an outage's), of today (KIS answers
        today's trades only), with ``trades`` on.
        """
        gap = job.gap
        return (
            self.config.trades
            and not job.trades_note
            and gap.cum_before is not None
            and gap.cum_after is not None
            and day_of(gap.end_ns) == day_of(self.clock.now_ns())
        )

    async def _recover_trades(self, job: QueuedGap, account: KisAccount) -> bool:
        """The gap's missing trades from the exchange; True if that settled this try.

        Recovered when the trades KIS answers between the gap's cumulative volumes close its
        chain (`chain_closes`): each not published yet is, and the gap says how many and
        the shares they closed. Otherwise ``job.trades_note`` says why, and the minute bars
        are asked (False): a garbled answer, or KIS refusing the TR. KIS failing the call
        (EGW00201, 5xx, no answer, no token yet) is waited out like the bars'.
        """
        gap = job.gap
        before, after = gap.cum_before, gap.cum_after
        assert before is not None and after is not None  # `_by_trades`
        # start_ns: the last streamed trade's stamp
        ask = TradesAsk(
            gap.gap_id, gap.start_ns, gap.end_ns, before, after, self.config.trade_calls_max
        )
        try:
            back = await fetch_gap_trades(account.client, gap.symbol, gap.venue, ask)
        except KisProtocolError as exc:  # an answer not trusted: the bars, at once
            return self._trades_missed(job, f"KIS's trades garbled ({exc})")
        except KisError as exc:
            if _later(exc):  # waited out, then the trades asked again
                self._failed(job, str(exc), attempt=False)
                return True
            # KIS refusing the TR itself (not offered, withdrawn) says nothing of the bars
            return self._trades_missed(job, f"KIS refused them ({exc})")
        self.tally.trade_calls += back.pages
        span = ask.span(back)
        if not chain_closes(span, before, after):
            why = why_not(back, span, after - before, self.config.trade_calls_max)
            return self._trades_missed(
                job, why, counted=not capped(back, self.config.trade_calls_max)
            )
        if not within(span, gap.start_ns, gap.end_ns):
            why = "KIS's trades that close the chain lie outside the gap's seconds"
            return self._trades_missed(job, why)
        self.chain_misses.closed(gap.venue)
        fresh = self.trade_ledger.claim(gap.symbol, gap.venue, span)
        now = self.clock.now_ns()
        for trade in fresh:
            tick = trade_tick(
                trade, gap.symbol, gap.venue, account.alias, now, self.venues.session_of_ns
            )
            self.producer.send(tick)
        self.tally.trades += len(fresh)
        if job.started is not None:
            self.tally.call_to_record_s.append(time.monotonic() - job.started)
        volume = after - before
        detail = f"recovered_trades: {len(span)} trades, {volume} shares ({back.pages} calls"
        detail += f", {len(span) - len(fresh)} stored before)" if len(fresh) < len(span) else ")"
        self._final(gap, "recovered", 0, detail, retake=job.retake, trades=len(span), volume=volume)
        return True

    def _trades_missed(self, job: QueuedGap, why: str, *, counted: bool = True) -> bool:
        """The gap's trades did not settle it (``why``, its detail's): the bars are asked (False).

        ``counted``: one more of its venue's gaps in a row (`ChainMisses`).
        """
        job.trades_note = why[:200]
        if counted:
            self.chain_misses.missed(job.gap.venue, job.trades_note)
        return False

    def _not_offered(self, alias: str, gap: Pending, reason: str) -> None:
        """A gap whose bars the account's KIS host does not offer: a marker, warned once.

        An earlier day's bars come from FHKST03010230, which paper accounts lack: the gap
        becomes a marker at once (never retried towards unrecoverable), and the account's
        ``gaps_not_offered_on_paper`` warning is raised once (open in the alert book, it is
        not raised again, after a restart either).
        """
        day = day_of(gap.start_ns)
        self._final(gap, "marker_only", 0, f"not offered on paper accounts: {reason}"[:500])
        self.alerts.raise_(
            NOT_ON_PAPER_ALERT,
            alias,
            "warning",
            f"{alias} is a paper account: KIS does not give it an earlier day's minute bars "
            f"(FHKST03010230), so gaps of earlier days (the first: {day}) are kept as markers",
            {"account": alias, "day": day.isoformat()},
        )

    def _failed(self, job: QueuedGap, reason: str, attempt: bool) -> None:
        """A failed try: again after the backoff, or the gap is unrecoverable.

        ``attempt``: KIS answered, and not with the gap's bars. Otherwise (KIS refused or
        failed the call, no token yet) only time counts.
        """
        now = self.clock.now_ns()
        job.failures += 1
        job.attempts += attempt
        if job.failing_since is None:
            job.failing_since = now
        failing_s = (now - job.failing_since) / _NS
        gap_id = job.gap.gap_id
        if job.retake:  # one try: unrecoverable still, tried again after retake_s
            self.jobs.pop(gap_id, None)
            self.done[gap_id] = Settled(now, "unrecoverable", day_of(job.gap.start_ns))
            log.info("gap %s: tried again, failed (%s)", gap_id, reason)
            return
        if job.attempts < self.config.max_attempts and failing_s < self.config.retry_window_s:
            backoff = backoff_s(
                job.failures, self.config.backoff_initial_s, self.config.backoff_max_s
            )
            job.ready_ns = now + int(backoff * _NS)
            if attempt:
                log.info(
                    "gap %s: attempt %d failed (%s); again in %g s",
                    gap_id,
                    job.attempts,
                    reason,
                    backoff,
                )
            else:
                log.info(
                    "gap %s: KIS unavailable (%s), no attempt; again in %g s",
                    gap_id,
                    reason,
                    backoff,
                )
            return
        tries = f"{job.attempts} attempts, " if job.attempts > 1 else ""
        self._final(
            job.gap, "unrecoverable", 0, f"{reason} ({tries}failing for {failing_s:.0f} s)"[:500]
        )

    def _final(
        self,
        gap: Pending,
        state: GapState,
        bars: int,
        detail: str,
        *,
        retake: bool = False,
        trades: int = 0,
        volume: int = 0,
    ) -> None:
        now = self.clock.now_ns()
        self.producer.send(
            GapStateChanged(
                gap_id=gap.gap_id,
                state=state,
                bars=bars,
                detail=detail,
                trades=trades,
                trade_volume=volume,
            )
        )
        self.jobs.pop(gap.gap_id, None)
        day = day_of(gap.start_ns)
        self.done[gap.gap_id] = Settled(now, state, day)
        self.tally.settle(gap.gap_id, day, state)
        if state == "recovered":
            self.tally.recovered += 1
            if not retake:  # hours for a gap tried again: not the recovery's latency
                self.tally.to_recovered_s.append(max(0, now - gap.detected_ns) / _NS)
        elif state == "unrecoverable":
            self.tally.unrecoverable += 1
            log.warning("gap %s unrecoverable: %s", gap.gap_id, detail)
        else:
            self.tally.marker_only += 1
        self._alert_unrecoverable()

    # ------------------------------------------------------------------ the alert

    def unrecoverable_days(self) -> Counter[date]:
        """Unrecoverable gaps by the day they began: the last sweep's, and what settled since.

        What settled here is newer than what the database said (its commit may lag).
        """
        gaps = dict(self._stored_unrecoverable)
        for gap_id, settled in self.done.items():
            if settled.state == "unrecoverable":
                gaps[gap_id] = settled.day
            else:
                gaps.pop(gap_id, None)
        first = day_of(self.reads.first_day_ns())
        return Counter(day for day in gaps.values() if day >= first)

    def _alert_unrecoverable(self) -> None:
        self.unrecoverable.update(self.unrecoverable_days(), day_of(self.reads.first_day_ns()))


def _calls(gap: Pending) -> int:
    """The calls a gap's bars take at most: one per `BARS_PER_CALL` minutes it touches."""
    return -(-len(minutes_of(gap.start_ns, gap.end_ns)) // BARS_PER_CALL)


def _reach(gap: Pending) -> set[tuple[str, str, int]]:
    """The (symbol, venue, minute)s ``gap`` asks KIS for (`minutes_of`)."""
    return {(gap.symbol, gap.venue, m) for m in minutes_of(gap.start_ns, gap.end_ns)}


def _span(minutes: list[int]) -> str:
    first, last = (
        datetime.fromtimestamp(m / _NS, KST).strftime("%H:%M") for m in (minutes[0], minutes[-1])
    )
    return first if first == last else f"{first}-{last}"
