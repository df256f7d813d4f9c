"""What to do with a gap (by its duration) and which minute bars cover it.

Up to ``immediate_max_s`` (5 s) a gap is recovered first; up to ``queue_max_s`` (60 s) it is
queued behind those; longer gaps get a marker only, unless ``long_gaps = "backfill"`` (always
for ``backfill_reasons``: a Track B restart), recovered last. A minute bar is final only once
its minute has closed, so a gap is recovered no sooner than ``settle_s`` after the close of
its last minute (`ready_ns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bus.events import Venue
from observer.config.workers import GapRecoverySettings

__all__ = ["PRIORITY", "STAMP_NS", "Pending", "Plan", "minutes_of", "plan_for", "ready_ns"]

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
# Trade stamps are whole seconds: a gap that ends at the stamp 10:01:00 may have lost trades
# stamped 10:01:00 (up to 10:01:00.999), so it reaches a second past its end.
STAMP_NS = _NS

Plan = Literal["immediate", "queued", "backfill", "marker"]
PRIORITY: dict[Plan, int] = {"immediate": 0, "queued": 1, "backfill": 2, "marker": 3}


@dataclass(frozen=True, slots=True)
class Pending:
    """A gap waiting for recovery, as detected."""

    gap_id: str
    symbol: str
    start_ns: int
    end_ns: int
    reason: str
    detected_ns: int
    venue: Venue = "KRX"  # whose trades are missing: its minute bars are asked for
    # A volume-chain gap's cumulative volumes around the missing trades (None: another kind):
    # the exchange's trades between them are the gap's (`observer.kis.time_trades`).
    cum_before: int | None = None
    cum_after: int | None = None

    @property
    def duration_s(self) -> float:
        """How long the data may be missing (seconds)."""
        return max(0, self.end_ns - self.start_ns) / _NS


def plan_for(duration_s: float, settings: GapRecoverySettings, reason: str = "") -> Plan:
    """The policy's answer for a gap of ``duration_s`` seconds opened for ``reason``."""
    if duration_s <= settings.immediate_max_s:
        return "immediate"
    if duration_s <= settings.queue_max_s:
        return "queued"
    backfilled = settings.long_gaps == "backfill" or reason in settings.backfill_reasons
    return "backfill" if backfilled else "marker"


def minutes_of(start_ns: int, end_ns: int) -> list[int]:
    """The opening instants (UTC ns) of the minutes a gap reaches: ``[start, end + STAMP_NS)``.

    The reconciliation explains a short minute by the same reach (`reconcile.check_minutes`):
    a trade lost on a gap's closing stamp is fetched, not left short under a "recovered" gap.
    KST is UTC+9 h exactly, so KST minutes start on UTC minute boundaries.
    """
    first = start_ns - start_ns % _MINUTE_NS
    last_ns = max(start_ns, end_ns + STAMP_NS - 1)
    last = last_ns - last_ns % _MINUTE_NS
    return list(range(first, last + 1, _MINUTE_NS))


def ready_ns(start_ns: int, end_ns: int, settle_s: float) -> int:
    """When the bars of a gap are final: the close of its last minute, plus ``settle_s``.

    KIS's newest row is the minute in progress, its volume lagging: a gap ending at 10:00:05 (or
    10:00:59, whose stamp second runs to 10:00:59.999) waits until 10:01:00 plus the settle
    time, whatever its priority.
    """
    return minutes_of(start_ns, end_ns)[-1] + _MINUTE_NS + int(settle_s * _NS)
