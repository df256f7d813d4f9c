"""The take-over of what an earlier Track B of the day left: its open alerts and its slots.

At the start, once the writer has stored the earlier run's events, its open alerts are taken
over into the process's `AlertBook` (`TakeOver._take_over`) and its slots taken back with a
``process_restart`` gap each (`TakeOver._resume`). A writer behind or a database that fails
the read leaves it for later: the streams go on and it happens beside the evaluations
(`TakeOver._take_over_late`, `workers.track_b.earlier_run`); one that never did is said at 15:00.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import date

from observer.alerts.states import Notice
from observer.alerts.stored import open_alerts
from observer.cluster.hosts import own_source
from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.db.slot_queries import AsOf, held_slots
from workers.track_b import SOURCE
from workers.track_b.collect import ACCOUNT_CODES, Collector
from workers.track_b.earlier_run import Earlier, LateTakeOver, lasting, release_late, take_back
from workers.track_b.layouts import LAYOUT_UNKNOWN
from workers.track_b.session_alerts import OVERFLOW, SESSION_CODES
from workers.track_b.session_codes import SESSION_DISAGREES
from workers.track_b.slots import SlotBook, SlotCandidate
from workers.track_b.triggers import TriggerEngine
from workers.track_b.vi_feed import VI_FEED_REFUSED
from workers.track_b.watchers import Watchers

__all__ = ["RESUME_FAILED", "TakeOver"]

log = logging.getLogger(__name__)

RESUME_FAILED = "track_b_resume_failed"
# What a restarted Track B takes over of what an earlier run of the day left open.
_TAKEN_OVER = (
    *ACCOUNT_CODES,
    LAYOUT_UNKNOWN,
    OVERFLOW,
    *SESSION_CODES,
    SESSION_DISAGREES,
    VI_FEED_REFUSED,
)


class TakeOver(Watchers):
    """The worker's take-over of an earlier run's alerts and slots (see the module)."""

    def _left_open(self, through_seq: int | None = None) -> list[Notice]:
        """The account, overflow and session alerts an earlier run left open (blocking).

        ``through_seq``: the earlier runs' last seq (this run's own alerts are left out).
        """
        with self._engine.connect() as conn:
            source = own_source(self.settings.supervisor, SOURCE)
            return open_alerts(conn, source, _TAKEN_OVER, through_seq)

    async def _open_alerts(self, as_of: AsOf) -> list[Notice] | None:
        """The alerts the earlier runs left open; None if the database fails the read.

        Track B streams then, and takes them over once they read (`LateTakeOver`): a start
        during a database outage waited for it, 600 s and then again after each restart.
        """
        try:
            return await asyncio.to_thread(self._left_open, as_of.seq)
        except DATABASE_ERRORS as exc:
            self._count("database_reads_failed")
            log.warning(
                "cannot read the alerts an earlier run left open (%s): Track B streams, and "
                "takes them and its slots over once they read",
                error_reason(exc),
            )
            return None

    def _take_over(
        self, open_alerts: Sequence[Notice], collector: Collector, *, late: bool = False
    ) -> None:
        """What an earlier run left open is this run's to resolve (`Collector.taken_over`).

        ``late``: after the sessions started (`workers.track_b.earlier_run`).
        """
        taken = self.alerts.take_over(open_alerts)
        collector.taken_over(taken, late=late)
        self.notices.taken_over(taken, self.day_start_ns)

    async def _resume(
        self,
        day: date,
        engine: TriggerEngine,
        book: SlotBook,
        collector: Collector,
        as_of: AsOf,
        runs: list[AsOf],
    ) -> list[SlotCandidate]:
        """Take back the slots an earlier Track B of the day left held (it died), with a gap each.

        A crashed process released nothing: its slots are in the database as held. Each goes
        back into the slot book as it was (the report keeps counting it as watched) with a
        ``process_restart`` gap (`workers.track_b.earlier_run.take_back`), lasting at least its
        trigger's TTL from now: the candidates it stands as until then are returned.

        Before this run places a slot: a take-over left for later (the writer had not stored
        the earlier run's events at the start) happens here if the writer has caught up
        since. Otherwise, as when the database fails the read, the streams go on and the
        earlier slots are released later (`LateTakeOver`).
        """
        late = self.late_takeover
        if late is not None and not late.due():
            return []  # the writer is still behind
        if late is None:
            late = LateTakeOver(self.producer, day, as_of, runs, alerts=False)
        try:
            earlier = await asyncio.to_thread(self._earlier, late)
        except DATABASE_ERRORS as exc:  # the streams go on: said, not fatal
            log.warning(
                "cannot read the slots an earlier run of the day held (%s): tried again "
                "while the streams go on",
                error_reason(exc),
            )
            late.backoff.failed()
            self._streams_before_taking_over(late)
            return []
        self._taken_over(late, collector, earlier)
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

    def _streams_before_taking_over(self, late: LateTakeOver) -> None:
        """Stream without what an earlier run left; take it over later (`LateTakeOver`).

        This run's start is kept until then, for a successor if this run ends first.
        """
        if self.late_takeover is None and not self.pending.write([*late.runs, late.as_of]):
            self._count("takeovers_unwritten")
        self.late_takeover = late

    def _taken_over(self, late: LateTakeOver, collector: Collector, earlier: Earlier) -> None:
        """What an earlier run left is this run's now: its alerts; the runs named go once stored."""
        self.late_takeover = None
        if late.alerts:  # the sessions are open: an account up now was confirmed before
            self._take_over(earlier.alerts, collector, late=True)
        self.pending.taken_over()  # the runs it names: emptied once this is stored

    def _earlier(self, late: LateTakeOver) -> Earlier:
        """What an earlier run of the day left, as of this one's start (blocking)."""
        alerts = self._left_open(late.as_of.seq) if late.alerts else []
        with self._engine.connect() as conn:  # this host's
            source = own_source(self.settings.supervisor, SOURCE)
            held = held_slots(conn, source, late.day, late.as_of, late.runs)
        return Earlier(alerts, held)

    def _take_over_late(self, book: SlotBook, collector: Collector) -> None:
        """Take over what an earlier run left once the writer stored it (`LateTakeOver`).

        Its read runs beside the evaluations, as the late context sync's does.
        """
        late = self.late_takeover
        if late is None:
            return
        if late.due():
            late.start(lambda: self._earlier(late))
            return

        def failed(why: str, pause: float) -> None:
            self._count("database_reads_failed")
            log.warning(
                "cannot read what an earlier run of the day left (%s); again in %.1f s",
                why,
                pause,
            )

        if (earlier := late.taken(failed)) is None:
            return
        self._taken_over(late, collector, earlier)
        if earlier.held:
            released = release_late(earlier.held, book, collector)
            self._alert(
                "warning",
                "track_b_restarted",
                f"Track B restarted holding {len(earlier.held)} slots, read only after it had "
                f"placed its own: {released} released; a process_restart gap for each, "
                "recovered from minute bars",
            )

    def _never_taken_over(self) -> None:
        """15:00: a take-over that never happened is said (left to the next run if stopped)."""
        if self.late_takeover is not None and self.stop.is_set():
            log.warning(
                "Track B stops before it took over what an earlier run of the day left: the "
                "next run of the day takes it over%s",
                f" ({self.pending.path} names the runs)"
                if self.pending.named
                else " (the runs could not be kept: its gaps may start late, and the day's "
                "reconciliation checks their minutes)",
            )
        elif self.late_takeover is not None:
            self._alert(
                "error",
                RESUME_FAILED,
                "what an earlier Track B of the day left was never read (the writer had not "
                "stored it, or the database failed the read): if it held slots, they are not "
                "released and their gaps not opened",
            )
        self.late_takeover = None
