"""The day's reconciliation: every minute Track B watched, against the exchange's final bars.

Each minute a symbol held its slot whole is ``complete``, ``short``, ``recovered`` or
``excess`` against KIS's final bar; a short minute no recorded gap explains is a miss,
published as a one-minute ``reconciliation`` gap. Each symbol's result is a
`Reconciliation` event. Bars that agree with the stored trades only shifted by a minute (a
``bar_label`` that is not KIS's, `workers.gap_recovery.label`) are alerted once
(``bar_label_shifted``) and their minutes compared shifted, recorded as ``shifted``.
`Verifier` runs after Track B's stream ends each session day, on the gap-recovery share,
taking up only symbols not yet reconciled whole; ``observer gap-recovery verify`` runs it
on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import cast

import msgspec
from sqlalchemy import Engine

from bus.events import Alert, Event, GapDetected, MinuteCheck, Reconciliation, Venue
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import Timeline, timeline_from
from observer.calendar.venues import StreamEnds, Venues, stream_ends, venues_from
from observer.config.tree import Settings
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS, ReadRetries
from observer.db.reconciliation_queries import (
    gaps_of,
    last_reconciled_minutes,
    recovered_bar_minutes,
    slot_events_between,
    slot_venues_between,
    tick_minutes,
)
from observer.errors import KisError, KisPaperRefused
from observer.kis.bars import fetch_bars
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import account_credentials
from observer.kis.session import KisAccount
from observer.runtime import sleep_unless
from workers.gap_recovery.label import advice, label_shift
from workers.gap_recovery.outcomes import NOT_OFFERED_ALERT
from workers.gap_recovery.plan import STAMP_NS
from workers.gap_recovery.reconcile import (
    MINUTE_NS,
    check_minutes,
    held_spans,
    runs_of,
    watched_minutes,
)

__all__ = [
    "FAILED_ALERT",
    "DayResult",
    "RunFigures",
    "Verifier",
    "completeness_text",
    "day_stream_ends",
    "failed_subject",
    "lanes_for",
    "misses_of",
]

# When a day's streams end, in order, each with the venues ending then (None: all of them).
StreamOrder = list[tuple[datetime, frozenset[Venue] | None]]


def work_key(symbol: str, venue: str) -> str:
    """What one reconciliation covers, as results and messages name it.

    A symbol's minutes on one venue: ``005930`` on KRX, ``005930/NXT`` on another.
    """
    return symbol if venue == "KRX" else f"{symbol}/{venue}"


log = logging.getLogger(__name__)

_NS = 1_000_000_000
# A run that could not reconcile every symbol of its day and venues (subject: `failed_subject`):
# an error, critical once the daemon gives up on them, resolved by a run that reconciles them
FAILED_ALERT = "reconciliation_failed"
_JOIN_NS = 30 * MINUTE_NS  # holdings closer than a page of bars share one bar query


def failed_subject(day: date, venues: frozenset[Venue] | None) -> str:
    """``2026-11-20`` for a run of every venue, ``2026-11-20 NXT`` for Nextrade's alone."""
    return day.isoformat() if venues is None else f"{day} {' '.join(sorted(venues))}"


@dataclass
class DayResult:
    """What one run reconciled: minutes by status, misses, calls, and what failed."""

    day: date
    attempt: int = 1  # a retry covers only the symbols earlier runs could not reconcile
    venues: frozenset[Venue] | None = None  # the venues reconciled (None: every venue)
    statuses: Counter[str] = field(default_factory=Counter)
    missing_volume: int = 0
    misses: int = 0
    calls: int = 0
    reconciled: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> why
    # Symbols left because no account is offered the day's bars (paper: an earlier day)
    not_offered: set[str] = field(default_factory=set)

    @property
    def subject(self) -> str:
        """Its failure alert's subject: the day, and the venues when not all."""
        return failed_subject(self.day, self.venues)

    def add(self, symbol: str, checks: Sequence[MinuteCheck], calls: int) -> None:
        """Count one symbol's minutes."""
        self.reconciled.add(symbol)
        self.statuses.update(c.status for c in checks)
        self.missing_volume += sum(c.bar_volume - c.stored_volume for c in _short(checks))
        self.misses += misses_of(checks)
        self.calls += calls

    def summary(self) -> RunFigures:
        """The run's figures (``observer gap-recovery verify --json``: its fields, in order)."""
        watched = sum(self.statuses.values())
        complete = self.statuses["complete"] + self.statuses["shifted"]  # complete, shifted
        whole = complete + self.statuses["recovered"]
        return RunFigures(
            date=self.day.isoformat(),
            attempt=self.attempt,
            symbols=len(self.reconciled),
            watched_minutes=watched,
            complete=self.statuses["complete"],
            recovered=self.statuses["recovered"],
            short=self.statuses["short"],
            excess=self.statuses["excess"],
            missing_volume=self.missing_volume,
            misses=self.misses,
            completeness_pct=_pct(whole, watched),
            stream_pct=_pct(complete, watched),
            calls=self.calls,
            failed=dict(sorted(self.failed.items())),
            shifted=self.statuses["shifted"],
        )


class RunFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What one reconciliation run found: minutes by status, misses, calls, failures."""

    date: str
    attempt: int
    symbols: int
    watched_minutes: int
    complete: int
    recovered: int
    short: int
    excess: int
    missing_volume: int
    misses: int
    completeness_pct: float | None  # None: no minute compared
    stream_pct: float | None
    calls: int
    failed: dict[str, str]  # symbol -> why it has no bars
    shifted: int = 0  # minutes complete only with the bars shifted a minute (bar_label_shifted)


_ID = "reconciliation:"  # the prefix of the gaps this module publishes


def _short(checks: Sequence[MinuteCheck]) -> list[MinuteCheck]:
    return [c for c in checks if c.status == "short"]


def misses_of(checks: Sequence[MinuteCheck]) -> int:
    """The minutes that fell short with no gap Track B recorded (explained by ours, if any)."""
    return sum(1 for c in checks if c.status != "complete" and c.gap_id.startswith(_ID))


def _pct(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent; none of nothing (no minute compared is not 100 %)."""
    return round(100 * part / whole, 3) if whole else None


def completeness_text(figures: RunFigures) -> str:
    """A run's completeness (`DayResult.summary`) in words, also when nothing was compared."""
    if figures.completeness_pct is None:
        if figures.failed:
            return "nothing compared (no bars)"
        return "nothing was watched (no slot held a whole minute)"
    return f"{figures.completeness_pct}% complete ({figures.stream_pct}% from the stream alone)"


def lanes_for(
    settings: Settings, clock: Clock, accounts: Sequence[KisAccount], limits: RateLimits
) -> list[KisClient]:
    """``requests_per_account`` clients per account, each on the account's limiter.

    Each lane fetches one symbol at a time, so its request counter is exactly what that
    symbol cost; the limiter is the process's own, so the calls share its budget.
    """
    return [
        KisClient(
            account.rest,
            account_credentials(settings.kis, account.alias),
            account.tokens,
            clock,
            limits.for_account(account.alias),
            environment=account.client.environment,
            paper_codes=settings.kis.paper_refusal_codes,
        )
        for account in accounts
        for _ in range(settings.gap_recovery.requests_per_account)
    ]


