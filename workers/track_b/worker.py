"""The ``track_b`` session worker: context sync, then slots re-evaluated while streaming.

1. The day's universe (from the database) gives each symbol's references: market cap,
   previous close, 20-day volume and 14-day ATR.
2. At ``sync_lead_s`` before full operation (09:29:50), Track A's snapshots of the opening
   half hour are read from the database: they feed the trigger engine and the context
   ranking, whose best become the first candidates. Without them the start is degraded
   (a warning alert): slots fill by market cap until triggers fire. A start after full
   operation began replays the day's snapshots so far instead (`workers.track_b.startup`).
3. From full operation on, every account's session streams its slots. Every
   ``evaluate_s``: new Track A snapshots from the feed, trade velocity from the stream, the
   pins of ``observer track-b slots``, and the largest market caps not barred (the default
   placement, weight 1, one per open slot) become candidates; the slot manager decides;
   the collector applies.
4. The overflow rate of the last hour is watched against ``overflow_alert_pct``: one
   ``track_b_overflow`` alert per episode and severity, resolved once the rate is back at
   half the warning level (`workers.track_b.session_alerts`). The session's end resolves
   the overflow and the session's notices (refusals, closed slots, a degraded start, a
   restart) still open.
5. The guard (`workers.track_b.guard`) bars what must leave its slot: a registration KIS
   refused (it wakes the loop at once), a symbol halted or locked at a price limit.
6. With ``[track_b] shard`` (several collectors hosts) every candidate, pin and slot taken
   back is of this host's shard alone (`observer.cluster.shards`); other shards' firings are
   counted.

A Track B that starts after one died mid-session takes back the slots it held, each with a
``process_restart`` gap and at least its trigger's TTL from now (`TrackB._resume`). One
that starts while the writer has not stored the dead run's last events, or while the
database fails the reads, streams: it takes those slots back if the writer catches up
before its first placement, and releases them, each with its gap, if it catches up later
(`workers.track_b.handover`). The heartbeat and the sessions run beside the day's work
(`observer.runtime.alongside`): if either fails, the process ends and is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, Row

from bus.events import Alert, PriceSnapshot, Severity
from bus.feed import FeedSubscriber
from bus.producer import Producer
from observer.alerts.states import Notice, open_notices_of, open_subjects_of
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import timeline_from
from observer.cluster.hosts import own_source
from observer.cluster.transport import feed_subscriber
from observer.config.tree import Settings
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS, ReadRetries
from observer.db.queries import universe_references
from observer.db.readers import reader_engine
from observer.db.slot_queries import AsOf, held_slots
from observer.errors import KisError
from observer.kis.client import RateLimits
from observer.kis.frames import FrameLimits
from observer.kis.session import open_account, token_alert
from observer.kis.token_cache import key_digest
from observer.process.heartbeat import FAILING_S, Notifier
from observer.process.private_files import write_private
from observer.runtime import (
    AsyncWorker,
    alongside,
    beat_forever,
    earlier_run_stored,
    sleep_unless,
)
from workers.track_b import SOURCE
from workers.track_b.checks import Checks
from workers.track_b.collect import Collector
from workers.track_b.gaps import SilenceRule
from workers.track_b.guard import SlotGuard
from workers.track_b.handover import (
    AccountAlerts,
    Earlier,
    LateHandover,
    PendingRuns,
    release_late,
)
from workers.track_b.kept_references import KeptReferences
from workers.track_b.lag import FEED_LAGGING
from workers.track_b.outages import ACCOUNT_DOWN
from workers.track_b.pins import PinFile, slots_path, unplaced
from workers.track_b.read_back import ReadBack
from workers.track_b.refused import DATA_REFUSED
from workers.track_b.rejections import BAD_FRAMES, DATA_REJECTED
from workers.track_b.session_alerts import (
    DEGRADED,
    OVERFLOW,
    SESSION_CODES,
    OverflowWatch,
    SessionNotices,
)
from workers.track_b.slots import Candidate, Decision, SlotBook
from workers.track_b.stale import STREAM_STALE
from workers.track_b.startup import (
    LateSync,
    Synced,
    context_sync,
    day_so_far,
    lasting,
    take_back,
)
from workers.track_b.triggers import Reference, TriggerEngine

__all__ = ["OVERFLOW", "SOURCE", "TrackB", "preconnect_at"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_SNAPSHOTS = ["price_snapshot."]  # the feed's topics Track B follows
# How long a start waits for the writer to store what an earlier run left before it streams
# without it (`workers.track_b.handover`): a writer that serves stores it within a second.
_CATCH_UP_S = 10.0
RESUME_FAILED = "track_b_resume_failed"
_POLL_S = 2.0  # simulated seconds between looks for a universe that is not in yet


class TrackB(AsyncWorker):
    """One Track B process."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Notifier,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.track_b
        self.timeline = timeline_from(settings.phases, settings.calendar)
        self.data_dir = Path(settings.paths.data_dir)
        self._engine: Engine = reader_engine(settings.database, "track_b")
        self.overflow = OverflowWatch(
            self.config.overflow_alert_pct, self.producer.send, self._alert
        )
        self.notices = SessionNotices(self.producer.send)
        self._overflowed: dict[str, tuple[str, int]] = {}  # symbol -> firing last recorded
        # Served from the start: a rule's increase() misses a counter's first appearance.
        self.counters: dict[str, float] = {"snapshot_readings_failed": 0}
        self._slots_written = True  # slots.json: False while writes fail (said once)
        # The start-up's reads wait for a database that fails them (`ReadRetries`).
        self._reads = ReadRetries(1.0, 30.0, lambda: self._count("database_reads_failed"))
        day = now_utc(clock).astimezone(KST).date()
        self.day_start_ns = int(datetime.combine(day, datetime.min.time(), KST).timestamp()) * _NS
        day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), KST)
        self.guard = SlotGuard(self.config, int(day_end.timestamp()) * _NS, self._alert)
        self.collector: Collector | None = None  # once the day's sessions are set up
        # What an earlier run of the day left, while the writer had not stored it (or a read
        # of its slots failed): taken over during the streaming (`workers.track_b.handover`).
        self.handover: LateHandover | None = None
        # runs that ended before their take-over
        self.pending = PendingRuns(self.data_dir, day, self.producer.send)
        self.pin_file = PinFile(self.data_dir, self.producer.send)

    # ------------------------------------------------------------------ the day

    async def run(self) -> None:
        """Run the day's Track B until ``stop``; it beats from the start, universe or not."""
        try:
            async with alongside(beat_forever(self.notifier, self._beat_counters)):
                await self._day()
        finally:
            self._engine.dispose()

    def _open_account_alerts(self, through_seq: int | None = None) -> AccountAlerts:
        """The subjects of the account alerts an earlier run left open, as `take_over` takes them.

        ``through_seq``: the earlier runs' last seq (this run's own alerts are left out).
        """
        codes = (ACCOUNT_DOWN, STREAM_STALE, FEED_LAGGING, DATA_REFUSED, DATA_REJECTED, BAD_FRAMES)
        with self._engine.connect() as conn:
            found = open_subjects_of(conn, self.settings, SOURCE, codes, through_seq)
        down, stale, lagging, refused, rejected, flooded = (found[code] for code in codes)
        return down, stale, lagging, refused, rejected, flooded

    def _open_session_alerts(self, through_seq: int | None = None) -> list[Notice]:
        """The overflow and session alerts an earlier run left open (a restart)."""
        codes = (OVERFLOW, *SESSION_CODES)
        with self._engine.connect() as conn:
            return open_notices_of(conn, self.settings, SOURCE, codes, through_seq)

    async def _open_alerts(self, as_of: AsOf) -> tuple[AccountAlerts, list[Notice]] | None:
        """The alerts the earlier runs left open; None if the database fails the read.

        Track B streams then, and takes them over once they read (`LateHandover`): a start
        during a database outage waited for it, 600 s and then again after each restart.
        """
        try:
            account = await asyncio.to_thread(self._open_account_alerts, as_of.seq)
            session = await asyncio.to_thread(self._open_session_alerts, as_of.seq)
        except DATABASE_ERRORS as exc:
            self._count("database_reads_failed")
            log.warning(
                "cannot read the alerts an earlier run left open (%s): Track B streams, and "
                "takes them and its slots over once they read",
                error_reason(exc),
            )
            return None
        return account, session

    def _take_over(self, open_alerts: Sequence[Notice]) -> None:
        """An earlier run's overflow episode and session notices are this run's to resolve."""
        self.overflow.take_over([n for n in open_alerts if n.code == OVERFLOW])
        self.notices.take_over([n for n in open_alerts if n.code != OVERFLOW], self.day_start_ns)

    async def _day(self) -> None:
        day = now_utc(self.clock).astimezone(KST).date()
        starts = {phase: at for at, phase in self.timeline.schedule.starts(day)}
        references = await self._references(day)
        if references is None:
            return
        as_of = AsOf(self.producer.last_seq, self.clock.now_ns())  # an earlier run's events
        runs = self.pending.read()  # earlier runs that ended before their take-over
        # Its beats are `beat_forever`'s: the wait is no failure while it lasts this little.
        stored = await earlier_run_stored(self.producer, Notifier(None), self.stop, _CATCH_UP_S)
        if self.stop.is_set():
            return
        taken = await self._open_alerts(as_of) if stored else None
        if taken is None:  # the writer is behind, or the database fails the reads
            if not stored:
                log.warning(
                    "the writer has not stored what an earlier run of the day left: Track B "
                    "streams, and takes over its slots and open alerts once they are stored"
                )
            self._streams_before_taking_over(LateHandover(self.producer, day, as_of, runs, True))
            taken = (set(), set(), set(), set(), set(), set()), []
        account_alerts, session_alerts = taken
        engine = TriggerEngine(
            self.config,
            references,
            starts[Phase.TRACK_A_ONLY],
            self.settings.track_a.interval_min * 60.0,  # a snapshot trigger waits that long
        )
        aliases = [a.alias for a in self.settings.kis.accounts]
        # Track B makes no REST calls but the token's: its clients get a token budget.
        limits = RateLimits({alias: 1.0 for alias in aliases})
        accounts = [
            open_account(
                self.settings.kis,
                a,
                self.clock,
                limits,
                on_unavailable=token_alert(a, self.producer.send),
            )
            for a in aliases
        ]
        collector = Collector(
            accounts,
            self.clock,
            self.producer.send,
            books=self.config.books,
            silence=SilenceRule(
                self.config.silence_expected_s,
                self.config.silence_tolerance_s,
                self.config.silence_cadence_factor,
                self.config.silence_window_s,
                resolution_s=1.0,  # trades are stamped HHMMSS
            ),
            in_session=self._in_continuous_trading,
            unhealthy_after_s=self.config.unhealthy_after_s,
            velocity_window_s=self.config.velocity_window_s,
            on_refused=self.guard.on_refused,
            reconnects_per_hour=self.config.reconnects_per_hour,
            idle_silence_s=self.config.idle_silence_s,
            identify=self.config.identify_idle,
            stale_after_s=self.config.stale_after_s,
            lag_alert_s=self.config.lag_alert_s,
            checks=Checks.of(self.config),
            limits=self.guard.trading.limits,  # the day's, from Track A's snapshots
            frame_limits=FrameLimits(
                self.config.max_frame_bytes, self.config.bad_frames_per_minute
            ),
        )
        self.collector = collector
        collector.take_over(*account_alerts)
        self._take_over(session_alerts)
        capacity = self.config.slots_per_account
        book = SlotBook(aliases, capacity)
        self.counters["capacity_per_account"] = capacity
        try:
            full = starts[Phase.FULL_OPERATION]
            await self.sleep_until(preconnect_at(starts, self.config.preconnect_after_s))
            if self.stop.is_set():
                return
            # The sessions open now with nothing registered (the pre-connect) and stream from
            # full operation, beside the evaluations: a failure of either ends the process.
            ended = asyncio.Event()  # the sessions' end: after KIS confirmed the releases
            async with alongside(collector.run(ended)) as (streaming,):
                await self.sleep_until(full.timestamp() - self.config.sync_lead_s)
                if self.stop.is_set():
                    return
                # Subscribed before the database is read: a snapshot stored after the read is
                # in the feed (one stored before it in both: the engine takes it once).
                with contextlib.closing(
                    feed_subscriber(self.settings.bus, self.settings.paths.run, _SNAPSHOTS)
                ) as feed:
                    slots = capacity * len(aliases)
                    context = self._sync_or_degrade(full, engine, slots)
                    late = LateSync(self.config, full, slots) if context is None else None
                    await self.sleep_until(full.timestamp())
                    closing_at = starts[Phase.TRACK_A_CLOSING]
                    await self._rekey(collector, closing_at.timestamp())
                    # The slots taken back stand as candidates beside the opening's meanwhile.
                    restored = await self._resume(day, engine, book, collector, as_of, runs)
                    candidates = [*(context or []), *restored]
                    try:
                        await self._follow(
                            feed, engine, book, collector, candidates, closing_at, late
                        )
                    finally:
                        if late is not None:
                            late.abandon()  # its read, if the stream ends during one
                        if self.handover is not None:
                            self.handover.abandon()
                await self._end(book, collector)
                await collector.settle()  # read on to each release's confirmation
                await self.stop.wait()
                ended.set()
                await streaming
        finally:
            for account in accounts:
                await account.aclose()

    async def _end(self, book: SlotBook, collector: Collector) -> None:
        """15:00: every slot released, and shown so (`slots list`, the heartbeat's counters).

        Not shown, ``slots.json`` listed every slot as held until the next day's first
        evaluation. What an earlier run left and was never taken over is alerted.
        """
        if self.handover is not None and self.stop.is_set():
            log.warning(
                "Track B stops before it took over what an earlier run of the day left: the "
                "next run of the day takes it over%s",
                f" ({self.pending.path} names the runs)"
                if self.pending.named
                else " (the runs could not be kept: its gaps may start late, and the day's "
                "reconciliation checks their minutes)",
            )
        elif self.handover is not None:
            self._alert(
                "error",
                RESUME_FAILED,
                "what an earlier Track B of the day left was never read (the writer had not "
                "stored it, or the database failed the read): if it held slots, they are not "
                "released and their gaps not opened",
            )
        self.handover = None
        ending = (book.release(s, "Track B ends at 15:00") for s in book.held())
        await collector.apply([d for d in ending if d], book.holdings())
        self._show(book, collector, {})  # no slot held, no pin waits for one any more
        ended = "Track B stopped" if self.stop.is_set() else "the session ended"
        over = f"{ended}: every slot is released"
        self.overflow.end(f"overflow: {over}")
        self.notices.end(over)

    async def _rekey(self, collector: Collector, closing: float) -> None:
        """Approval keys that last the session; a pre-connected session restarts on a new one.

        The pre-market renewal (08:30) replaces the key a session opened at 08:03 presented:
        it starts again on the new one (planned: no backoff, no budget) before registering.
        Every account at once, and none waits for the token job: a reader takes the key at
        hand (the job's renewal, if it made one); one without a key is left to its session,
        which waits for it and is down alone (`Collector`), while the others stream.
        """
        await asyncio.gather(
            *(self._rekey_one(collector, alias, closing) for alias in collector.accounts)
        )

    async def _rekey_one(self, collector: Collector, alias: str, closing: float) -> None:
        tokens = collector.accounts[alias].tokens
        try:
            if tokens.issuer:  # renewed if it would not last: one request, within KIS's minute
                key = await tokens.approval_key(lasting_s=closing - self.clock.now_ns() / _NS)
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

    async def _resume(
        self,
        day: date,
        engine: TriggerEngine,
        book: SlotBook,
        collector: Collector,
        as_of: AsOf,
        runs: list[AsOf],
    ) -> list[Candidate]:
        """Take back the slots an earlier Track B of the day left held (it died), with a gap each.

        A crashed process released nothing: its slots are in the database as held. Each goes
        back into the slot book as it was (the report keeps counting it as watched) with a
        ``process_restart`` gap (`workers.track_b.startup.take_back`), lasting at least its
        trigger's TTL from now: the candidates it stands as until then are returned.

        Before this run places a slot: a take-over left for later (the writer had not stored
        the earlier run's events at the start) happens here if the writer has caught up
        since. Otherwise, as when the database fails the read, the streams go on and the
        earlier slots are released later (`LateHandover`).
        """
        handover = self.handover
        if handover is not None and not handover.due():
            return []  # the writer is still behind
        if handover is None:
            handover = LateHandover(self.producer, day, as_of, runs, alerts=False)
        try:
            earlier = await asyncio.to_thread(self._earlier, handover)
        except DATABASE_ERRORS as exc:  # the streams go on: said, not fatal
            log.warning(
                "cannot read the slots an earlier run of the day held (%s): tried again "
                "while the streams go on",
                error_reason(exc),
            )
            handover.backoff.failed()
            self._streams_before_taking_over(handover)
            return []
        self._taken_over(handover, collector, earlier)
        held = earlier.held
        if not held:
            return []
        standing = await take_back(
            held,
            engine,
            book,
            collector,
            lambda trigger: lasting(engine, trigger),
            self.clock.now_ns(),
        )
        # Pinned slots taken back stay pinned while the pins file does not read.
        self.pin_file.pins |= {h.candidate.symbol for h in book.holdings() if h.candidate.pinned}
        self._alert(
            "warning",
            "track_b_restarted",
            f"Track B restarted holding {len(held)} slots: a process_restart gap for each, "
            "recovered from minute bars",
        )
        log.info("took back %d slots held before the restart", len(held))
        return standing

    def _streams_before_taking_over(self, handover: LateHandover) -> None:
        """Stream without what an earlier run left; take it over later (`LateHandover`).

        This run's start is kept until then, for a successor if this run ends first.
        """
        if self.handover is None and not self.pending.write([*handover.runs, handover.as_of]):
            self._count("takeovers_unwritten")
        self.handover = handover

    def _taken_over(self, handover: LateHandover, collector: Collector, earlier: Earlier) -> None:
        """What an earlier run left is this run's now: its alerts; the runs named go once stored."""
        self.handover = None
        if handover.alerts:  # the sessions are open: an account up now was confirmed before
            collector.take_over(*earlier.account_alerts, late=True)
            self._take_over(earlier.session_alerts)
        self.pending.taken_over()  # the runs it names: emptied once this is stored

    def _universe_references(self, day: date) -> Sequence[Row[str, int, int, int, Decimal]] | None:
        with self._engine.connect() as conn:
            return universe_references(conn, day)

    def _earlier(self, handover: LateHandover) -> Earlier:
        """What an earlier run of the day left, as of this one's start (blocking)."""
        through = handover.as_of.seq
        none: AccountAlerts = (set(), set(), set(), set(), set(), set())
        account = self._open_account_alerts(through) if handover.alerts else none
        session = self._open_session_alerts(through) if handover.alerts else []
        with self._engine.connect() as conn:  # this host's
            source = own_source(self.settings.supervisor, SOURCE)
            held = held_slots(conn, source, handover.day, handover.as_of, handover.runs)
        return Earlier(account, session, held)

    def _hand_over_late(self, book: SlotBook, collector: Collector) -> None:
        """Take over what an earlier run left once the writer stored it (`LateHandover`).

        Its read runs beside the evaluations, as the late context sync's does.
        """
        handover = self.handover
        if handover is None:
            return
        if handover.due():
            handover.start(lambda: self._earlier(handover))
            return

        def failed(why: str, pause: float) -> None:
            self._count("database_reads_failed")
            log.warning(
                "cannot read what an earlier run of the day left (%s); again in %.1f s",
                why,
                pause,
            )

        if (earlier := handover.taken(failed)) is None:
            return
        self._taken_over(handover, collector, earlier)
        if earlier.held:
            released = release_late(earlier.held, book, collector)
            self._alert(
                "warning",
                "track_b_restarted",
                f"Track B restarted holding {len(earlier.held)} slots, read only after it had "
                f"placed its own: {released} released; a process_restart gap for each, "
                "recovered from minute bars",
            )

    async def _references(self, day: date) -> dict[str, Reference] | None:
        """The universe's references, waiting for the universe job if needed.

        A read the database fails takes those an earlier run read today (`KeptReferences`),
        or waits for the database if there are none.
        """
        kept = KeptReferences(self.data_dir, day, self.producer.send)
        what = "the universe's references"
        while not self.stop.is_set():
            try:
                rows = await asyncio.to_thread(self._universe_references, day)
            except DATABASE_ERRORS as exc:
                if (references := kept.read()) is not None:
                    self._count("database_reads_failed")
                    log.warning(
                        "cannot read %s (%s): Track B starts on those read earlier today",
                        what,
                        error_reason(exc),
                    )
                    return references
                # None kept: the read policy waits for the database (counted, said, beating).
                pause = self._reads.failed(what, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), pause)
                continue
            self._reads.succeeded()
            if rows is not None:
                references = {
                    r.symbol: Reference(
                        r.symbol, r.market_cap, r.prev_close, r.avg_volume_20d, float(r.atr_14)
                    )
                    for r in rows
                }
                kept.write(references)
                return references
            await self.sleep(_POLL_S)
        return None

    def _in_continuous_trading(self, ns: int) -> bool:
        phase = self.timeline.phase_at(datetime.fromtimestamp(ns / _NS, KST))
        return phase in (Phase.TRACK_A_ONLY, Phase.FULL_OPERATION, Phase.TRACK_A_CLOSING)

    # ------------------------------------------------------------------ context sync

    def _sync_or_degrade(
        self, full: datetime, engine: TriggerEngine, slots: int
    ) -> list[Candidate] | None:
        """`_sync`; None if the database fails it: alerted, and tried again (`LateSync`).

        At 09:29:50 the sessions are open: a failed read ended them all, and the restarts
        met the same database. Meanwhile the slots fill by market cap.
        """
        try:
            return self._sync(full, engine, slots)
        except DATABASE_ERRORS as exc:
            self._alert(
                "warning",
                DEGRADED,
                f"context sync could not read Track A's snapshots ({error_reason(exc)}): "
                "slots fill by market cap until it can or triggers fire",
            )
            return None

    def _sync(self, full: datetime, engine: TriggerEngine, slots: int) -> list[Candidate]:
        """Track A's day into the engine; the context's first candidates (may be []).

        In the morning, the opening's snapshots; after full operation began (a restart, a late
        start), every snapshot of the day so far (`workers.track_b.startup.context_sync`).
        """
        started = time.perf_counter()
        now = self.clock.now_ns()
        snapshots = day_so_far(self._engine, full, now)
        return self._replay(snapshots, full, engine, slots, now, started).candidates

    def _sync_late(
        self, late: LateSync, engine: TriggerEngine, context: list[Candidate], now: int
    ) -> LateSync | None:
        """The context sync the database failed, tried again (`LateSync`).

        Its candidates join ``context``. The sync still to come, or None: done, or too late
        to offer any. The read runs beside the evaluations (it may wait the reader pool's
        timeout): one round starts it, a later round takes what it read.
        """
        if late.reading is None:
            if now >= late.until_ns:
                log.warning("context sync: given up, its candidates would have lapsed by now")
                return None
            if late.due():
                late.start(lambda: day_so_far(self._engine, late.full, now))
            return late

        def failed(why: str, pause: float) -> None:
            self._count("context_syncs_failed")
            log.warning(
                "context sync: cannot read Track A's snapshots (%s); again in %.1f s", why, pause
            )

        if (snapshots := late.taken(failed)) is None:
            return late
        synced = self._replay(snapshots, late.full, engine, late.slots, now, time.perf_counter())
        context.extend(synced.candidates)
        if synced.openings:
            self.notices.over(DEGRADED, "the context sync went through late")
        return None

    def _replay(
        self,
        snapshots: list[PriceSnapshot],
        full: datetime,
        engine: TriggerEngine,
        slots: int,
        now: int,
        started: float,
    ) -> Synced:
        synced = context_sync(snapshots, self.config, engine, self.guard, full, slots, now)
        seconds = time.perf_counter() - started
        self.counters["context_sync_s"] = round(seconds, 3)
        if not (synced.snapshots if synced.late else synced.openings):
            what = "of the day so far" if synced.late else "of the opening"
            self._alert(
                "warning",
                DEGRADED,
                f"context sync found no Track A snapshots {what}: slots fill by market cap "
                "until triggers fire",
            )
        log.info(
            "context sync%s: %d symbols from %d snapshots in %.3f s, %d candidates",
            " (the day so far)" if synced.late else "",
            synced.openings,
            synced.snapshots,
            seconds,
            len(synced.candidates),
        )
        return synced

    # ------------------------------------------------------------------ streaming

    async def _follow(
        self,
        feed: FeedSubscriber,
        engine: TriggerEngine,
        book: SlotBook,
        collector: Collector,
        context: list[Candidate],
        until: datetime,
        late: LateSync | None = None,
    ) -> None:
        ours = [r for r in engine.references.values() if engine.shard.owns(r.symbol)]
        by_cap = [
            Candidate(
                r.symbol, "market_cap", engine.score(r.symbol, 1.0, 0.0), 0.0, 0.0, r.market_cap
            )
            for r in sorted(ours, key=lambda r: (-r.market_cap, r.symbol))
        ]
        read_back = ReadBack(self._engine, self.clock, self.settings.track_a.interval_min * 60.0)
        while not self.stop.is_set() and self.clock.now_ns() < until.timestamp() * _NS:
            self.guard.wake.clear()
            self._drain(feed, engine, read_back)
            now = self.clock.now_ns()
            if read_back.due(now):
                await self._read_back(read_back, engine, now)
            if late is not None:
                late = self._sync_late(late, engine, context, now)
            self._hand_over_late(book, collector)
            if self.pending.settling and not self.pending.settle(
                collector.restarting(), self.producer
            ):
                self._count("takeovers_unwritten")
            for symbol in book.held():
                engine.on_velocity(symbol, collector.velocity(symbol), now)
                if (tick := collector.latest.get(symbol)) is not None:
                    self.guard.on_tick(tick)
            # A pin lifted is released by the evaluation, and only if nothing else claims it.
            engine.pins = {p for p in self.pin_file.read() if engine.shard.owns(p)}
            closed = self.guard.review(book, engine.pins, now)
            barred = self.guard.barred(now)
            fill = _fill(by_cap, barred, book.capacity * len(book.accounts) - len(book.closed))
            fired = engine.candidates(now)
            if any(not c.pinned for c in fired):  # a degraded start is over: triggers place
                self.notices.over(DEGRADED, "triggers fire: the slots follow them")
            candidates = [*fired, *context, *fill]
            decisions = book.evaluate(
                candidates,
                now,
                collector.healthy(),
                threshold=self.config.replacement_threshold,
                min_hold_ns=int(self.config.min_hold_s * _NS),
                barred=barred,
            )
            waiting = unplaced(engine.pins, book.held(), decisions, barred)
            decisions = [*closed, *(d for d in decisions if self._news(d))]
            await collector.apply(decisions, book.holdings())  # and checked against the book
            self.counters["overflow_pct"] = round(self.overflow.watch(decisions, now), 1)
            self.counters["other_shard"] = engine.other_shard
            self._show(book, collector, waiting)
            await self._nap(self.config.evaluate_s)

    async def _nap(self, seconds: float) -> None:
        """Wait for the next evaluation: ``seconds`` of clock time, less if woken or stopped."""
        nap = asyncio.ensure_future(sleep_unless(self.clock, seconds, self.stop))
        woken = asyncio.ensure_future(self.guard.wake.wait())
        try:
            await asyncio.wait({nap, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            woken.cancel()

    def _news(self, d: Decision) -> bool:
        """Whether to publish: the ledger records each triggered symbol's overflow once.

        Not again for the same firing, and never for a default placement by market cap.
        """
        if d.action != "overflow":
            self._overflowed.pop(d.candidate.symbol, None)
            return True
        if d.candidate.trigger == "market_cap":
            return False
        firing = (d.candidate.trigger, d.candidate.expires_ns)
        if self._overflowed.get(d.candidate.symbol) == firing:
            return False
        self._overflowed[d.candidate.symbol] = firing
        return True

    def _drain(self, feed: FeedSubscriber, engine: TriggerEngine, read_back: ReadBack) -> None:
        while (envelopes := feed.recv(0)) is not None:
            for envelope in envelopes:
                if not isinstance(snapshot := envelope.event, PriceSnapshot):
                    continue
                read_back.saw(snapshot)
                if not engine.seen(snapshot):
                    engine.on_snapshot(snapshot)
                    self.guard.on_snapshot(snapshot)

    async def _read_back(self, read_back: ReadBack, engine: TriggerEngine, now: int) -> None:
        """Take what the feed lost of Track A's snapshots from the database (`ReadBack`).

        A repair: a database that fails it is logged, counted (``snapshot_readings_failed``,
        which `ObserverSnapshotReadingsFailing` watches) and tried again an interval later.
        """
        try:
            snapshots = await asyncio.to_thread(read_back.read, now)
        except DATABASE_ERRORS as exc:
            self._count("snapshot_readings_failed")
            log.warning("cannot read Track A's snapshots back: %s", error_reason(exc))
            return
        read_back.take(snapshots, engine, self.guard, self.clock.now_ns())
        self.counters["snapshots_read_back"] = read_back.read_back

    def _show(self, book: SlotBook, collector: Collector, waiting: Mapping[str, str]) -> None:
        """The slots as ``observer track-b slots list`` shows them (owner-only, atomic).

        ``waiting``: the pins that hold no slot, with why.
        """
        now = self.clock.now_ns()
        rows = [
            {
                "account": h.account,
                "slot": h.slot,
                "symbol": h.candidate.symbol,
                "trigger": h.candidate.trigger,
                "score": round(h.candidate.score, 2),
                "pinned": h.candidate.pinned,
                "since_ns": h.since_ns,
                "state": (self.guard.trading.state(h.candidate.symbol, now) or ("", ""))[1],
            }
            for h in book.holdings()
        ]
        barred = self.guard.shown()
        self.counters.update(
            slots=len(rows),
            ticks=collector.ticks,
            gaps=collector.gaps,
            healthy_accounts=len(collector.healthy()),
            refused=collector.refusals,
            barred=len(barred),
            halted=len(self.guard.bars.of_kind("halted", "limit_locked")),
            closed_slots=len(book.closed),
            pins_unplaced=len(waiting),
            pins_unreadable=int(bool(self.pin_file.unreadable)),
        )
        for account in self.settings.kis.accounts:  # slots held per account: "slots.acct1"
            self.counters[f"slots.{account.alias}"] = sum(
                r["account"] == account.alias for r in rows
            )
        shown = {
            "at_ns": now,
            "slots": rows,
            "barred": barred,
            "closed": [{"account": a, "slot": n} for a, n in sorted(book.closed)],
            "unplaced_pins": [{"symbol": p, "reason": why} for p, why in waiting.items()],
        }
        try:
            write_private(slots_path(self.data_dir), json.dumps(shown).encode())
        except OSError as exc:  # a display: a full disk must not end the streams
            self._count("slots_unwritten")
            if self._slots_written:  # once an episode
                log.warning("cannot write %s: %s", slots_path(self.data_dir), exc)
            self._slots_written = False
            return
        if not self._slots_written:
            log.info("%s is written again", slots_path(self.data_dir))
            self._slots_written = True

    # ------------------------------------------------------------------ plumbing

    def _beat_counters(self) -> dict[str, float]:
        """The heartbeat's counters: the day's, and each account's stream as of now.

        ``failing_s`` while the start-up's reads wait for the database.
        """
        failing = {FAILING_S: self._reads.failing_s()}
        if self.collector is None:
            return {**self.counters, **failing}
        return {**self.counters, **self.collector.account_counters(), **failing}

    def _count(self, counter: str) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + 1

    def _alert(
        self, severity: Severity, code: str, message: str, context: dict[str, str] | None = None
    ) -> None:
        """Log and publish an alert."""
        log.log(logging.INFO if severity == "info" else logging.WARNING, "%s", message)
        self.producer.send(
            Alert(severity=severity, code=code, message=message, context=context or {})
        )
        self.notices.raised(severity, code)


def _fill(by_cap: Sequence[Candidate], barred: Mapping[str, str], slots: int) -> list[Candidate]:
    """The default placement: the ``slots`` largest market caps not barred.

    A barred one (refused for the day, halted) is passed over for the next, or its slot
    would stay empty while the universe has symbols to stream.
    """
    fill: list[Candidate] = []
    for c in by_cap:
        if len(fill) >= slots:
            break
        if c.symbol not in barred:
            fill.append(c)
    return fill


def preconnect_at(starts: dict[Phase, datetime], after_s: float) -> float:
    """When the sessions open (UTC seconds): ``after_s`` into warmup, by full operation at last.

    Shifted days shift it with their phases (``starts`` is the day's, as scheduled).
    """
    at = starts[Phase.WARMUP].timestamp() + after_s
    return min(at, starts[Phase.FULL_OPERATION].timestamp())
