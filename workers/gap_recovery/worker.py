"""The ``gap_recovery`` daemon: every gap Track B detects ends recovered, unrecoverable or marked.

Gaps come from the feed (``gap_detected``) and from the database: at start-up (after the
writer has acknowledged what an earlier instance left in the outbox), then every
``sweep_s``, so a gap the feed did not deliver (a restart, a slow subscriber) is still
found. Each gap gets the policy's plan (`workers.gap_recovery.plan`): marker only, or a
place in the queue, ready once its last minute has closed, ordered by priority then by
readiness. ``requests_per_account`` recoveries run per account, each call under the
account's ``gap_recovery`` share of the REST budget. On session days, once Track B's stream
has ended, the day's reconciliation (`workers.gap_recovery.verify`) runs here too, on the
same limiters.

A recovery publishes ``recovering``, then the minute bars nobody has published yet
(quality ``recovered``, with the gap's id), then ``recovered`` with the number of bars that
cover the gap; a gap whose minutes KIS proves had no trades is ``recovered`` with 0 bars and
"no trades in HH:MM-HH:MM" at once (`workers.gap_recovery.bars`). A failure is retried
with doubling backoff up to ``max_attempts``, then the gap is ``unrecoverable`` with the
error. A server that fails otherwise ends the process, which the supervisor restarts.
Killed at any point, the next instance recovers the gap again and publishes only the bars
still missing: none is lost and none doubled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from bus.events import GapDetected, GapState, GapStateChanged, MinuteBars
from bus.feed import FeedSubscriber
from bus.producer import Producer
from observer.clock import Clock
from observer.config import Settings
from observer.db.queries import open_gaps, recovered_minutes
from observer.db.readers import reader_engine
from observer.errors import KisError
from observer.hosts import host_of
from observer.kis.session import (
    KisAccount,
    open_account,
    rate_limits,
    rest_error_counters,
    token_alert,
)
from observer.notify import Notifier
from observer.phases import KST
from observer.retry import backoff_s
from observer.runtime import AsyncWorker, alongside, beat_forever
from observer.stats import p99
from observer.transport import feed_subscriber
from workers.gap_recovery import SOURCE
from workers.gap_recovery.bars import BarLedger, fetch_gap
from workers.gap_recovery.plan import PRIORITY, Pending, Plan, minutes_of, plan_for, ready_ns
from workers.gap_recovery.verify import Verifier, lanes_for

__all__ = ["SOURCE", "GapRecovery", "RecoveryCounters"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_POLL_S = 0.02  # wall seconds between looks at the feed and the queue
_LATENCIES = 10_000  # the newest latencies kept for the percentiles
_FORGET_NS = 3600 * _NS  # a finished gap is surely committed after this long
_LEDGER_DAYS = 7  # recovered bars loaded at start-up: this many days back, or the oldest gap's


@dataclass
class Job:
    """A gap in the queue."""

    gap: Pending
    plan: Plan
    ready_ns: int  # clock time: its bars are final, or its backoff is over
    attempts: int = 0
    started: float | None = None  # wall time of its first call


@dataclass
class RecoveryCounters:
    """What the heartbeats report (``observer ctl status``, Prometheus)."""

    detected: int = 0
    recovered: int = 0
    unrecoverable: int = 0
    marker_only: int = 0
    bars: int = 0
    queue_peak: int = 0
    detection_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    to_recovered_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    call_to_record_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))

    def counters(self, queue_depth: int) -> dict[str, float]:
        """The heartbeat's counters: counts, queue depth and latency percentiles."""
        settled = self.recovered + self.unrecoverable
        return {
            "gaps_detected": self.detected,
            "gaps_recovered": self.recovered,
            "gaps_unrecoverable": self.unrecoverable,
            "gaps_marker_only": self.marker_only,
            "bars_recovered": self.bars,
            "queue_depth": queue_depth,
            "queue_peak": self.queue_peak,
            "success_pct": round(100 * self.recovered / settled, 2) if settled else 100.0,
            "detection_p99_s": p99(self.detection_s),
            "detect_to_recovered_p99_s": p99(self.to_recovered_s),
            "call_to_record_p99_s": p99(self.call_to_record_s),
        }


