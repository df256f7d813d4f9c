"""The ``track_b`` worker: the day's sessions, with slots re-evaluated while streaming.

`TrackB` wires its parts: the universe's references, the take-over of what an earlier run
left (`workers.track_b.takeover`), the context sync (`workers.track_b.context_sync`), the sessions
(`workers.track_b.sessions`, `Collector`), then an evaluation every ``evaluate_s`` from
triggers, pins and market caps of this host's shard (`SlotBook`, `workers.track_b.slotting`),
the guard barring what must leave a slot. The day has up to four stretches (`Stretch`):
Nextrade's pre-market (08:00-08:50, Nextrade's names on its feed alone, on triggers from
Track A's Nextrade cycles), KRX's day (09:30 to KRX's close, 15:31:30 with a
``krx_closing_auction`` row, else 15:00, on KRX's cycles), Nextrade's after-market (from
there to its close, as the pre-market) and, with a ``krx_after_market`` row, KRX's
after-market (16:00 to 20:00:30 since 2026-09-14, every name again on Track A's KRX cycles,
Nextrade's names on both venues' feeds), which takes the rest of Nextrade's. Each stretch's
end releases what it no longer streams; the last resolves the session's alerts. Between the
first two, KRX's opening auction holds the idle sessions (its row, by default the expected
matches); what a name holds in each part is its row of ``[track_b.feeds]``
(`workers.track_b.registrations`, `workers.track_b.auction`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Sequence
from datetime import date, datetime, time
from decimal import Decimal

from sqlalchemy import Row

from bus.events import PriceSnapshot, Venue
from bus.feed import FeedSubscriber
from observer.calendar.clock import now_utc
from observer.calendar.phases import KST, Phase
from observer.calendar.venues import Venues, stream_ends, venues_from
from observer.cluster.transport import feed_subscriber
from observer.config.workers import Kinds
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.db.queries import Listed, listed_as, universe_references
from observer.db.slot_queries import AsOf
from observer.kis.stream import Feed
from observer.process.heartbeat import Heartbeat
from observer.runtime import (
    alongside,
    beat_forever,
    earlier_run_stored,
    journal_for,
    sleep_unless,
)
from workers.track_b.auction import (
    KRX_CLOSING_FEEDS,
    auction_registrations,
    closing_auction,
    nxt_after_market_auction,
    opening_auction,
)
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.context_sync import ContextSyncing, LateSync
from workers.track_b.earlier_run import LateTakeOver
from workers.track_b.kept_references import KeptReferences
from workers.track_b.pin_standing import PinStandings
from workers.track_b.pins import unplaced
from workers.track_b.read_back import ReadBack
from workers.track_b.session_alerts import DEGRADED
from workers.track_b.sessions import (
    PolicySwitch,
    Stretch,
    Trading,
    open_accounts,
    pre_market,
    preconnect_at,
    rekey,
)
from workers.track_b.slots import SlotBook, SlotCandidate
from workers.track_b.slotting import Slotting, fill
from workers.track_b.takeover import TakeOver
from workers.track_b.triggers import Reference, TriggerEngine
from workers.track_b.vi_feed import VI_FEED_REFUSED, merged, vi_registrations

__all__ = ["TrackB"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_SNAPSHOTS = ["price_snapshot."]  # the feed's topics Track B follows
# How long a start waits for the writer to store what an earlier run left before it streams
# without it (`workers.track_b.earlier_run`): a writer that serves stores it within a second.
_CATCH_UP_S = 10.0
_POLL_S = 2.0  # simulated seconds between looks for a universe that is not in yet


class TrackB(TakeOver, ContextSyncing, Slotting):
    """One Track B process."""

    async def run(self) -> None:
        """Run the day's Track B until ``stop``; it beats from the start, universe or not."""
        try:
            async with alongside(beat_forever(self.notifier, self._beat_counters)):
                await self._day()
        finally:
            self._engine.dispose()

    async def _day(self) -> None:
        day = now_utc(self.clock).astimezone(KST).date()
        starts = {phase: at for at, phase in self.timeline.schedule.starts(day)}
        references = await self._references(day)
        if references is None:
            return
        as_of = AsOf(self.producer.last_seq, self.clock.now_ns())  # an earlier run's events
        runs = self.pending.read()  # earlier runs that ended before their take-over
        # Its beats are `beat_forever`'s: the wait is no failure while it lasts this little.
        stored = await earlier_run_stored(self.producer, Heartbeat(None), self.stop, _CATCH_UP_S)
        if self.stop.is_set():
            return
        taken = await self._open_alerts(as_of) if stored else None
        if taken is None:  # the writer is behind, or the database fails the reads
            if not stored:
                log.warning(
                    "the writer has not stored what an earlier run of the day left: Track B "
                    "streams, and takes over its slots and open alerts once they are stored"
                )
            self._streams_before_taking_over(LateTakeOver(self.producer, day, as_of, runs, True))
            taken = []
        interval_s = self.settings.track_a.interval_min * 60.0  # a snapshot trigger waits so long
        engine = TriggerEngine(self.config, references, starts[Phase.TRACK_A_ONLY], interval_s)
        nextrade = self.config.nextrade_volume_profile
        # Nextrade's names, on Nextrade's day from its profile's open. No volatility spikes: its
        # snapshots' range is its whole day's (in the after-market KRX's session's moves, which
        # the KRX engine judged; in the pre-market mostly the night's gap, on a 12-hour scale).
        nxt_engine = TriggerEngine(
            self.config,
            {symbol: r for symbol, r in references.items() if r.nxt},
            datetime.combine(day, time.fromisoformat(nextrade[0][0]), KST),
            interval_s,
            nextrade,
            volatility=False,
        )
        nxt_every = self.config.nextrade_evaluate_s
        aliases = [a.alias for a in self.settings.kis.accounts]
        journal = journal_for(self.settings, self.producer)
        accounts = open_accounts(self.settings, self.clock, self.producer.send, journal)
        venues = venues_from(self.settings.venues, self.timeline)
        trading = Trading(self.timeline, venues)
        collector = Collector(
            accounts,
            self.clock,
            self.producer.send,
            CollectorSettings.of(self.config, self.settings.kis.stream),
            in_session=trading.krx,
            on_refused=self.guard.on_refused,
            limits=self.guard.trading.limits,  # the day's, from Track A's snapshots
            alerts=self.alerts,
            session_of=venues.session_of_ns,
            judge_code=venues.judge_code,
            nxt={symbol for symbol, r in references.items() if r.nxt},
            paper=self.settings.kis.paper,
            continuous=trading.feed,
        )
        # Stocks under a measure an after-market excludes hold no feed of its venue there.
        hours = self.settings.venues
        collector.policy = collector.policy.with_nxt_day_only(
            {s for s, r in references.items() if r.nxt and r.under(hours.nxt.after_market_excludes)}
        ).with_krx_day_only(
            {s for s, r in references.items() if r.under(hours.krx.after_market_excludes)}
        )
        self.collector = collector
        first = accounts[0].client
        self.pin_standings = PinStandings(
            first if first.offers_nxt_status else None,
            self.clock,
            self.alerts,
            references,
            self._listed_as,
        )
        self._take_over(taken, collector)
        log.info("Track B registers, for each symbol it watches, %s", collector.policy.describe())
        capacity = self.settings.kis.stream.max_registrations
        # The market's VIs on one registration of the first account, all day (`vi_feed`).
        self.vi_feed = vi_registrations(self.config, self.settings.kis.paper, aliases, day)
        if not self.vi_feed:  # off: nothing would try it again, or resolve its refusal
            for notice in taken:
                if notice.code == VI_FEED_REFUSED:
                    self.alerts.resolve(VI_FEED_REFUSED, notice.subject, "the VI feed is off")
        reserved = {alias: len(held) for alias, held in self.vi_feed.items()}
        # A symbol's registrations as the policy of the moment gives them (`Collector.switch`).
        book = SlotBook(aliases, capacity, lambda symbol: collector.policy.cost(symbol), reserved)
        self.counters["capacity_per_account"] = capacity
        pre = pre_market(self.config, venues, collector.policy, day)
        try:
            full = starts[Phase.FULL_OPERATION]
            feeds = self.config.feeds  # what a watched name holds, part by part
            await self.sleep_until(preconnect_at(starts, self.config.preconnect_after_s, pre))
            if self.stop.is_set():
                return
            # The sessions open now with nothing registered (the pre-connect) and stream from
            # Nextrade's pre-market or full operation, beside the evaluations: a failure of
            # either ends the process.
            ended = asyncio.Event()  # the sessions' end: after KIS confirmed the releases
            async with alongside(collector.run(ended)) as (streaming,):
                resumed = False  # what an earlier run left is taken back once, at the first
                if pre is not None and now_utc(self.clock) < pre[1]:
                    await self.sleep_until(pre[0].timestamp())
                    if not self.stop.is_set():
                        stretch = Stretch("NXT", nxt_engine, pre[1], nxt_every)
                        await self._pre_market(day, stretch, book, collector, as_of, runs)
                        resumed = True
                if self.stop.is_set():
                    await collector.settle()
                    return
                half_hour = bool(feeds.krx_opening_half_hour)
                auction = (
                    opening_auction(venues, day, pre, trades_at_match=half_hour)
                    if feeds.krx_opening_auction
                    else None
                )
                if auction is not None and now_utc(self.clock) < auction[1]:
                    await self.sleep_until(auction[0].timestamp())
                    if not self.stop.is_set():
                        # Followed by the first half hour's trades, which replace its holds.
                        await self._opening_auction(
                            engine, book, collector, auction[1], keep=half_hour
                        )
                sync_at = full.timestamp() - self.config.sync_lead_s
                before_sync = now_utc(self.clock).timestamp() < sync_at
                if half_hour and not self.stop.is_set() and before_sync:
                    # From 10 s before KRX's opening match (the auction's end when it was
                    # followed); released at full operation, before the slots are placed.
                    opening = opening_auction(venues, day, None, trades_at_match=True)
                    if opening is not None:
                        await self.sleep_until(opening[1].timestamp())
                    if not self.stop.is_set():
                        await self._opening_half_hour(engine, book, collector, full)
                if self.stop.is_set():
                    await collector.hold(self.vi_feed)
                    await collector.settle()
                    return
                await self.sleep_until(sync_at)
                if self.stop.is_set():
                    return
                # Subscribed before the database is read: a snapshot stored after the read is
                # in the feed (one stored before it in both: the engine takes it once).
                with contextlib.closing(
                    feed_subscriber(self.settings.bus, self.settings.paths.run, _SNAPSHOTS)
                ) as feed:
                    room = book.free()  # the opening's best, as many as fit
                    context = self._sync_or_degrade(full, engine, room)
                    late = LateSync(self.config, full, room) if context is None else None
                    await self.sleep_until(full.timestamp())
                    ends = stream_ends(
                        venues,
                        day,
                        starts[Phase.TRACK_A_CLOSING],
                        krx_to_close=bool(feeds.krx_closing_auction),
                        nxt_after_market=bool(feeds.nxt_after_market),
                        krx_after_market=bool(feeds.krx_after_market),
                    )
                    closing_at, ends_at = ends.close, ends.last
                    await rekey(collector, self.clock, ends_at.timestamp())
                    await collector.hold(self.vi_feed)
                    if closing_at < now_utc(self.clock) < (ends.evening or ends_at):
                        # A start in Nextrade's after-market before KRX's: what is taken
                        # back holds Nextrade's feeds alone (KRX's ended at the close).
                        collector.policy = collector.policy.without_krx(
                            feeds.nxt_after_market, after_close=True
                        )
                    # The slots taken back stand as candidates beside the opening's meanwhile.
                    restored = (
                        []
                        if resumed
                        else await self._resume(day, engine, book, collector, as_of, runs)
                    )
                    candidates = [*(context or []), *restored]
                    try:
                        nxt_auction = self._nxt_auction(venues, day, collector)
                        krx = Stretch(
                            "KRX",
                            engine,
                            closing_at,
                            self.config.evaluate_s,
                            _in_order(
                                self._closing_auction(venues, day, closing_at, collector),
                                nxt_auction,
                            ),
                        )
                        await self._follow(feed, krx, book, collector, candidates, late)
                    finally:
                        if late is not None:
                            late.abandon()  # its read, if the stream ends during one
                        if self.late_takeover is not None:
                            self.late_takeover.abandon()
                    nxt_until = min(ends.nxt, ends.evening or ends.nxt)
                    after = Stretch("NXT", nxt_engine, nxt_until, nxt_every, nxt_auction)
                    evening = (
                        None
                        if ends.evening is None
                        else (
                            ends.evening,
                            Stretch("KRX", engine, ends.krx, self.config.evaluate_s),
                        )
                    )
                    await self._end(feed, book, collector, closing_at, after, evening)
                await collector.settle()  # read on to each release's confirmation
                await self.stop.wait()
                ended.set()
                await streaming
        finally:
            for account in accounts:
                await account.aclose()

    async def _pre_market(
        self,
        day: date,
        stretch: Stretch,
        book: SlotBook,
        collector: Collector,
        as_of: AsOf,
        runs: list[AsOf],
    ) -> None:
        """Nextrade's pre-market, to ``stretch.until``: its names on Nextrade's feeds alone.

        What an earlier run of the day left held is taken back first (`_resume`); every slot
        is released at the end (Nextrade pauses for KRX's opening auction).
        """
        base = collector.policy
        collector.policy = base.without_krx(self.config.feeds.nxt_pre_market)
        await rekey(collector, self.clock, stretch.until.timestamp())
        await collector.hold(self.vi_feed)
        log.info(
            "Track B follows Nextrade's pre-market to %s: %d names on Nextrade's feed alone",
            f"{stretch.until.astimezone(KST):%H:%M:%S}",
            len(stretch.engine.references),
        )
        with contextlib.closing(
            feed_subscriber(self.settings.bus, self.settings.paths.run, _SNAPSHOTS)
        ) as feed:
            restored = await self._resume(day, stretch.engine, book, collector, as_of, runs)
            await self._follow(feed, stretch, book, collector, restored)
        why = f"Nextrade's pre-market ends at {stretch.until.astimezone(KST):%H:%M:%S}"
        ending = (book.release(s, why) for s in book.held())
        await collector.apply([d for d in ending if d], book.holdings())
        learnt = collector.policy  # the pins' standings it learnt
        collector.policy = base.with_nxt(learnt.nxt).with_day_only(learnt.day_only)
        self._show(book, collector, {})

    async def _opening_auction(
        self,
        engine: TriggerEngine,
        book: SlotBook,
        collector: Collector,
        until: datetime,
        keep: bool = False,
    ) -> None:
        """KRX's opening auction to ``until``: expected matches on the idle sessions.

        Every registration holds a name's (`workers.track_b.auction`): this host's pins
        first, then the largest market caps; all released at ``until``, or with ``keep`` left
        for the next holds to replace (the first half hour's: one `Collector.hold`, no
        moment with neither). A failure or a stop releases them all the same.
        """
        await rekey(collector, self.clock, until.timestamp())
        kinds = self.config.feeds.krx_opening_auction
        wanted = self._dealt(engine, book, collector, kinds, auction=True)
        names = len({r.symbol for held in wanted.values() for r in held})
        log.info(
            "Track B follows KRX's opening auction to %s: %d names' %s",
            f"{until.astimezone(KST):%H:%M:%S}",
            names,
            ", ".join(kinds),
        )
        self.counters["opening_auction_names"] = names
        try:
            await collector.hold(merged(self.vi_feed, wanted))
            self._show(book, collector, {})
            await self.sleep_until(until.timestamp())
        except BaseException:
            await collector.hold(self.vi_feed)
            raise
        if not keep or self.stop.is_set():
            await collector.hold(self.vi_feed)
        self._show(book, collector, {})

    async def _opening_half_hour(
        self, engine: TriggerEngine, book: SlotBook, collector: Collector, until: datetime
    ) -> None:
        """From KRX's opening (or now) to ``until`` (full operation): the names' row.

        No slot is held before the context sync: the names the opening auction held (this
        host's pins, then the largest market caps, barred ones passed over) hold the
        ``krx_opening_half_hour`` row on their venues instead (by default their trades;
        `RegistrationPolicy.opening_feeds`), beside
        the slots like the auction's: their trades are stored, and a disconnection's or a
        silence's gap on them is recovered. The caller releases them at ``until``.
        """
        await rekey(collector, self.clock, until.timestamp())
        kinds = self.config.feeds.krx_opening_half_hour
        wanted = self._dealt(engine, book, collector, kinds, auction=False)
        names = len({r.symbol for held in wanted.values() for r in held})
        log.info(
            "Track B follows KRX's first half hour to %s: %d names' %s",
            f"{until.astimezone(KST):%H:%M}",
            names,
            ", ".join(kinds),
        )
        self.counters["opening_half_hour_names"] = names
        await collector.hold(merged(self.vi_feed, wanted))
        self._show(book, collector, {})

    def _dealt(
        self,
        engine: TriggerEngine,
        book: SlotBook,
        collector: Collector,
        kinds: Kinds,
        auction: bool,
    ) -> dict[str, set[Feed]]:
        """Each account's registrations of the names' ``kinds``, dealt out.

        Through KRX's opening ``auction`` on KRX's feed, else (its first half hour) on each
        name's venues (`RegistrationPolicy.opening_feeds`).

        In order of who holds one first: this host's pins, then its names by market cap,
        barred ones passed over, within each session beside the VI feed
        (`auction_registrations`).
        """
        ours = [r for r in engine.references.values() if engine.shard.owns(r.symbol)]
        pins = sorted(p for p in self.pin_file.read() if p in engine.references)
        by_cap = [r.symbol for r in sorted(ours, key=lambda r: (-r.market_cap, r.symbol))]
        return auction_registrations(
            collector.policy,
            [p for p in pins if engine.shard.owns(p)] + by_cap,
            [a.alias for a in self.settings.kis.accounts],
            self.settings.kis.stream.max_registrations,
            self.guard.barred(self.clock.now_ns()),
            book.reserved,
            lambda symbol: collector.policy.opening_feeds(symbol, kinds, auction=auction),
        )

    def _closing_auction(
        self, venues: Venues, day: date, krx_until: datetime, collector: Collector
    ) -> tuple[PolicySwitch, ...]:
        """KRX's closing auction's switches of the policy, if its row is not regular's.

        Followed at all (KRX's feeds to its match) with a ``krx_closing_auction`` row.
        """
        auction = closing_auction(venues, day, krx_until)
        kinds = self.config.feeds.krx_closing_auction
        if auction is None or kinds == collector.policy.kinds:
            return ()
        return _auction_switches(auction, KRX_CLOSING_FEEDS, kinds, "KRX's closing")

    def _nxt_auction(
        self, venues: Venues, day: date, collector: Collector
    ) -> tuple[PolicySwitch, ...]:
        """Nextrade's after-market's switches from its opening auction, if Track B follows it.

        Nextrade's feeds (``nextrade = "NXT"``; the combined one follows KRX's) take the
        ``nxt_after_market`` row from the auction's start, if it is not regular's.
        """
        policy = collector.policy
        auction = nxt_after_market_auction(venues, day)
        kinds = self.config.feeds.nxt_after_market
        if auction is None or not kinds or kinds == policy.kinds or policy.trades != "venues":
            return ()
        return _auction_switches(auction, ("NXT",), kinds, "Nextrade's after-market")

    async def _end(
        self,
        feed: FeedSubscriber,
        book: SlotBook,
        collector: Collector,
        closing: datetime,
        after: Stretch,
        evening: tuple[datetime, Stretch] | None = None,
    ) -> None:
        """KRX's close: every slot released, and shown so (`slots list`, the heartbeat's counters).

        Through Nextrade's after-market (``after`` ends after ``closing``), its names' Nextrade
        feeds stream to its end (`_after_market`); then through KRX's (``evening``: when it
        opens, and its stretch), every name's feeds again (`_evening`). Not shown,
        ``slots.json`` listed every slot as held until the next day's first evaluation. What
        an earlier run left and was never taken over is alerted.
        """
        self._never_taken_over()
        why = f"Track B ends KRX's feeds at {closing.astimezone(KST):%H:%M:%S}"
        now = now_utc(self.clock)
        following = after.until > max(closing, now) and not self.stop.is_set()
        streamed = following and await self._after_market(feed, book, collector, why, after)
        if streamed:
            why = f"Nextrade's after-market ends at {after.until.astimezone(KST):%H:%M:%S}"
        if evening is not None and not self.stop.is_set():
            # Nothing streams on into it: what is held ends first (not a start within it,
            # whose holdings taken back are the evening's)
            early = now_utc(self.clock) < evening[0]
            if early and (not streamed or after.until < evening[0]):
                ending = (book.release(s, why) for s in book.held())
                await collector.apply([d for d in ending if d], book.holdings())
            await self._evening(feed, book, collector, *evening)
            why = f"KRX's after-market ends at {evening[1].until.astimezone(KST):%H:%M:%S}"
        ending = (book.release(s, why) for s in book.held())
        await collector.apply([d for d in ending if d], book.holdings())
        await collector.hold({})  # the VI feed's, with the sessions
        self._show(book, collector, {})  # no slot held, no pin waits for one any more
        ended = "Track B stopped" if self.stop.is_set() else "the session ended"
        over = f"{ended}: every slot is released"
        self.overflow.end(f"overflow: {over}")
        self.notices.end(over)

    async def _after_market(
        self,
        feed: FeedSubscriber,
        book: SlotBook,
        collector: Collector,
        why: str,
        after: Stretch,
    ) -> bool:
        """To ``after.until``: Nextrade's names on Nextrade's feed, the rest end now.

        KRX's feeds are released (``why``), a held Nextrade name's Nextrade feed kept with no
        trade between (`Collector.switch`); then the slots are evaluated over Nextrade's
        names as in the pre-market. False if the policy streams nothing without KRX.
        """
        policy = collector.policy.without_krx(self.config.feeds.nxt_after_market, after_close=True)
        measured = policy.nxt & policy.nxt_day_only  # Nextrade names its after-market excludes
        done = (
            book.release(s, f"{why}: {policy.why_no_feed(s)}" if s in measured else why)
            for s in book.held()
            if not policy.venues(s)
        )
        await collector.apply([d for d in done if d])
        if not policy.streams_nextrade_alone:
            return False
        kept = book.holdings()
        await collector.switch(policy, kept, f"{why}: Nextrade's after-market follows")
        await collector.reconcile(book.holdings())
        self._show(book, collector, {})
        log.info(
            "%d Nextrade names stream Nextrade's after-market until %s; its evaluations place more",
            len(kept),
            f"{after.until.astimezone(KST):%H:%M:%S}",
        )
        await self._follow(feed, after, book, collector, [])
        return True

    async def _evening(
        self,
        feed: FeedSubscriber,
        book: SlotBook,
        collector: Collector,
        opens: datetime,
        evening: Stretch,
    ) -> None:
        """KRX's after-market, from ``opens`` to ``evening.until``: every name again.

        On KRX's snapshots, from when it ``opens``: a held Nextrade name keeps Nextrade's
        feed and gains KRX's (no trade between, `Collector.switch`), the lowest-ranked
        holdings released first where an account's would no longer fit; then the slots are
        evaluated as in KRX's day.
        Nextrade's feeds only with ``nxt_after_market`` (else KRX's alone).
        """
        await self.sleep_until(opens.timestamp())
        if self.stop.is_set():
            return
        feeds = self.config.feeds
        policy = collector.policy.with_krx(feeds.krx_after_market, feeds.nxt_after_market)
        why = f"KRX's after-market opens at {opens.astimezone(KST):%H:%M}"
        # A name KRX's after-market excludes, held on Nextrade's feed: nothing if not that.
        excluded = [
            book.release(s, f"{why}: {policy.why_no_feed(s)}")
            for s in book.held()
            if not policy.venues(s)
        ]
        fitted = [book.release(s, f"{why}: no room") for s in book.beyond(policy.cost)]
        await collector.apply([d for d in (*excluded, *fitted) if d], book.holdings())
        await collector.switch(policy, book.holdings(), f"{why}: KRX's feeds join")
        await collector.reconcile(book.holdings())
        self._show(book, collector, {})
        log.info(
            "%s: %d names keep their feeds and KRX's join; its evaluations place more until %s",
            why,
            len(book.held()),
            f"{evening.until.astimezone(KST):%H:%M:%S}",
        )
        await self._follow(feed, evening, book, collector, [])

    def _universe_references(
        self, day: date
    ) -> Sequence[Row[str, int, int, int, Decimal, bool, list[str]]] | None:
        with self._engine.connect() as conn:
            return universe_references(conn, day)

    def _listed_as(self, symbols: Collection[str]) -> dict[str, Listed]:
        with self._engine.connect() as conn:
            return listed_as(conn, symbols)

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
                        r.symbol,
                        r.market_cap,
                        r.prev_close,
                        r.avg_volume_20d,
                        float(r.atr_14),
                        bool(r.nxt),
                        tuple(r.measures),
                    )
                    for r in rows
                }
                kept.write(references)
                return references
            await self.sleep(_POLL_S)
        return None

    # ------------------------------------------------------------------ streaming

    async def _follow(
        self,
        feed: FeedSubscriber,
        stretch: Stretch,
        book: SlotBook,
        collector: Collector,
        context: list[SlotCandidate],
        late: LateSync | None = None,
    ) -> None:
        """Evaluate the slots every ``stretch.evaluate_s`` to ``stretch.until`` (or the stop).

        Candidates: the stretch's triggers, the pins (of its engine's names outside KRX's
        day), ``context`` and the largest market caps of its names as room allows.
        """
        engine, until = stretch.engine, stretch.until
        ours = [r for r in engine.references.values() if engine.shard.owns(r.symbol)]
        by_cap = [
            SlotCandidate(
                r.symbol, "market_cap", engine.score(r.symbol, 1.0, 0.0), 0.0, 0.0, r.market_cap
            )
            for r in sorted(ours, key=lambda r: (-r.market_cap, r.symbol))
        ]
        interval_s = self.settings.track_a.interval_min * 60.0
        read_back = ReadBack(self._engine, self.clock, interval_s, stretch.venue)
        switches = list(stretch.switches)
        while not self.stop.is_set() and self.clock.now_ns() < until.timestamp() * _NS:
            policy, why = collector.policy, ""
            while switches and self.clock.now_ns() >= switches[0].at.timestamp() * _NS:
                switch = switches.pop(0)  # all due at once (a late start): one switch
                policy, why = switch.change(policy), switch.why
            if why:
                await collector.switch(policy, book.holdings(), why)
                log.info("%s", why)
            self.guard.wake.clear()
            self._drain(feed, stretch, read_back)
            now = self.clock.now_ns()
            if read_back.due(now):
                await self._read_back(read_back, engine, now)
            if late is not None:
                late = self._sync_late(late, engine, context, now)
            self._take_over_late(book, collector)
            if self.pending.settling and not self.pending.settle(
                collector.restarting(), self.producer
            ):
                self._count("takeovers_unwritten")
            for symbol in book.held():
                engine.on_velocity(symbol, collector.velocity(symbol), now)
                if (tick := collector.latest.get(symbol)) is not None:
                    self.guard.on_tick(tick)
                if (status := collector.statuses.get(symbol)) is not None:
                    self.guard.on_status(status)  # a halt before Track A's next snapshot
            # A pin lifted is released by the evaluation, and only if nothing else claims it.
            pins = {p for p in self.pin_file.read() if engine.shard.owns(p)}
            await self._pins_on_nextrade(pins, book, collector)
            policy = collector.policy
            engine.pins = {p for p in pins if policy.venues(p)}
            closed = self.guard.review(book, engine.pins, now)
            barred = self.guard.barred(now)
            # A name with no feed now (a stock under a measure an after-market excludes) is
            # no candidate: a slot would hold nothing.
            placed = fill([c for c in by_cap if policy.venues(c.symbol)], barred, book.free())
            fired = [c for c in engine.candidates(now) if policy.venues(c.symbol)]
            if any(not c.pinned for c in fired):  # a degraded start is over: triggers place
                self.notices.over(DEGRADED, "triggers fire: the slots follow them")
            candidates = [*fired, *context, *placed]
            decisions = book.evaluate(
                candidates,
                now,
                collector.healthy(),
                threshold=self.config.replacement_threshold,
                min_hold_ns=int(self.config.min_hold_s * _NS),
                barred=barred,
            )
            waiting = unplaced(engine.pins, book.held(), decisions, barred)
            idle = {p: policy.why_no_feed(p) for p in pins - engine.pins}  # no feed now
            waiting = dict(sorted((waiting | idle).items()))
            decisions = [*closed, *(d for d in decisions if self._should_publish(d))]
            await collector.apply(decisions, book.holdings())  # and checked against the book
            self.counters["overflow_pct"] = round(self.overflow.watch(decisions, now), 1)
            self.counters["other_shard"] = engine.other_shard
            self._show(book, collector, waiting)
            due = switches[0].at.timestamp() - now / _NS if switches else stretch.evaluate_s
            await self._nap(max(0.0, min(stretch.evaluate_s, due)))

    async def _pins_on_nextrade(self, pins: set[str], book: SlotBook, collector: Collector) -> None:
        """The pins outside the universe that Nextrade trades join its names (`PinStandings`).

        Held ones gain Nextrade's feeds with no trade lost (`Collector.switch`), the
        lowest-ranked holdings released first where an account's would not fit. Those no
        after-market trades (ETFs, ETNs) join ``day_only``: released if held after KRX's close;
        those under a measure a venue's after-market excludes hold no feed of it there, as a
        member does (``nxt_day_only``, ``krx_day_only``).
        """
        standings = self.pin_standings
        nextrade = await standings.nextrade(pins)
        hours = self.settings.venues
        old = collector.policy
        policy = (
            old.with_nxt(nextrade)
            .with_day_only(standings.day_only)
            .with_nxt_day_only(standings.under(nextrade, hours.nxt.after_market_excludes))
            .with_krx_day_only(standings.under(pins, hours.krx.after_market_excludes))
        )
        if policy is old:
            return
        learnt = {
            "Nextrade trades the pins": policy.nxt - old.nxt,
            "no after-market trades the pins": policy.day_only - old.day_only,
            "Nextrade's after-market excludes the pins' measures": (
                policy.nxt_day_only - old.nxt_day_only
            ),
            "KRX's after-market excludes the pins' measures": (
                policy.krx_day_only - old.krx_day_only
            ),
        }
        why = "; ".join(f"{what} {', '.join(sorted(s))}" for what, s in learnt.items() if s)
        idle = (
            book.release(s, f"{why}: {policy.why_no_feed(s)}")
            for s in book.held()
            if not policy.venues(s)
        )
        await collector.apply([d for d in idle if d], book.holdings())
        fitted = (book.release(s, f"{why}: no room") for s in book.beyond(policy.cost))
        await collector.apply([d for d in fitted if d], book.holdings())
        await collector.switch(policy, book.holdings(), why)
        log.info("%s: their feeds follow", why)

    async def _nap(self, seconds: float) -> None:
        """Wait for the next evaluation: ``seconds`` of clock time, less if woken or stopped."""
        nap = asyncio.ensure_future(sleep_unless(self.clock, seconds, self.stop))
        woken = asyncio.ensure_future(self.guard.wake.wait())
        try:
            await asyncio.wait({nap, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            woken.cancel()

    def _drain(self, feed: FeedSubscriber, stretch: Stretch, read_back: ReadBack) -> None:
        engine = stretch.engine
        while (envelopes := feed.recv(0)) is not None:
            for envelope in envelopes:
                # The stretch's venue's snapshots alone: each engine's profile is its venue's
                # day (Nextrade's cycles ask in the hours only it trades).
                snapshot = envelope.event
                if not isinstance(snapshot, PriceSnapshot) or snapshot.venue != stretch.venue:
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


def _auction_switches(
    auction: tuple[datetime, datetime], feeds: tuple[Venue, ...], kinds: Kinds, whose: str
) -> tuple[PolicySwitch, ...]:
    """An auction's switches: ``feeds`` hold ``kinds`` from its start.

    Its expected matches (an ``auction`` kind) become program trading at its end, before
    the match.
    """
    start, end = auction
    to = f"{end.astimezone(KST):%H:%M:%S}"
    during = PolicySwitch(
        start,
        lambda policy: policy.during(feeds, kinds),
        f"{whose} auction: {', '.join(kinds)}"
        + (f", expected matches to {to}" if "auction" in kinds else ""),
    )
    if "auction" not in kinds:
        return (during,)
    return (
        during,
        PolicySwitch(
            end,
            lambda policy: policy.in_auction(feeds, False),
            f"{whose} match: program trading from {to}",
        ),
    )


def _in_order(*switches: tuple[PolicySwitch, ...]) -> tuple[PolicySwitch, ...]:
    """Every switch of ``switches``, by time."""
    return tuple(sorted((s for each in switches for s in each), key=lambda s: s.at))
