"""What gap recovery reports of its gaps: the heartbeat's counters and the unrecoverable alert.

``success_pct`` is over the trading day (the gaps that began that day, KST, and were settled:
recovered or unrecoverable), seeded from the database at start-up so a restart neither
resets it nor resolves a ``gap_success_low`` that still stands. It stays 100 until the day
has `SUCCESS_MIN_SETTLED` gaps settled: ``gaps_unrecoverable`` covers the few, the rate the
many. `UnrecoverableAlerts` raises one error alert per day with unrecoverable gaps.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime

from bus.events import GapState
from observer.alerts.book import AlertBook
from observer.process.stats import p99

__all__ = [
    "NOT_OFFERED_ALERT",
    "NOT_ON_PAPER_ALERT",
    "SUCCESS_MIN_SETTLED",
    "UNRECOVERABLE_ALERT",
    "RecoveryCounters",
    "Settled",
    "UnrecoverableAlerts",
    "parse_day",
]

_LATENCIES = 10_000  # the newest latencies kept for the percentiles
UNRECOVERABLE_ALERT = "gaps_unrecoverable"  # error, subject: the day the gaps began (KST)
# warning, subject: the account: its host does not offer an earlier day's bars (paper)
NOT_ON_PAPER_ALERT = "gaps_not_offered_on_paper"
# warning, subject: the account: it cannot reconcile an earlier day (paper: no FHKST03010230)
NOT_OFFERED_ALERT = "reconciliation_not_offered"
# A day's success_pct is 100 until this many of its gaps are settled: a rate of a few gaps
# says nothing, and each unrecoverable one is alerted (``gaps_unrecoverable``) already.
SUCCESS_MIN_SETTLED = 20


@dataclass(frozen=True, slots=True)
class Settled:
    """A gap that reached a final state here: when (clock), which, and the day it began."""

    at_ns: int
    state: GapState
    day: date


@dataclass
class RecoveryCounters:
    """What the heartbeats report (``observer ctl status``, Prometheus)."""

    detected: int = 0
    recovered: int = 0
    unrecoverable: int = 0
    marker_only: int = 0
    bars: int = 0
    trades: int = 0  # the exchange's trades recovered for volume-chain gaps
    trade_calls: int = 0  # FHPST01060000 calls made for them
    queue_peak: int = 0
    sweep_failures: int = 0  # database reads (sweeps, start-up, reconciliation) that failed
    # The newest stream end (epoch seconds) whose reconciliation settled here: done, or
    # given up and alerted. 0 until the first, after each start (its first is the last
    # session's, settled again at start-up).
    reconciled_until_s: float = 0.0
    detection_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    to_recovered_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    call_to_record_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCIES))
    # The gaps of the newest day that were settled (recovered or unrecoverable), gap id ->
    # state: from the database at start-up, then as they settle here.
    day: date | None = None
    day_states: dict[str, GapState] = field(default_factory=dict)

    def read_failed(self) -> None:
        """A read of the database failed (the reader that failed logs it)."""
        self.sweep_failures += 1

    def reconciled(self, end: datetime) -> None:
        """The reconciliation of the stream that ended at ``end`` settled."""
        self.reconciled_until_s = max(self.reconciled_until_s, end.timestamp())

    def settle(self, gap_id: str, day: date, state: GapState) -> None:
        """A gap that began on ``day`` is now ``state``: the day's success counts it."""
        if self.day is None or day > self.day:
            self.day, self.day_states = day, {}
        if day != self.day:
            return  # an earlier day's gap (tried again): not today's figure
        if state in ("recovered", "unrecoverable"):
            self.day_states[gap_id] = state
        else:
            self.day_states.pop(gap_id, None)

    def success_pct(self, today: date | None = None) -> float:
        """Of ``today``'s gaps settled, the share recovered (100 below `SUCCESS_MIN_SETTLED`)."""
        if today is not None and today != self.day:
            return 100.0
        states = Counter(self.day_states.values())
        settled = states["recovered"] + states["unrecoverable"]
        if settled < SUCCESS_MIN_SETTLED:
            return 100.0
        return round(100 * states["recovered"] / settled, 2)

    def counters(self, queue_depth: int, today: date | None = None) -> dict[str, float]:
        """The heartbeat's counters: counts, queue depth, the day's success, latencies.

        ``success_pct`` is over the trading day ``today`` (the newest day settled without
        one): over the process's life, a busy earlier day hid today's failures, and a
        restart reset it to 100 and resolved a breach that still stood.
        """
        return {
            "gaps_detected": self.detected,
            "gaps_recovered": self.recovered,
            "gaps_unrecoverable": self.unrecoverable,
            "gaps_marker_only": self.marker_only,
            "bars_recovered": self.bars,
            "trades_recovered": self.trades,
            "trade_calls": self.trade_calls,
            "queue_depth": queue_depth,
            "queue_peak": self.queue_peak,
            "sweep_failures": self.sweep_failures,
            "reconciled_until_s": self.reconciled_until_s,
            "success_pct": self.success_pct(today),
            "detection_p99_s": p99(self.detection_s),
            "detect_to_recovered_p99_s": p99(self.to_recovered_s),
            "call_to_record_p99_s": p99(self.call_to_record_s),
        }


