"""Gap recovery's database reads: the start-up's, and each sweep's.

At the start: the recovered bars a gap could touch and the recovered trades (the ledgers, so
that no bar or trade is published twice), the day's settled gaps (its success share), the
days whose ``gaps_unrecoverable`` alert is open, and the first sweep. Each sweep: the pending
gaps, the unrecoverable ones of the days still taken back (``retake_days``), and how watched
each symbol is today (its queue's order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, Row

from observer.alerts.states import Notice
from observer.alerts.stored import open_alerts
from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.cluster.hosts import own_source
from observer.config.tree import Settings
from observer.db.queries import (
    open_gaps,
    recovered_minutes,
    recovered_trades,
    settled_gaps,
)
from observer.db.slot_queries import watched_since
from observer.kis.rate_alert import KIS_RATE_LIMITED
from workers.gap_recovery import SOURCE
from workers.gap_recovery.outcomes import (
    NOT_OFFERED_ALERT,
    NOT_ON_PAPER_ALERT,
    UNRECOVERABLE_ALERT,
)
from workers.gap_recovery.trades import NOT_CLOSING_ALERT
from workers.gap_recovery.verify import FAILED_ALERT

__all__ = ["GapReads", "GapRow", "StartUp", "Sweep", "day_of"]

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_LEDGER_DAYS = 7  # recovered bars loaded at start-up: this many days back, or the oldest gap's

GapRow = Row[str, str, int, int, str, int, str, str, int | None, int | None]  # `open_gaps`


def day_of(ns: int) -> date:
    """The KST day of an instant (ns)."""
    return datetime.fromtimestamp(ns / _NS, KST).date()


def _midnight_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=KST).timestamp()) * _NS


@dataclass(frozen=True, slots=True)
class Sweep:
    """What a sweep reads."""

    gaps: Sequence[GapRow]  # `open_gaps`
    # The seconds Track B's slots held each symbol today (`watched_since`): among gaps that
    # cost alike, the most watched symbol's go first
    watched: dict[str, int]


@dataclass(frozen=True, slots=True)
class StartUp:
    """What the start-up reads from the database."""

    stored: list[tuple[str, str, int]]  # the recovered bars a gap could touch (the ledger)
    trades: list[tuple[str, str, int]]  # the trades recovered (symbol, venue, cumulative volume)
    settled: list[tuple[str, str]]  # today's settled gaps: the day's success
    # An earlier instance's open `UNRECOVERABLE_ALERT`s (a day each) and not-offered warnings
    # (an account each: raised once, not again after a restart)
    alerted: list[Notice]
    sweep: Sweep  # the first


class GapReads:
    """The reads of this host's gaps (blocking: called in a thread)."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def start(self) -> StartUp:
        """The start-up's reads."""
        now = self.clock.now_ns()
        days = max(_LEDGER_DAYS, self.settings.gap_recovery.retake_days)
        midnight = _midnight_ns(day_of(now))
        with self.engine.connect() as conn:
            stored = recovered_minutes(conn, now - days * _DAY_NS)
            settled = settled_gaps(
                conn, midnight, midnight + _DAY_NS, self.settings.supervisor.host
            )
            source = own_source(self.settings.supervisor, SOURCE)
            trades = recovered_trades(conn, source, now - days * _DAY_NS)
            taken = [
                UNRECOVERABLE_ALERT,
                NOT_ON_PAPER_ALERT,
                NOT_OFFERED_ALERT,
                NOT_CLOSING_ALERT,
                FAILED_ALERT,
                KIS_RATE_LIMITED,
            ]
            alerted = open_alerts(conn, source, taken)
        return StartUp(stored, trades, settled, alerted, self.open())

    def open(self) -> Sweep:
        """The pending and retaken gaps, and today's watched symbols (`Sweep`)."""
        now = self.clock.now_ns()
        midnight = _midnight_ns(day_of(now))
        with self.engine.connect() as conn:
            gaps = open_gaps(
                conn,
                self.settings.supervisor.host,
                unrecoverable_since_ns=self.first_day_ns(),
            )
            return Sweep(gaps, watched_since(conn, midnight, now))

    def first_day_ns(self) -> int:
        """The first instant of the oldest day whose unrecoverable gaps are followed."""
        day = day_of(self.clock.now_ns()) - timedelta(days=self.settings.gap_recovery.retake_days)
        return _midnight_ns(day)
