"""What every part of the Track B worker shares: its reader, watchers and counters.

`Watchers` holds the worker's settings, database reader and watchers (the slot guard, the
overflow watch, the session notices; each raises and resolves in the process's
`AlertBook`), the take-over's state, the pins file and the heartbeat's counters. The worker's
parts (`workers.track_b.takeover`, `workers.track_b.context_sync`, `workers.track_b.slotting`)
build on it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bus.events import Severity
from bus.producer import Producer
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.config.tree import Settings
from observer.db.outages import ReadRetries
from observer.db.readers import reader_engine
from observer.kis.stream import Feed
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.runtime import AsyncWorker
from workers.track_b.collect import Collector
from workers.track_b.earlier_run import LateTakeOver, PendingRuns
from workers.track_b.guard import SlotGuard
from workers.track_b.pin_standing import PinStandings
from workers.track_b.pins import PinFile
from workers.track_b.session_alerts import OverflowWatch, SessionNotices

__all__ = ["Watchers"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000


class Watchers(AsyncWorker):
    """The state a Track B process's parts share, and how they count and alert."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Heartbeat,
        stop: asyncio.Event,
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.track_b
        self.timeline = timeline_from(settings.phases, settings.calendar)
        self.data_dir = Path(settings.paths.data_dir)
        self._engine: Engine = reader_engine(settings.database, "track_b")
        self.overflow = OverflowWatch(self.config.overflow_alert_pct, self.alerts, self._alert)
        self.notices = SessionNotices(self.alerts)
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
        # The market's VIs, held on the first account all day (`workers.track_b.vi_feed`).
        self.vi_feed: dict[str, set[Feed]] = {}
        # What an earlier run of the day left, while the writer had not stored it (or a read
        # of its slots failed): taken over during the streaming (`workers.track_b.earlier_run`).
        self.late_takeover: LateTakeOver | None = None
        # runs that ended before their take-over
        self.pending = PendingRuns(self.data_dir, day, self.producer.send)
        self.pin_file = PinFile(self.data_dir, self.producer.send)
        # Nextrade's standing of pins outside the universe: none asked until the day's
        # accounts are open (`TrackB._day`).
        self.pin_standings = PinStandings(None, clock, self.alerts, ())

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
        """Log and publish an alert (each one: one resolution ends a condition's alerts)."""
        log.log(logging.INFO if severity == "info" else logging.WARNING, "%s", message)
        self.alerts.raise_(code, "", severity, message, context, again=True)
