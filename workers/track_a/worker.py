"""The ``track_a`` session worker: a cycle at every boundary of the day, none overlapping.

Each cycle asks the day's universe for its prices: a KRX cycle every member, a Nextrade one
(`Cycle.venue`) the members Nextrade trades that day. A `PriceSnapshot` per answer, then one
`TrackACycle`; a cycle still running when the next is due is cut off. A restart waits until
the writer has stored what an earlier run sent; then a summarised cycle is not run again, one
in force is resumed with the symbols it lacks, one no run finished is summarised as cut off
(`TrackA._close_interrupted`), and the run's open alerts are taken over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine

from bus.events import PriceSnapshot, Severity, TokenRefreshed, TrackACycle, Venue
from bus.producer import Producer
from observer.alerts.stored import open_alerts
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.cluster.hosts import own_source
from observer.config.tree import Settings
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.db.queries import cycle_summarised, cycle_symbols, universe_of
from observer.db.readers import reader_engine
from observer.kis.session import (
    KisAccount,
    open_account,
    rate_limits,
    rest_error_counters,
    token_alert,
)
from observer.process.heartbeat import Heartbeat
from observer.runtime import AsyncWorker, alongside, beat_forever, journal_for
from workers.track_a import SOURCE
from workers.track_a.cycle import CycleRun, SnapshotTarget, run_cycle
from workers.track_a.schedule import Cycle, current_or_next, cycles_of

__all__ = ["SOURCE", "TrackA"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
# More refusals in a cycle than this share of its calls (and at least _REFUSED_MIN) warn.
_REFUSED_SHARE = 0.05
_REFUSED_MIN = 3
_UNIVERSE_POLL_S = 2.0  # simulated seconds between looks for a universe that is not in yet
_IDLE_S = 3600.0  # no cycle within a week (the calendar's end): look again after this
_NO_UNIVERSE = "track_a_no_universe"  # the alert of a day without a universe
_CYCLE_FAILED = "track_a_cycle_failed"  # the alert of a cycle in which no symbol answered
# A venue's cycle with symbols missing, or KIS refusing more than `_REFUSED_SHARE` of its
# calls: each such cycle alerts (subject: the venue); the venue's next good cycle ends it.
_MISSING, _RATE_LIMITED = "track_a_missing", "track_a_rate_limited"
_REST = "rest"  # its subject: this process's REST calls, every account's
_CATCH_UP_POLL_S = 5.0  # clock seconds between looks at the writer while it is behind
# Wall seconds after a failed read before the next catch-up: each failing read blocks the
# loop up to the reader pool's timeout, and two in a row could outlast the heartbeat's.
_READ_AGAIN_S = 5.0


@dataclass
class CycleCounters:
    """What the heartbeats report."""

    cycles: int = 0
    snapshots: int = 0
    failed: int = 0
    overran: int = 0
    last_cycle_s: float = 0.0
    cycle_size: int = 0  # the cycle in progress (or the last one): its universe
    cycle_done: int = 0  # ... and the symbols stored so far, earlier runs' included
    cycle_running: bool = False
    rate_limited: Callable[[], int] = lambda: 0  # EGW00201 answers, every account
    pace: Callable[[], float] = lambda: 1.0  # the slowest account's pace, of its share
    database_reads_failed: int = 0  # reads the database failed (Track A went on)

    def counters(self) -> dict[str, float]:
        """The heartbeat's counters."""
        return {
            "cycles": self.cycles,
            "snapshots": self.snapshots,
            "failed": self.failed,
            "overran": self.overran,
            "last_cycle_s": round(self.last_cycle_s, 2),
            "cycle_size": self.cycle_size,
            "cycle_done": self.cycle_done,
            "cycle_running": int(self.cycle_running),
            "rate_limited": self.rate_limited(),
            "rest_pace_pct": round(100 * self.pace(), 1),
            "database_reads_failed": self.database_reads_failed,
        }