class GapRecovery(AsyncWorker):
    """One gap-recovery process."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Notifier,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.gap_recovery
        self.tally = RecoveryCounters()
        self.jobs: dict[str, Job] = {}  # gap id -> its job, until its final state
        # Gap ids that reached a final state here -> when: the sweep may still read them as
        # pending until the writer has committed that state.
        self.done: dict[str, int] = {}
        self.running: set[str] = set()
        self.ledger = BarLedger()
        self._engine: Engine = reader_engine(settings.database, "gap_recovery")

    async def run(self) -> None:
        """Recover gaps until ``stop``."""
        feed = feed_subscriber(self.settings, ["gap_detected."])
        limits = rate_limits(self.settings, SOURCE)
        accounts = [
            open_account(
                self.settings,
                a.alias,
                self.clock,
                limits,
                on_unavailable=token_alert(a.alias, self.producer.send),
            )
            for a in self.settings.kis.accounts
        ]
        stored = self._stored_bars()
        self.ledger = BarLedger(stored)
        self._sweep()
        log.info(
            "gap recovery ready: %d gaps pending, %d recovered bars known",
            len(self.jobs),
            len(stored),
        )
        each = range(self.config.requests_per_account)
        verifying = []
        if self.config.verify:  # the day's reconciliation, on this process's limiters
            verifier = Verifier(
                self.settings,
                self.clock,
                self.producer.send,
                self._engine,
                lanes_for(self.settings, self.clock, accounts, limits),
            )
            verifying.append(verifier.run_daily(self.stop))
        try:
            # A server that fails ends the process (the supervisor restarts it), rather
            # than leaving it heart-beating while its gaps wait for ever.
            async with alongside(
                beat_forever(
                    self.notifier,
                    lambda: self.tally.counters(len(self.jobs)) | rest_error_counters(accounts),
                ),
                *(self._serve(account) for account in accounts for _ in each),
                *verifying,
            ):
                swept = self.clock.now_ns()
                while not self.stop.is_set():
                    self._drain(feed)
                    if self.clock.now_ns() - swept >= self.config.sweep_s * _NS:
                        swept = self.clock.now_ns()
                        self._sweep()
                    await asyncio.sleep(_POLL_S)
        finally:
            for account in accounts:
                await account.aclose()
            feed.close()
            self._engine.dispose()

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
                        )
                    )

    def _detected_here(self, source: str) -> bool:
        """True if a gap detected by ``source`` is this host's to recover.

        A host with a name (several collectors hosts) recovers the gaps its own Track B
        and reconciliation found, on its own accounts; a host without one, every gap.
        """
        host = self.settings.supervisor.host
        return not host or host_of(source) == host

    def _sweep(self) -> None:
        """Gaps the database holds as detected or recovering that this process has not seen."""
        with self._engine.connect() as conn:
            rows = open_gaps(conn, self.settings.supervisor.host)
        for row in rows:
            self.admit(Pending(*row))
        old = self.clock.now_ns() - _FORGET_NS
        self.done = {gap_id: at for gap_id, at in self.done.items() if at > old}

    def _stored_bars(self) -> list[tuple[str, int]]:
        """The recovered bars already stored that a pending gap could touch (the ledger)."""
        since = self.clock.now_ns() - _LEDGER_DAYS * 86_400 * _NS
        with self._engine.connect() as conn:
            return recovered_minutes(conn, since)

    def admit(self, gap: Pending) -> None:
        """Take a gap in (once): a marker at once, or a job in the queue."""
        if gap.gap_id in self.jobs or gap.gap_id in self.done or not gap.symbol:
            return
        self.tally.detected += 1
        self.tally.detection_s.append(max(0, gap.detected_ns - gap.end_ns) / _NS)
        plan = plan_for(gap.duration_s, self.config, gap.reason)
        if plan == "marker":
            limit = self.config.queue_max_s
            self._final(gap, "marker_only", 0, f"{gap.duration_s:.1f} s > {limit:g} s: marker only")
            return
        ready = ready_ns(gap.start_ns, gap.end_ns, self.config.settle_s)
        self.jobs[gap.gap_id] = Job(gap, plan, ready)
        self.tally.queue_peak = max(self.tally.queue_peak, len(self.jobs))

    # ------------------------------------------------------------------ recovery

    def _next(self) -> Job | None:
        """The ready job of highest priority, earliest first; None if nothing is ready."""
        now = self.clock.now_ns()
        ready = [
            j for j in self.jobs.values() if j.ready_ns <= now and j.gap.gap_id not in self.running
        ]
        return min(ready, key=lambda j: (PRIORITY[j.plan], j.ready_ns), default=None)

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

    async def _recover(self, job: Job, account: KisAccount) -> None:
        gap = job.gap
        if job.started is None:
            job.started = time.monotonic()
            self.producer.send(
                GapStateChanged(gap_id=gap.gap_id, state="recovering", bars=0, detail=job.plan)
            )
        minutes = minutes_of(gap.start_ns, gap.end_ns)
        today = datetime.fromtimestamp(self.clock.now_ns() / _NS, KST).date()
        job.attempts += 1
        try:
            answer = await fetch_gap(account.client, gap.symbol, minutes, today)
        except KisError as exc:
            self._failed(job, str(exc), retry=exc.retryable)
            return
        found = answer.bars
        if answer.no_trades:  # KIS answered the minutes before and none of the gap's
            self.tally.call_to_record_s.append(time.monotonic() - job.started)
            self._final(gap, "recovered", 0, f"no trades in {_span(minutes)}")
            return
        if not found:
            self._failed(job, f"KIS answered no minute bars up to {_span(minutes)}", retry=True)
            return
        fresh = self.ledger.claim(gap.symbol, found.values())
        if fresh:
            self.producer.send(
                MinuteBars(
                    symbol=gap.symbol, quality="recovered", bars=tuple(fresh), gap_id=gap.gap_id
                )
            )
        quiet = len(minutes) - len(found)
        detail = f"{len(found)} bars for {_span(minutes)}, {len(fresh)} new" + (
            f", {quiet} minutes without trades" if quiet else ""
        )
        self.tally.bars += len(fresh)
        self.tally.call_to_record_s.append(time.monotonic() - job.started)
        self._final(gap, "recovered", len(found), detail)

    def _failed(self, job: Job, reason: str, retry: bool) -> None:
        if retry and job.attempts < self.config.max_attempts:
            backoff = backoff_s(
                job.attempts, self.config.backoff_initial_s, self.config.backoff_max_s
            )
            job.ready_ns = self.clock.now_ns() + int(backoff * _NS)
            log.info(
                "gap %s: attempt %d failed (%s); again in %g s",
                job.gap.gap_id,
                job.attempts,
                reason,
                backoff,
            )
            return
        tries = f" after {job.attempts} attempts" if job.attempts > 1 else ""
        self._final(job.gap, "unrecoverable", 0, f"{reason}{tries}"[:500])

    def _final(self, gap: Pending, state: GapState, bars: int, detail: str) -> None:
        self.producer.send(
            GapStateChanged(gap_id=gap.gap_id, state=state, bars=bars, detail=detail)
        )
        self.jobs.pop(gap.gap_id, None)
        self.done[gap.gap_id] = self.clock.now_ns()
        if state == "recovered":
            self.tally.recovered += 1
            self.tally.to_recovered_s.append(max(0, self.clock.now_ns() - gap.detected_ns) / _NS)
        elif state == "unrecoverable":
            self.tally.unrecoverable += 1
            log.warning("gap %s unrecoverable: %s", gap.gap_id, detail)
        else:
            self.tally.marker_only += 1


def _span(minutes: list[int]) -> str:
    first, last = (
        datetime.fromtimestamp(m / _NS, KST).strftime("%H:%M") for m in (minutes[0], minutes[-1])
    )
    return first if first == last else f"{first}-{last}"