class Verifier:
    """Reconciles days; publishes through ``send``.

    Parameters
    ----------
    settings, clock:
        The configuration (``[gap_recovery]``, the phases) and the time.
    send:
        Publishes an event (a producer's ``send``).
    engine:
        A read-only engine on the database.
    lanes:
        The clients that fetch the bars (`lanes_for`), one symbol at a time each.
    alerts:
        The process's alert book (``reconciliation_not_offered``, once per account); a
        book of its own on ``send`` without one.
    settled:
        Called by `run_daily` with a stream's end once that stream's reconciliation has
        settled (done, or given up and alerted): what the heartbeat reports.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        send: Callable[[Event], object],
        engine: Engine,
        lanes: Sequence[KisClient],
        reads: ReadRetries | None = None,
        alerts: AlertBook | None = None,
        settled: Callable[[datetime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.alerts = alerts or AlertBook(send)
        self.config = settings.gap_recovery
        self.clock = clock
        self.send = send
        self.engine = engine
        self.lanes = list(lanes)
        self.timeline = timeline_from(settings.phases, settings.calendar)
        self.venues = venues_from(settings.venues, self.timeline)
        # Its own: the sweeps' reads going through must not hide the reconciliation's failing.
        self.reads = reads or ReadRetries(self.config.backoff_initial_s, self.config.backoff_max_s)
        self._shifts_alerted: set[int] = set()  # bar_label_shifted is said once per shift
        self._settled = settled or (lambda end: None)

    def stream_end(self, day: date, venue: Venue | None = None) -> datetime:
        """When Track B's streams of ``day`` end (``venue``'s; None: the last of them).

        As Track B ends them (`stream_ends`), by the rows of ``[track_b.feeds]``: KRX's at
        its close with a ``krx_closing_auction`` row, else at the ``track_a_closing`` phase's
        start, or with a ``krx_after_market`` row at its after-market's close; Nextrade's
        feed and the combined one with an ``nxt_after_market`` row at Nextrade's close.
        """
        ends = _stream_ends(self.settings, self.timeline, self.venues, day)
        return ends.krx if venue == "KRX" else ends.last

    def _end_ns(self, day: date, venue: Venue | None = None) -> int:
        return int(self.stream_end(day, venue).timestamp()) * _NS

    def stream_ends(self, day: date) -> StreamOrder:
        """When ``day``'s streams end, in order, each with the venues ending then (None: all).

        KRX's at its close (15:31:30; with a ``krx_after_market`` row at its after-market's,
        20:00:30); with an ``nxt_after_market`` row Nextrade's feed and the combined one at
        Nextrade's close: a day whose KRX feeds end at 15:31:30 is reconciled then.
        """
        return _in_order(_stream_ends(self.settings, self.timeline, self.venues, day))

    def watched(self, day: date, until_ns: int) -> dict[tuple[str, Venue], list[int]]:
        """Each (symbol, venue) that held a slot on ``day`` (this host's), and its minutes.

        The minutes are those closed by ``until_ns``: none if it never held a slot a whole
        minute. A slot decision's venue is its registration's: each venue is watched (and
        reconciled against its own bars) on its own.
        """
        lo = int(datetime.combine(day, time(0), tzinfo=KST).timestamp()) * _NS
        hi, host = lo + 86_400 * _NS, self.settings.supervisor.host
        with self.engine.connect() as conn:
            events = {
                cast(Venue, venue): slot_events_between(conn, lo, hi, host, venue)
                for venue in slot_venues_between(conn, lo, hi, host)
            }
        edge = int(self.config.verify_edge_s * _NS)
        return {
            (symbol, venue): watched_minutes(spans, edge, until_ns)
            for venue, held in events.items()
            for symbol, spans in held_spans(held, self._end_ns(day, venue)).items()
        }

    def reconciled_whole(
        self, day: date, watched: Mapping[tuple[str, Venue], list[int]]
    ) -> set[str]:
        """The symbols of ``day`` (`work_key`) with every ``watched`` minute reconciled here.

        Their stored reconciliation of the venue, by this host, reached their last watched
        minute. One run during the session (``verify``, whose date is today by default)
        compared only the minutes closed by then; counting it as done would leave the rest of
        the day's minutes unchecked, a loss found by nobody.
        """
        with self.engine.connect() as conn:
            reached = last_reconciled_minutes(conn, day, self.settings.supervisor.host)
        return {
            work_key(symbol, venue)
            for (symbol, venue), last in reached.items()
            if last >= max(watched.get((symbol, cast(Venue, venue)), ()), default=last)
        }

    async def verify_day(
        self,
        day: date,
        skip: set[str] | None = None,
        attempt: int = 1,
        venues: frozenset[Venue] | None = None,
    ) -> DayResult:
        """Reconcile ``day``'s watched minutes that have closed (not ``skip``'s, by `work_key`).

        ``venues``: those venues' alone (None: every venue's).
        """
        until = min(self._end_ns(day), self.clock.now_ns() - int(self.config.settle_s * _NS))
        work = deque(
            (symbol, venue, minutes)
            for (symbol, venue), minutes in sorted(self.watched(day, until).items())
            if minutes
            and work_key(symbol, venue) not in (skip or set())
            and (venues is None or venue in venues)
        )
        result = DayResult(day, attempt, venues=venues)
        if not work:
            return result
        today = now_utc(self.clock).astimezone(KST).date()

        async def lane(client: KisClient) -> None:
            while work:
                symbol, venue, minutes = work.popleft()
                if not await self._symbol(client, day, today, symbol, venue, minutes, result):
                    work.appendleft((symbol, venue, minutes))  # for a lane of another account
                    return

        await asyncio.gather(*(lane(client) for client in self.lanes))
        result.not_offered = {work_key(symbol, venue) for symbol, venue, _ in work}
        if result.not_offered and not result.reconciled and not result.failed:
            return result  # nothing to report: the accounts' warning says why
        self._report(result)
        return result

    async def _symbol(
        self,
        client: KisClient,
        day: date,
        today: date,
        symbol: str,
        venue: Venue,
        minutes: list[int],
        result: DayResult,
    ) -> bool:
        """Reconcile one symbol's minutes on ``venue``, against that venue's bars.

        False if ``client``'s account is not offered ``day``'s bars: that account's lane stops
        there (its warning raised once); anything else that fails is the symbol's failure
        (`DayResult.failed`). Only the venue's own stored trades, recovered bars and gaps are
        compared: another venue's never make a minute complete, recovered or explained.
        """
        before = client.requests
        label, key = self.config.bar_label, work_key(symbol, venue)
        bars: dict[int, int] = {}
        try:
            for run in runs_of(minutes, _JOIN_NS):
                found = await fetch_bars(client, symbol, run, today, label, venue)
                bars.update((minute, bar.volume) for minute, bar in found.items())
        except KisPaperRefused as exc:
            self._not_offered(client.alias, day, str(exc))
            return False
        except KisError as exc:
            result.failed[key] = str(exc)[:200]
            log.warning("reconciliation of %s on %s: %s", key, day, exc)
            return True
        lo, hi = minutes[0], minutes[-1] + MINUTE_NS
        try:
            with self.engine.connect() as conn:
                stored = tick_minutes(conn, symbol, lo, hi, venue)
                added = tick_minutes(conn, symbol, lo, hi, venue, recovered=True)
                recovered = recovered_bar_minutes(conn, symbol, lo, hi, venue)
                recorded = gaps_of(conn, symbol, lo, hi, venue)
                gaps = [(g, start, end) for g, start, end, _, _ in recorded]
        except DATABASE_ERRORS as exc:  # as a failed fetch: the next run's
            self.reads.on_failure()
            log.warning("reconciliation of %s on %s: the database: %s", key, day, exc)
            result.failed[key] = f"the database: {error_reason(exc)}"[:200]
            return True
        shift = label_shift(minutes, stored, bars)
        if shift:
            try:
                bars = await self._shifted_bars(client, symbol, minutes, today, shift, venue)
            except KisError as exc:
                result.failed[key] = str(exc)[:200]
                return True
            self._label_shifted(day, symbol, shift)
        session_of = functools.partial(self.venues.session_of_ns, venue)
        by_trades = {minute: volume for minute, (volume, _) in added.items()}
        checks = check_minutes(minutes, stored, bars, recovered, gaps, session_of, by_trades)
        for n, check in enumerate(checks):
            if shift:
                # Gap recovery reads bars with the same label: a short minute is left for a
                # run after the setting is changed, never recovered with a neighbour's bar.
                if check.status == "complete":
                    checks[n] = msgspec.structs.replace(check, status="shifted")
            elif check.status == "short" and not check.gap_id:  # a detection miss: a gap now
                gap_id = f"{_ID}{key}:{check.minute_ns}"
                self.send(
                    GapDetected(
                        gap_id=gap_id,
                        symbol=symbol,
                        start_ns=check.minute_ns,
                        end_ns=check.minute_ns + MINUTE_NS - STAMP_NS,  # its last stamp
                        reason="reconciliation",
                        venue=venue,
                        trading_session=check.trading_session,
                    )
                )
                checks[n] = msgspec.structs.replace(check, gap_id=gap_id)
        calls = client.requests - before
        missing = sum(c.bar_volume - c.stored_volume for c in _short(checks))
        misses = misses_of(checks)
        self.send(
            Reconciliation(
                trade_date=day,
                symbol=symbol,
                minutes=tuple(checks),
                missing_volume=missing,
                misses=misses,
                calls=calls,
                venue=venue,
            )
        )
        result.add(key, checks, calls)
        return True

    def _not_offered(self, alias: str, day: date, reason: str) -> None:
        """Account ``alias`` cannot reconcile ``day`` (a paper one, an earlier day): warn once."""
        log.info("reconciliation of %s: not on account %s: %s", day, alias, reason)
        self.alerts.raise_(
            NOT_OFFERED_ALERT,
            alias,
            "warning",
            f"{alias} is a paper account: KIS does not give it an earlier day's minute bars "
            f"(FHKST03010230), so it cannot reconcile a day once it is over (the first: {day}); "
            "the day's own reconciliation after the close still runs",
            {"account": alias, "day": day.isoformat()},
        )

    async def _shifted_bars(
        self,
        client: KisClient,
        symbol: str,
        minutes: list[int],
        today: date,
        shift: int,
        venue: Venue,
    ) -> dict[int, int]:
        """Each watched minute's bar volume as KIS labels it ``shift`` minutes off."""
        step = shift * MINUTE_NS
        bars: dict[int, int] = {}
        for run in runs_of(minutes, _JOIN_NS):
            wider = sorted(set(run) | {m + step for m in run})  # the neighbours at the ends too
            found = await fetch_bars(client, symbol, wider, today, self.config.bar_label, venue)
            bars.update((m, found[m + step].volume) for m in run if m + step in found)
        return bars

    def _label_shifted(self, day: date, symbol: str, shift: int) -> None:
        """Say once (per shift) that the bars agree with the stored trades only shifted."""
        if shift in self._shifts_alerted:
            return
        self._shifts_alerted.add(shift)
        label = self.config.bar_label
        self.send(
            Alert(
                severity="error",
                code="bar_label_shifted",
                context={"shift_minutes": str(shift), "bar_label": label, "symbol": symbol},
                message=f"{day}: KIS's minute bars agree with the stored trades only shifted by "
                f"{shift:+d} minute ({symbol} first): {advice(shift, label)}; their minutes "
                "are recorded as shifted, recovered bars may be a minute off",
            )
        )

    def _report(self, result: DayResult) -> None:
        """The run's alerts: misses and excess (warnings), failures (error), figures (info)."""
        figures = result.summary()
        fields = msgspec.structs.asdict(figures)
        context = {k: str(v) for k, v in fields.items() if k != "failed"}
        day = result.day.isoformat()
        if result.attempt > 1:  # its figures are the retried symbols', not the day's
            day += f" (retry {result.attempt - 1}: the symbols earlier runs could not reconcile)"
        if result.misses:
            self.send(
                Alert(
                    severity="warning",
                    code="reconciliation_misses",
                    context=context,
                    message=f"{day}: {result.misses} watched minutes short with no gap "
                    f"recorded ({result.missing_volume:,} shares); recovering them",
                )
            )
        if result.statuses["excess"]:
            self.send(
                Alert(
                    severity="warning",
                    code="reconciliation_excess",
                    context=context,
                    message=f"{day}: {result.statuses['excess']} minutes hold more volume "
                    "than the exchange's bar (trades stored twice or stamped elsewhere)",
                )
            )
        if result.failed:
            self.alerts.raise_(
                FAILED_ALERT,
                result.subject,
                "error",
                f"{day}: no bars for {len(result.failed)} symbols: "
                + ", ".join(f"{s} ({why})" for s, why in sorted(result.failed.items()))[:1500],
                context,
            )
        self.send(
            Alert(
                severity="info",
                code="reconciliation_done",
                context=context,
                message=f"{day}: {figures.watched_minutes} watched minutes of "
                f"{figures.symbols} symbols, {completeness_text(figures)}, "
                f"{result.misses} misses, {result.calls} REST calls",
            )
        )
        log.info("reconciliation %s: %s", day, fields)

    # ------------------------------------------------------------------ the daemon's days

    async def run_daily(self, stop: asyncio.Event) -> None:
        """Reconcile each session day once its streams have ended and settled, until ``stop``.

        Each venue's once its own stream has (`stream_ends`): KRX's after 15:00, Nextrade's
        after its close when Track B follows it there.

        First what is left of the last session before today: the symbols it watched that
        were not reconciled whole (none left: nothing is fetched). Its stream ended while no
        daemon ran (stopped for the night, a host down), or the daemon stopped midway through
        its reconciliation, and no later run would ever come back to them.
        """
        day = now_utc(self.clock).astimezone(KST).date()
        before = self.timeline.calendar.previous_session(day)
        await self._settle(before, stop)
        if not stop.is_set():
            self._settled(self.stream_end(before))
        while not stop.is_set():
            for end, venues in (
                self.stream_ends(day) if self.timeline.calendar.is_session(day) else []
            ):
                due = end + timedelta(seconds=self.config.verify_delay_s)
                await sleep_unless(self.clock, self._until(due), stop)
                if stop.is_set():
                    return
                await self._settle(day, stop, venues)
                if stop.is_set():
                    return
                self._settled(end)
            day += timedelta(days=1)
            await sleep_unless(
                self.clock, self._until(datetime.combine(day, time(0), tzinfo=KST)), stop
            )

    def _until(self, at: datetime) -> float:
        return at.timestamp() - self.clock.now_ns() / _NS

    async def _settle(
        self, day: date, stop: asyncio.Event, venues: frozenset[Venue] | None = None
    ) -> None:
        """Reconcile ``day``'s symbols not reconciled whole; retry failures, then give up loudly.

        ``venues``: those venues' alone (None: every venue's). A symbol reconciled again finds
        the gaps its earlier run published among the recorded gaps, so its short minutes are
        not published twice.
        """
        end = self._end_ns(day)
        what = f"the reconciliation of {day}'s reads"
        done = await self.reads.read(
            lambda: self.reconciled_whole(day, self.watched(day, end)), what, stop
        )
        if done is None:
            return
        which = "every venue" if venues is None else ", ".join(sorted(venues))
        log.info("reconciling %s (%s): %d symbols reconciled before", day, which, len(done))
        result = DayResult(day)
        attempt = 1
        while attempt <= self.config.verify_attempts:
            try:
                result = await self.verify_day(day, done, attempt, venues)
            except DATABASE_ERRORS as exc:  # its read of the day's slots
                pause = self.reads.failed(what, exc)
                with contextlib.suppress(TimeoutError):  # wall time, as `ReadRetries.read`
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    return
                continue  # no attempt: nothing was asked
            self.reads.succeeded()
            done |= result.reconciled
            attempt += 1
            if not result.failed:
                log.info("reconciliation of %s done: %d symbols", day, len(done))
                self.alerts.resolve(
                    FAILED_ALERT,
                    failed_subject(day, venues),
                    f"{day}: every symbol reconciled ({len(done)}; run {attempt - 1})",
                )
                return
            if attempt <= self.config.verify_attempts:
                await sleep_unless(self.clock, self.config.backoff_max_s, stop)
                if stop.is_set():
                    return
        self.alerts.raise_(
            FAILED_ALERT,
            failed_subject(day, venues),
            "critical",
            f"{day}: {len(result.failed)} symbols could not be reconciled after "
            f"{self.config.verify_attempts} runs: {', '.join(sorted(result.failed))}"[:2000],
        )


def day_stream_ends(settings: Settings, day: date) -> StreamOrder:
    """When Track B's streams of ``day`` end under ``settings`` (`Verifier.stream_ends`).

    In order, each with the venues ending then (None: all): `Verifier.run_daily` reconciles
    each a ``verify_delay_s`` after it.
    """
    timeline = timeline_from(settings.phases, settings.calendar)
    venues = venues_from(settings.venues, timeline)
    return _in_order(_stream_ends(settings, timeline, venues, day))


def _stream_ends(settings: Settings, timeline: Timeline, venues: Venues, day: date) -> StreamEnds:
    closing = dict((p, at) for at, p in timeline.schedule.starts(day))
    config = settings.track_b
    return stream_ends(
        venues,
        day,
        closing[Phase.TRACK_A_CLOSING],
        krx_to_close=bool(config.feeds.krx_closing_auction),
        nxt_after_market=bool(config.feeds.nxt_after_market),
        krx_after_market=bool(config.feeds.krx_after_market),
    )


def _in_order(ends: StreamEnds) -> StreamOrder:
    if ends.last <= ends.krx:
        return [(ends.krx, None)]
    return [(ends.krx, frozenset({"KRX"})), (ends.last, None)]