def parse_day(text: str) -> date | None:
    """An ISO day, or None if ``text`` is not one."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


class UnrecoverableAlerts:
    """The ``gaps_unrecoverable`` alert of each day: raised, raised again, resolved.

    Open in ``alerts``, the process's book (an earlier instance's too, once taken over);
    ``note`` ends the alert's message (how the gaps are tried again).

    Subject: the day. Raised again only when the count has doubled (about log2 of the day's
    gaps open at most); resolved once none of the day is left, or as given up once the day's
    gaps are no longer tried (it left the ``retake_days`` window).
    """

    def __init__(self, alerts: AlertBook, note: str = "") -> None:
        self._book = alerts
        self._note = note
        self._alerted: dict[date, int] = {}  # days open -> the count alerted last
        self._counts: dict[date, int] = {}  # days open -> their count at the last update

    def update(self, counts: Counter[date], first: date) -> None:
        """Alert, or resolve, by each day's unrecoverable gaps; ``first``: the oldest day known.

        A day before ``first`` is no longer tried: its alert is resolved as given up (it was
        left open for good, and a restart dropped a taken-over one silently). A day an
        earlier instance alerted is not alerted again for the count it has now.
        """
        for subject in sorted(self._book.subjects(UNRECOVERABLE_ALERT)):
            if (day := parse_day(subject)) is not None:
                self._alerted.setdefault(day, counts[day])
        for day in [d for d in self._alerted if d < first]:
            del self._alerted[day]
            count = self._counts.pop(day, 0)
            gaps = f"{count} gaps" if count else "the unrecoverable gaps"
            self._book.resolve(
                UNRECOVERABLE_ALERT,
                day.isoformat(),
                f"given up: {gaps} of {day} stay unrecoverable and are no longer tried",
            )
        for day, count in sorted(counts.items()):
            if day < first:
                continue  # no longer tried: given up above, not alerted again
            if count:
                self._counts[day] = count
            last = self._alerted.get(day)
            if last is not None and count < 2 * max(last, 1):
                continue
            self._alerted[day] = count
            self._book.raise_(
                UNRECOVERABLE_ALERT,
                day.isoformat(),
                "error",
                f"{day}: {count} gaps unrecoverable: KIS did not give their minute "
                f"bars{self._note}",
                {"day": day.isoformat(), "unrecoverable": str(count)},
                again=True,  # the count doubled
            )
        for day in [d for d in self._alerted if not counts[d]]:
            del self._alerted[day]
            self._counts.pop(day, None)
            self._book.resolve(
                UNRECOVERABLE_ALERT, day.isoformat(), f"{day}: no gap unrecoverable any more"
            )
