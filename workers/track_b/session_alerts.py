"""Track B's alerts of conditions that last a session at most, and their resolutions.

* **Overflow** (`OverflowWatch`): the share of the last hour's placements that found no
  slot, against ``overflow_alert_pct``: one ``track_b_overflow`` alert per episode and
  severity, resolved when the share is back at half the warning level.
* **The session's notices** (`SessionNotices`): ``track_b_registration_refused``,
  ``track_b_registration_limit``, ``track_b_degraded``, ``track_b_restarted``.

All are open in the process's `AlertBook`; the session's end (15:00) resolves what is still
open. An earlier run's are taken over: an earlier day's session notices resolved at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from bus.events import Severity
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from workers.track_b.slots import SlotAction

__all__ = ["OVERFLOW", "SESSION_CODES", "OverflowWatch", "SessionNotices"]

log = logging.getLogger(__name__)

OVERFLOW = "track_b_overflow"
DEGRADED = "track_b_degraded"
SESSION_CODES = (
    "track_b_registration_refused",
    "track_b_registration_limit",
    DEGRADED,
    "track_b_restarted",
)

_HOUR_NS = 3600 * 1_000_000_000
_OVERFLOW_ENDS = 0.5  # an overflow level is over at this fraction of it (hysteresis)

# (severity, code, message): the worker's alert.
Raise = Callable[[Severity, str, str], None]


class OverflowWatch:
    """The overflow share of the last hour's placements and its alert episodes.

    The morning's hand-over counts in the share and for the warning, not for the critical:
    a candidate that waited only because every slot was newer than ``min_hold_s``
    (`SlotAction.waiting`: the 09:30 minute, when the context sync's placements cannot be
    replaced yet), and a context sync candidate that a live trigger displaced (the sync
    hands out exactly as many as there are slots, to be displaced). Both come every
    morning: they alone are no emergency.
    """

    def __init__(
        self, levels_pct: tuple[float, float, float], alerts: AlertBook, alert: Raise
    ) -> None:
        self.log_at, self.warn_at, self.critical_at = levels_pct
        self.alerts = alerts  # the episode's alert is open there (an earlier run's too)
        self.alert = alert
        # (when, overflowed, the morning's hand-over) per placement
        self.placements: deque[tuple[int, bool, bool]] = deque()
        self.logged = False  # the log level's line went out (its own episode)

    def watch(self, decisions: Sequence[SlotAction], now_ns: int) -> float:
        """Count an evaluation's placements; raise or resolve. Returns the share (%).

        An episode raises each severity once (a warning, then a critical if it gets worse)
        and ends when the share is back at half the warning level: one `AlertResolved` of
        the episode's highest severity resolves what it raised.
        """
        for d in decisions:
            if d.action in ("allocate", "replace", "overflow"):
                handover = d.waiting or d.candidate.trigger == "context_sync"
                self.placements.append((now_ns, d.action == "overflow", handover))
        while self.placements and now_ns - self.placements[0][0] > _HOUR_NS:
            self.placements.popleft()
        total = len(self.placements) or 1
        rate = 100 * sum(o for _, o, _ in self.placements) / total
        firm = 100 * sum(o and not w for _, o, w in self.placements) / total
        over = f"overflow rate {rate:.1f}% over the last hour"
        alerted = self.alerts.severity(OVERFLOW)  # the episode's highest alert so far
        if rate > self.log_at and not self.logged:
            self.logged = True
            log.warning("%s (> %g%%)", over, self.log_at)
        elif rate <= self.log_at * _OVERFLOW_ENDS:
            self.logged = False
        if firm > self.critical_at and alerted != "critical":
            waits = "" if firm == rate else f"; {rate:.1f}% with the opening's hand-over"
            message = (
                f"overflow rate {firm:.1f}% over the last hour (> {self.critical_at:g}%{waits})"
            )
            self.alert("critical", OVERFLOW, message)
        elif rate > self.warn_at and alerted is None:
            self.alert("warning", OVERFLOW, f"{over} (> {self.warn_at:g}%)")
        elif alerted is not None and rate <= self.warn_at * _OVERFLOW_ENDS:
            self.end(f"{over}: back at {self.warn_at * _OVERFLOW_ENDS:g}% or less")
        return rate

    def end(self, why: str) -> None:
        """The episode is over (the share fell, or the session ended): resolve it if open."""
        if self.alerts.resolve(OVERFLOW, "", why):
            log.info("%s", why)


class SessionNotices:
    """The session's notices still open (in the process's `AlertBook`), by code."""

    def __init__(self, alerts: AlertBook) -> None:
        self.alerts = alerts

    def taken_over(self, notices: Iterable[Notice], day_start_ns: int) -> None:
        """What an earlier run left open, in the book: an earlier day's session is over."""
        earlier = {
            n.code for n in notices if n.code in SESSION_CODES and n.produced_ns < day_start_ns
        }
        for code in sorted(earlier):
            self.over(code, "an earlier session's: that session is over")

    def over(self, code: str, why: str) -> None:
        """``code``'s condition ended before the session did."""
        if self.alerts.resolve(code, "", why):
            log.info("%s: %s", code, why)

    def end(self, why: str) -> None:
        """The session ended: every notice still open is over."""
        for code in sorted(SESSION_CODES):
            self.over(code, why)
