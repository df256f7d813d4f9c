"""Real-time frames of a layout the client does not know: counted, kept, alerted per TR and width.

KIS documents two generations of its real-time layouts and may publish more. A frame whose
record width none of its TR's known layouts has is refused whole by the decoder
(`observer.kis.realtime`): nothing of it is stored as data, it is kept as a rejected record
(`workers.track_b.rejections`), and the first of each TR and width raises one
``track_b_layout_unknown`` error, whatever the accounts and however many frames follow. It is
resolved once that TR's frames have read in a known layout for ``quiet_s`` (clock seconds)
without another of that width.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.kis.frames import DroppedFrame

__all__ = ["LAYOUT_UNKNOWN", "UnknownLayouts"]

log = logging.getLogger(__name__)

LAYOUT_UNKNOWN = "track_b_layout_unknown"
_NS = 1_000_000_000


class UnknownLayouts:
    """The (TR, width) pairs refused as unknown layouts: counts and their open alerts."""

    def __init__(self, clock: Clock, alerts: AlertBook, quiet_s: float) -> None:
        self.clock = clock
        self.alerts = alerts
        self.quiet_ns = int(quiet_s * _NS)
        self.counts: Counter[tuple[str, str]] = Counter()  # (tr_id, width) -> frames refused
        self.open: dict[str, int] = {}  # subject ``TR/width`` -> its latest refusal (ns)

    def refused(self, alias: str, frame: DroppedFrame) -> None:
        """A frame of ``alias``'s session refused for its layout: counted, alerted once."""
        self.counts[frame.tr_id, frame.width] += 1
        subject = f"{frame.tr_id}/{frame.width}"
        known = subject in self.open
        self.open[subject] = frame.received_ns
        if known:
            return
        message = (
            f"KIS sent {frame.tr_id} frames whose records are {frame.width} fields wide "
            f"(first on account {alias}), a layout the client does not know: each is refused "
            "whole and kept as a rejected record, none stored as data; the trades missed are "
            "gaps recovered from the minute bars"
        )
        log.error("%s", message)
        context = {"account": alias, "tr_id": frame.tr_id, "width": frame.width}
        self.alerts.raise_(LAYOUT_UNKNOWN, subject, "error", message, context)

    def on_read(self, tr_id: str, received_ns: int) -> None:
        """A ``tr_id`` frame read in a known layout: its alerts quiet long enough resolved."""
        if not self.open:
            return
        prefix = f"{tr_id}/"
        for subject, last_ns in list(self.open.items()):
            if subject.startswith(prefix) and received_ns - last_ns >= self.quiet_ns:
                del self.open[subject]
                why = (
                    f"{tr_id} read in a known layout, none {subject.partition('/')[2]} fields "
                    f"wide for {self.quiet_ns / _NS:.0f}s"
                )
                if self.alerts.resolve(LAYOUT_UNKNOWN, subject, why):
                    log.warning("%s: %s", subject, why)

    def taken_over(self, subjects: Iterable[str]) -> None:
        """Alerts an earlier run left open: resolved by the same rule, quiet counted from now."""
        now = self.clock.now_ns()
        for subject in subjects:
            self.open.setdefault(subject, now)