class TrackA(AsyncWorker):
    """One Track A process: its accounts, its schedule, and the cycles it has run."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Heartbeat,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.timeline = timeline_from(settings.phases, settings.calendar)
        self.venues = venues_from(settings.venues, self.timeline)
        self.tally = CycleCounters()
        share = settings.kis.process_share[SOURCE]
        self.limit_per_s = sum(
            settings.kis.usable_per_second(a) * share for a in settings.kis.accounts
        )
        self._engine: Engine = reader_engine(settings.database, "track_a")
        self._alerted_universe: set[str] = set()  # days whose missing universe was alerted
        # The universe last read per venue (KRX: every member; NXT: Nextrade's), of _members_day.
        self._members: dict[Venue, list[tuple[str, str]]] = {}
        self._read_again_at = 0.0  # time.monotonic() of the next read after a failed one
        self._unresumed_until = 0  # the deadline of a cycle not resumed (`_not_resumed`)
        self._members_day: date | None = None
        self._no_nextrade: set[date] = set()  # days whose universe has no Nextrade member
        # An earlier run's work is not all in the database yet (the writer was behind at the
        # start): its unfinished cycles are closed, and its alerts taken over, once it is.
        self._behind = False
        self._summarised_here: set[str] = set()  # never again as cut off, whatever is stored

    async def run(self, resume: bool = True) -> None:
        """Run cycles until ``stop``; ``resume`` trusts the database about earlier runs."""
        limits = rate_limits(self.settings.kis, SOURCE)
        accounts = [
            open_account(
                self.settings.kis,
                a.alias,
                self.clock,
                limits,
                self._token_issued,
                on_unavailable=token_alert(a.alias, self.producer.send),
                journal=journal_for(self.settings, self.producer),
            )
            for a in self.settings.kis.accounts
        ]
        self.tally.rate_limited = lambda: sum(a.client.rate_limited for a in accounts)
        self.tally.pace = lambda: min((a.client.pace.factor for a in accounts), default=1.0)
        interval, closing = self.settings.track_a.interval_min, self.settings.track_a.closing_cycle
        venues, nextrade = self.venues, self.settings.track_a.nextrade
        try:
            beating = beat_forever(
                self.notifier, lambda: self.tally.counters() | rest_error_counters(accounts)
            )
            async with alongside(beating):
                self._behind = not resume
                if resume:
                    self._earlier_run_stored()
                while not self.stop.is_set():
                    self._catch_up()
                    now = now_utc(self.clock)
                    cycle = current_or_next(
                        self.timeline, now, interval, closing, venues, nextrade=nextrade
                    )
                    if cycle is None:
                        await self._wait_until(now.timestamp() + _IDLE_S)
                    elif now < cycle.scheduled:
                        await self._wait_until(cycle.scheduled.timestamp())
                    else:
                        await self._cycle(cycle, accounts, resume)
                        resume = False
                        await self._wait_until(cycle.deadline.timestamp())
        finally:
            for account in accounts:
                await account.aclose()
            self._engine.dispose()

    async def _wait_until(self, epoch_s: float) -> None:
        """Sleep until ``epoch_s`` (or ``stop``), catching up with an earlier run meanwhile.

        While the writer is behind, it is looked at every `_CATCH_UP_POLL_S`: the earlier
        run's unfinished cycles are closed as soon as it is back, not at the next cycle (after
        the closing cycle, the next day's).
        """
        while self._behind and not self.stop.is_set():
            left = epoch_s - self.clock.now_ns() / _NS
            if left <= 0:
                return
            await self.sleep(min(left, _CATCH_UP_POLL_S))
            self._catch_up()
        await self.sleep_until(epoch_s)

    def _catch_up(self) -> None:
        """Once the writer has acknowledged every event, do what `_earlier_run_stored` does.

        Nothing pending is the same test as `track-a run`'s wait before the start: the earlier
        run's outbox and this run's own events (its cycles' summaries) are in the database.
        """
        if (
            self._behind
            and self.producer.pending == 0
            and time.monotonic() >= self._read_again_at
            and self.clock.now_ns() >= self._unresumed_until  # closed once it is over
        ):
            log.info("the writer has stored the earlier run's events: closing its cycles")
            self._earlier_run_stored()

    def _earlier_run_stored(self) -> None:
        """The database shows the earlier run's work: take over its alerts, close its cycles.

        A database that fails the reads leaves it to the next look (`_catch_up`, once the
        writer has acknowledged everything): it ended Track A, and a start during an
        outage failed over and over until the supervisor parked it for the phase.
        """
        self._behind = False
        try:
            with self._engine.connect() as conn:
                source = own_source(self.settings.supervisor, SOURCE)
                found = open_alerts(
                    conn, source, [_NO_UNIVERSE, _CYCLE_FAILED, _MISSING, _RATE_LIMITED]
                )
            self.alerts.take_over(found)
            self._close_interrupted()
        except DATABASE_ERRORS as exc:
            self._behind = True
            self._read_failed("what earlier runs stored", exc)

    def _read_failed(self, what: str, exc: Exception) -> None:
        self.tally.database_reads_failed += 1
        self._read_again_at = time.monotonic() + _READ_AGAIN_S
        log.warning("cannot read %s: %s", what, error_reason(exc))

    def _not_resumed(self, cycle: Cycle) -> None:
        """What an earlier run stored of ``cycle`` is unknown: its symbols are not asked.

        Asking them blind would store an earlier run's twice (as when the writer is behind at
        the start). The cycle is closed, summarised as cut off, once it is over and the
        database answers (`_catch_up`); the next cycle runs whole.
        """
        log.warning("cycle %s is not resumed; the next cycle runs whole", cycle.cycle_id)
        self._behind = True
        self._unresumed_until = int(cycle.deadline.timestamp()) * _NS

    # ------------------------------------------------------------------ one cycle

    async def _cycle(self, cycle: Cycle, accounts: Sequence[KisAccount], resume: bool) -> None:
        if resume and self._behind:  # the start-up's reads failed: nothing read yet
            self._not_resumed(cycle)
            return
        try:
            if resume and self._summarised(cycle):
                log.info("cycle %s was completed by an earlier run", cycle.cycle_id)
                return
            members = await self._universe(cycle)
            if self.stop.is_set():
                return
            carried = self._stored(cycle) if resume else set()
        except DATABASE_ERRORS as exc:
            self._read_failed(f"what an earlier run stored of cycle {cycle.cycle_id}", exc)
            self._not_resumed(cycle)
            return
        targets = [SnapshotTarget(symbol, market) for symbol, market in members]
        todo = [t for t in targets if t.symbol not in carried]
        if not todo:  # no universe by the deadline, or every symbol stored by an earlier run
            now = self.clock.now_ns()
            self._summarise(cycle, CycleRun(todo, now, now), len(targets), len(targets))
            return
        config = self.settings.track_a
        self.tally.cycle_size, self.tally.cycle_done = len(targets), len(targets) - len(todo)
        self.tally.cycle_running = True
        refused_before = [a.client.rate_limited for a in accounts]
        run = await run_cycle(
            [a.client for a in accounts],
            todo,
            cycle.cycle_id,
            self.clock,
            int(cycle.deadline.timestamp() * _NS),
            self._publish,
            per_client=config.requests_per_account,
            retry_failed=config.retry_failed,
            retry_initial_s=config.retry_initial_s,
            retry_max_s=config.retry_max_s,
            stop=self.stop,
            on_retry=functools.partial(self._failing, cycle),
            halt_from=self.settings.kis.halt_from,
            session_of=self.venues.session_of_ns,
            venue=cycle.venue,
        )
        self.tally.cycle_running = False
        if run.stopped:
            log.info("stopped during cycle %s; the next run resumes it", cycle.cycle_id)
            return
        self._summarise(cycle, run, len(targets), len(targets) - len(todo))
        refused = {
            a.alias: a.client.rate_limited - before
            for a, before in zip(accounts, refused_before, strict=True)
        }
        self._judge_refusals(cycle, run, refused)

    def _failing(self, cycle: Cycle, run: CycleRun, passes: int) -> None:
        """Alert at once, not at the cycle's end, when the first pass had no answer.

        A REST outage is retried until the cycle is due: its critical alert comes after the
        first pass (a minute or two), and the summary alerts again if no symbol ever answered.
        The first answer after it, in this cycle or a later one, resolves it (`_answered`).
        """
        if passes != 1 or run.succeeded or not run.failed:
            return
        sample = "; ".join(f"{s}: {e}" for s, e in list(run.failed.items())[:3])
        due = f"{cycle.deadline:%H:%M}"
        message = f"cycle {cycle.cycle_id}: no symbol answered ({sample}); retrying until {due}"
        self._cycle_failed(message, cycle)

    def _cycle_failed(self, message: str, cycle: Cycle) -> None:
        self._alert("critical", _CYCLE_FAILED, message, cycle, subject=_REST)

    def _answered(self, cycle_id: str) -> None:
        """Resolve the open `_CYCLE_FAILED` alerts, this run's and an earlier one's.

        A symbol answered, so their condition (no symbol answers) is over; unresolved, a
        critical alert is reminded of every half hour until someone acknowledges it.
        """
        for subject in sorted(self.alerts.subjects(_CYCLE_FAILED)):
            self.alerts.resolve(_CYCLE_FAILED, subject, f"cycle {cycle_id}: symbols answer again")
        log.info("cycle %s: symbols answer again", cycle_id)

    def _judge_refusals(self, cycle: Cycle, run: CycleRun, refused: dict[str, int]) -> None:
        """Warn when KIS refused more than `_REFUSED_SHARE` of a cycle's calls (EGW00201).

        A few refusals are the gateway's window meeting our pacing; more are a budget set
        above what KIS allows the account (`rest_per_second`), or another program using its
        app key: every refused call is retried and the account's pace slows
        (`observer.kis.pacing`), so the cycle still completes, later and at more calls.
        """
        total = sum(refused.values())
        if total < _REFUSED_MIN or total <= run.calls * _REFUSED_SHARE:
            self.alerts.resolve(
                _RATE_LIMITED,
                cycle.venue,
                f"cycle {cycle.cycle_id}: KIS refused {total} of {run.calls} calls",
            )
            return
        budgets = {a.alias: a.rest_per_second for a in self.settings.kis.accounts}
        worst = ", ".join(
            f"{alias} {count} (rest_per_second {budgets[alias]:g})"
            for alias, count in sorted(refused.items(), key=lambda item: -item[1])
            if count
        )
        self._alert(
            "warning",
            _RATE_LIMITED,
            f"cycle {cycle.cycle_id}: KIS refused {total} of {run.calls} calls as over its "
            f"rate limit (EGW00201): {worst}; is an account's rest_per_second above its "
            "budget at KIS?",
            cycle,
            cycle.venue,
        )

    def _close_interrupted(self) -> None:
        """Summarise the cycles over (the previous session's and today's) no run summarised.

        A run killed or stopped mid-cycle and started again only after the cycle's end
        left it with some snapshots and no summary: no figures, no missing symbols, no
        alert. Each is summarised now as cut off at its deadline, like any cycle that could
        not finish, its stored symbols ``carried``. So is a cycle with nothing stored that
        came after one of its day's cycles had run (Track A down for a whole cycle: a crash
        loop, a host rebooting), every symbol missing; a cycle before the day's first run
        (Track A installed, or its day begun, later) is no loss of Track A's. Called once
        the database shows every event sent, this run's too: a cycle this run ran is
        summarised there.
        """
        now = now_utc(self.clock)
        config = self.settings.track_a
        today = now.astimezone(KST).date()
        days = (self.timeline.calendar.previous_session(today), today)
        every = (config.interval_min, config.closing_cycle, self.venues)
        ran: set[date] = set()  # the days of which a cycle has run
        for cycle in [
            c for d in days for c in cycles_of(self.timeline, d, *every, nextrade=config.nextrade)
        ]:
            if cycle.deadline > now:
                return
            if cycle.cycle_id in self._summarised_here or self._summarised(cycle):
                ran.add(cycle.trade_date)
                continue
            stored = self._stored(cycle)
            if not stored and cycle.trade_date not in ran:
                continue
            ran.add(cycle.trade_date)
            with self._engine.connect() as conn:
                members = universe_of(conn, cycle.trade_date, cycle.venue)
            targets = [SnapshotTarget(symbol, market) for symbol, market, _ in members]
            lacking = [t for t in targets if t.symbol not in stored]
            at = int(cycle.deadline.timestamp() * _NS)
            scheduled = int(cycle.scheduled.timestamp() * _NS)
            what = "finish" if stored else "run"
            log.warning("cycle %s ended while no run was left to %s it", cycle.cycle_id, what)
            run = CycleRun(lacking, scheduled, at, overran=True)
            self._summarise(cycle, run, len(targets), len(targets) - len(lacking))

    def _token_issued(self, event: TokenRefreshed) -> None:
        self.producer.send(event)  # the audit of token issues (never the token)

    def _publish(self, snapshot: PriceSnapshot) -> None:
        self.producer.send(snapshot)
        if self.alerts.subjects(_CYCLE_FAILED):
            self._answered(snapshot.cycle_id)
        self.tally.snapshots += 1
        self.tally.cycle_done += 1

    def _summarise(self, cycle: Cycle, run: CycleRun, size: int, carried: int) -> None:
        self._summarised_here.add(cycle.cycle_id)
        requested = len(run.targets)
        summary = TrackACycle(
            cycle_id=cycle.cycle_id,
            trade_date=cycle.trade_date,
            scheduled_ns=int(cycle.scheduled.timestamp() * _NS),
            started_ns=run.started_ns,
            finished_ns=run.finished_ns,
            universe_size=size,
            succeeded=len(run.succeeded),
            failed=len(run.failed),
            missing=tuple(run.missing),
            requested=requested,
            carried=carried,
            unfinished=len(run.unfinished),
            calls=run.calls,
            rate_per_s=Decimal(f"{run.rate_per_s:.2f}"),
            limit_per_s=Decimal(f"{self.limit_per_s:.2f}"),
            overran=run.overran,
            venue=cycle.venue,
        )
        self.producer.send(summary)
        self.producer.flush()
        seconds = (run.finished_ns - run.started_ns) / _NS
        self.tally.cycles += 1
        self.tally.failed += len(run.failed)
        self.tally.overran += run.overran
        self.tally.last_cycle_s = seconds
        log.info(
            "cycle %s (%s): %d of %d in %.1f s (%d calls, %.2f/s of %.2f/s), %d failed, "
            "%d unfinished",
            cycle.cycle_id,
            cycle.venue,
            len(run.succeeded) + carried,
            size,
            seconds,
            run.calls,
            run.rate_per_s,
            self.limit_per_s,
            len(run.failed),
            len(run.unfinished),
        )
        missing = len(run.missing)
        if requested and not run.succeeded and run.failed:
            sample = "; ".join(f"{s}: {e}" for s, e in list(run.failed.items())[:3])
            self._cycle_failed(f"cycle {cycle.cycle_id}: no symbol answered ({sample})", cycle)
        elif missing:
            why = "cut off by the next cycle; " if run.overran else ""
            self._alert(
                "warning",
                _MISSING,
                f"cycle {cycle.cycle_id}: {missing} of {size} symbols missing ({why}"
                f"{len(run.failed)} failed, {len(run.unfinished)} unfinished)",
                cycle,
                cycle.venue,
            )
        elif requested:
            self.alerts.resolve(
                _MISSING, cycle.venue, f"cycle {cycle.cycle_id}: every symbol stored"
            )

    def _alert(
        self, severity: Severity, code: str, message: str, cycle: Cycle, subject: str = ""
    ) -> None:
        """Log and publish an alert: each one, open ones of its condition or not."""
        log.warning("%s", message)
        context = {"cycle_id": cycle.cycle_id}
        self.alerts.raise_(code, subject, severity, message, context, again=True)

    # ------------------------------------------------------------------ the database

    def _summarised(self, cycle: Cycle) -> bool:
        with self._engine.connect() as conn:
            return cycle_summarised(
                conn, own_source(self.settings.supervisor, SOURCE), cycle.cycle_id
            )

    def _stored(self, cycle: Cycle) -> set[str]:
        with self._engine.connect() as conn:
            return cycle_symbols(conn, own_source(self.settings.supervisor, SOURCE), cycle.cycle_id)

    def _read_universe(self, day: date, venue: Venue) -> tuple[list[tuple[str, str]], str]:
        """``day``'s members for ``venue`` as stored, and why not if the database failed.

        A database outage (a PostgreSQL restart, a failover) must not stop the cycles: their
        snapshots wait in the outbox for the writer, and a price not asked for at its time
        is lost for good. So a failed read is the members read before, if any of that day.
        """
        if self._members_day != day:
            self._members, self._members_day = {}, day
        try:
            with self._engine.connect() as conn:
                rows = universe_of(conn, day, venue)
        except DATABASE_ERRORS as exc:
            self.tally.database_reads_failed += 1
            known = self._members.get(venue, [])
            log.warning(
                "cannot read the universe of %s: %s; %s",
                day,
                error_reason(exc),
                f"the cycle asks the {len(known)} members read before" if known else "waiting",
            )
            return known, error_reason(exc)
        members = [(symbol, market) for symbol, market, _ in rows]
        if members:
            self._members[venue] = members
        return members, ""

    def _nextrade_trades_none(self, day: date) -> bool:
        """Whether ``day``'s universe is in and Nextrade trades none of it (logged once a day).

        Its eligibility is not known on a paper account, or when the universe job could not
        ask it: Nextrade's cycles are then empty, not waiting for a universe.
        """
        members, _ = self._read_universe(day, "KRX")
        if members and day not in self._no_nextrade:
            self._no_nextrade.add(day)
            log.warning(
                "no member of the universe of %s is known to trade on Nextrade: its cycles "
                "are empty (a paper account, or the universe job could not ask)",
                day,
            )
        return bool(members)

    async def _universe(self, cycle: Cycle) -> list[tuple[str, str]]:
        """The cycle's members (symbol, market) by rank, waiting for the universe if needed.

        A Nextrade cycle's are those Nextrade trades that day: none at once when the universe
        is in and none is known to (`_nextrade_trades_none`).
        Past the cycle's deadline without a universe, the cycle is empty; a critical alert goes
        out once per day when the universe is ``universe_alert_s`` late, or at the deadline
        if that comes first (a limit longer than a cycle alerted nothing, all day). While the
        database does not answer, the members read before are the day's (`_read_universe`).
        """
        day = cycle.trade_date
        late_after = min(
            cycle.scheduled.timestamp() + self.settings.track_a.universe_alert_s,
            cycle.deadline.timestamp(),
        )
        while not self.stop.is_set():
            await asyncio.sleep(0)  # a beat between reads that may each block for a while
            members, failure = self._read_universe(day, cycle.venue)
            nextrade_none = cycle.venue == "NXT" and not members and not failure
            if nextrade_none and self._nextrade_trades_none(day):
                return []
            if members:
                # the alert's condition is over
                self.alerts.resolve(
                    _NO_UNIVERSE, "", f"the universe for {day} is here: Track A runs"
                )
                return members
            now = self.clock.now_ns() / _NS
            if (
                now >= late_after
                and not self.alerts.is_open(_NO_UNIVERSE)  # still open: one alert is enough
                and day.isoformat() not in self._alerted_universe
            ):
                self._alerted_universe.add(day.isoformat())
                why = (
                    f"the database does not answer ({failure})"
                    if failure
                    else "is the universe job failing? `observer universe build`"
                )
                self._alert(
                    "critical",
                    _NO_UNIVERSE,
                    f"no universe for {day}: Track A cannot run ({why})",
                    cycle,
                )
            if now >= cycle.deadline.timestamp():
                return []
            await self.sleep(_UNIVERSE_POLL_S)
        return []

    # ------------------------------------------------------------------ waiting
