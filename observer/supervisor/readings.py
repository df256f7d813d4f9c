"""What the supervisor reads from the database every ``data_age_s``: ages, alerts, sectors.

The ages of data, each region's enrichment coverage and latest run, every program's open
alerts (`observer.db.queries.open_alert_records`, whatever their age: the supervisor
publishes only its own), and the host rosters of the last
`observer.cluster.rosters.ROSTER_WINDOW_S` with their open overlap alerts (``on_read``). The
threshold rules and Prometheus read them; a failed read is logged once and shown as
``observer_database_read_up 0`` until a read succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from observer.alerts.settings import ENRICHMENT_RUN_FIGURES
from observer.alerts.states import alert_states
from observer.calendar.clock import Clock
from observer.cluster.rosters import ROSTER_WINDOW_S
from observer.db.settings import DatabaseSettings

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from observer.alerts.states import Notice
    from observer.db.roster_queries import StoredRoster

__all__ = [
    "OPEN_SEVERITIES",
    "DatabaseReadings",
    "Reading",
    "read_once",
]

log = logging.getLogger(__name__)

OPEN_SEVERITIES = ("warning", "error", "critical")  # an info alert is never open
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Reading:
    """One read: ages of data in hours, open alerts by severity, enrichment per region."""

    ages_h: dict[str, float]
    alerts_open: dict[str, int]
    enrichment: dict[str, dict[str, float]] = field(default_factory=dict)
    rosters: tuple[StoredRoster, ...] = ()  # each supervisor's latest, within the window
    open_alerts: tuple[Notice, ...] = ()  # every alert open, oldest first


def read_once(conn: Connection, now_ns: int) -> Reading:
    """The ages and the open alerts (whatever their age) as of ``now_ns``."""
    # deferred: the database layer (SQLAlchemy, the models: about 0.5 s), off the start
    from observer.db.queries import master_files_checked_ns, open_alert_records
    from observer.db.roster_queries import latest_rosters
    from observer.db.sector_queries import latest_runs, region_coverage

    # The alerts first: they are read in a snapshot of their own, on a connection not in use.
    states = alert_states(open_alert_records(conn, deliveries=False))
    checked = master_files_checked_ns(conn)  # None before any check: the job's alerts say why
    ages = {} if checked is None else {"master_file": (now_ns - checked) / 3.6e12}
    counts = Counter[str](s.notice.severity for s in states if s.state == "open")
    enrichment: dict[str, dict[str, float]] = {}
    for run in latest_runs(conn):  # a region never enriched has no figures (nor alerts)
        figures = {name: float(run[name]) for name in ENRICHMENT_RUN_FIGURES}
        figures["age_h"] = (now_ns - run["produced_ns"]) / 3.6e12
        enrichment[run["region"]] = figures
    for region, cover in region_coverage(conn).items():
        if region in enrichment:
            enrichment[region]["coverage_pct"] = cover["coverage_pct"]
    if enrichment:  # the newest run of any region: the job ran (stale when it did not)
        ages["enrichment"] = min(figures["age_h"] for figures in enrichment.values())
    alerts = {severity: counts[severity] for severity in OPEN_SEVERITIES}
    rosters = tuple(latest_rosters(conn, now_ns - int(ROSTER_WINDOW_S * _NS)))
    opened = tuple(s.notice for s in states if s.state == "open")
    return Reading(ages, alerts, enrichment, rosters, opened)


@dataclass(slots=True)
class DatabaseReadings:
    """The latest reading, kept up to date by `follow` (the metrics and the rules read it)."""

    database: DatabaseSettings
    clock: Clock
    interval_s: float  # between reads (``[supervisor] data_age_s``)
    ages_h: dict[str, float] = field(default_factory=dict)
    alerts_open: dict[str, int] | None = None  # None until the first read succeeds
    enrichment: dict[str, dict[str, float]] = field(default_factory=dict)  # per region
    up: float | None = None  # 1.0 after a read that succeeded, 0.0 after one that failed
    rosters: tuple[StoredRoster, ...] = ()  # the hosts' latest rosters (ctl status, overlaps)
    open_alerts: tuple[Notice, ...] = ()  # as of the latest read
    on_read: Callable[[Reading], None] | None = None  # called with each successful reading

    async def follow(self, stop: asyncio.Event) -> None:
        """Read every ``data_age_s`` until ``stop``."""
        # deferred: the database layer (SQLAlchemy, about 0.2 s), off the supervisor's start
        from observer.db.readers import reader_engine

        engine = reader_engine(self.database, "supervisor")
        failure = ""
        try:
            while not stop.is_set():
                reading: Reading | None = None
                try:
                    reading = await asyncio.to_thread(self._read, engine)
                    self.ages_h, self.alerts_open = reading.ages_h, reading.alerts_open
                    self.enrichment, self.rosters = reading.enrichment, reading.rosters
                    self.open_alerts = reading.open_alerts
                    self.up = 1.0
                    failure = ""
                except Exception as exc:  # no schema before the writer's first start, ...
                    self.up = 0.0
                    reason = str(getattr(exc, "orig", None) or exc)  # the driver's, no SQL
                    if reason != failure:  # said once, not every interval
                        log.warning("cannot read the database's figures: %s", reason)
                    failure = reason
                if reading is not None and self.on_read is not None:
                    self.on_read(reading)  # outside the read: its failure is not the database's
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            engine.dispose()

    def _read(self, engine: Engine) -> Reading:
        with engine.connect() as conn:
            return read_once(conn, self.clock.now_ns())
