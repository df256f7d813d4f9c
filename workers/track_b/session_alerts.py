"""Track B's alerts of conditions that last a session at most, and their resolutions.

* **Overflow** (`OverflowWatch`): the share of the last hour's placements that found no
  slot, against ``overflow_alert_pct``. One ``track_b_overflow`` alert per episode and
  severity; the episode ends when the share is back at half the warning level.
* **The session's notices** (`SessionNotices`): a refused registration
  (``track_b_refused``), a slot KIS counts full (``track_b_registration_limit``), a start
  without the opening's context (``track_b_degraded``), a restart that took slots back
  (``track_b_restarted``). A refusal bars a symbol for a backoff or for the day, a closed
  slot stays closed for the day, and a restart's gaps are recovered from minute bars: none
  outlives the session.

The session's end (15:00: every slot released) resolves whatever of either is still open;
before, these stayed open for good, or overnight. A restarted Track B takes over what an
earlier run left open: an earlier day's is resolved at once, today's is its own.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from bus.events import AlertResolved, Event, Severity
from observer.alerts.states import SEVERITY_RANK, Notice
from workers.track_b.slots import Decision

__all__ = ["OVERFLOW", "SESSION_CODES", "OverflowWatch", "SessionNotices"]

log = logging.getLogger(__name__)

OVERFLOW = "track_b_overflow"
DEGRADED = "track_b_degraded"
SESSION_CODES = ("track_b_refused", "track_b_registration_limit", DEGRADED, "track_b_restarted")

_HOUR_NS = 3600 * 1_000_000_000
_OVERFLOW_ENDS = 0.5  # an overflow level is over at this fraction of it (hysteresis)

Publish = Callable[[Event], object]
# (severity, code, message): the worker's alert.
Raise = Callable[[Severity, str, str], None]


def _highest(severities: Iterable[Severity]) -> Severity | None:
    return max(severities, key=SEVERITY_RANK.__getitem__, default=None)


class OverflowWatch:
    """The overflow share of the last hour's placements and its alert episodes.

    The morning's hand-over counts in the share and for the warning, not for the critical:
    a candidate that waited only because every slot was newer than ``min_hold_s``
    (`Decision.waiting`: the 09:30 minute, when the context sync's placements cannot be
    replaced yet), and a context sync candidate that a live trigger displaced (the sync
    hands out exactly as many as there are slots, to be displaced). Both come every
    morning: they alone are no emergency.
    """

    def __init__(
        self, levels_pct: tuple[float, float, float], publish: Publish, alert: Raise
    ) -> None:
        self.log_at, self.warn_at, self.critical_at = levels_pct
        self.publish = publish
        self.alert = alert
        # (when, overflowed, the morning's hand-over) per placement
        self.placements: deque[tuple[int, bool, bool]] = deque()
        self.alerted: Severity | None = None  # the episode's highest alert so far
        self.logged = False  # the log level's line went out (its own episode)

    def take_over(self, open_alerts: Sequence[Notice]) -> None:
        """The episode an earlier run left open: its first low enough share resolves it."""
        raised = [self.alerted] if self.alerted else []  # this run's (a late take-over)
        self.alerted = _highest([*raised, *(n.severity for n in open_alerts)])

    def watch(self, decisions: Sequence[Decision], now_ns: int) -> float:
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
        if rate > self.log_at and not self.logged:
            self.logged = True
            log.warning("%s (> %g%%)", over, self.log_at)
        elif rate <= self.log_at * _OVERFLOW_ENDS:
            self.logged = False
        if firm > self.critical_at and self.alerted != "critical":
            self.alerted = "critical"
            waits = "" if firm == rate else f"; {rate:.1f}% with the opening's hand-over"
            message = (
                f"overflow rate {firm:.1f}% over the last hour (> {self.critical_at:g}%{waits})"
            )
            self.alert("critical", OVERFLOW, message)
        elif rate > self.warn_at and self.alerted is None:
            self.alerted = "warning"
            self.alert("warning", OVERFLOW, f"{over} (> {self.warn_at:g}%)")
        elif self.alerted is not None and rate <= self.warn_at * _OVERFLOW_ENDS:
            self.end(f"{over}: back at {self.warn_at * _OVERFLOW_ENDS:g}% or less")
        return rate

    def end(self, why: str) -> None:
        """The episode is over (the share fell, or the session ended): resolve it if open."""
        if self.alerted is None:
            return
        log.info("%s", why)
        self.publish(AlertResolved(code=OVERFLOW, severity=self.alerted, message=why))
        self.alerted = None


class SessionNotices:
    """The session's notices still open, by code, at their highest severity raised."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish
        self.open: dict[str, Severity] = {}

    def take_over(self, open_alerts: Sequence[Notice], day_start_ns: int) -> None:
        """What an earlier run left open: an earlier day's is over, today's is taken over."""
        earlier = [n for n in open_alerts if n.produced_ns < day_start_ns]
        for code in sorted({n.code for n in earlier}):
            severity = _highest(n.severity for n in earlier if n.code == code)
            assert severity is not None
            self._resolve(code, severity, "an earlier session's: that session is over")
        for notice in open_alerts:
            if notice.produced_ns >= day_start_ns:
                self.raised(notice.severity, notice.code)

    def raised(self, severity: Severity, code: str) -> None:
        """An alert went out: ``code`` is open, at least at ``severity``."""
        if code in SESSION_CODES and severity != "info":
            self.open[code] = _highest((severity, self.open.get(code, severity))) or severity

    def over(self, code: str, why: str) -> None:
        """``code``'s condition ended before the session did."""
        if (severity := self.open.pop(code, None)) is not None:
            self._resolve(code, severity, why)

    def end(self, why: str) -> None:
        """The session ended: every notice still open is over."""
        for code in sorted(self.open):
            self.over(code, why)

    def _resolve(self, code: str, severity: Severity, why: str) -> None:
        log.info("%s: %s", code, why)
        self.publish(AlertResolved(code=code, severity=severity, message=why))
