"""Real-time data Track B refused to store: kept (bounded), counted, and alerted.

Every refusal (a check of `observer.kis.record_checks`, a record the decoder cannot read, a frame
the stream dropped) is counted per account and kind and published as a `RealtimeRejected`
(its text, 4 KB at most) within `KEPT_PER_SYMBOL` a symbol and `KEPT_PER_KIND` a kind a day.
A record a check refuses is a ``track_b_data_rejected`` error per account, kind and symbol
(at most `ALERTED_SYMBOLS`, then ``account/kind/*``), resolved once ``quiet_s`` passed
without another; a burst of bad frames (`observer.kis.frames`) a ``track_b_bad_frames``
error, resolved with its episode. Both are open in the process's `AlertBook`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

from bus.events import Event, RealtimeRejected
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.kis.frames import DroppedFrame
from observer.kis.stream import RealtimeEvents

__all__ = [
    "ALERTED_SYMBOLS",
    "BAD_FRAMES",
    "DATA_REJECTED",
    "KEPT_PER_KIND",
    "KEPT_PER_SYMBOL",
    "Rejections",
]

log = logging.getLogger(__name__)

DATA_REJECTED = "track_b_data_rejected"
BAD_FRAMES = "track_b_bad_frames"
KEPT_PER_SYMBOL = 20  # rejected records kept whole per account, kind and symbol a day
KEPT_PER_KIND = 200  # ... and per account and kind a day, whatever the symbols
ALERTED_SYMBOLS = 10  # open alerts per account and kind, one more for the rest
_NS = 1_000_000_000
_KST_S = 9 * 3600
_SWEEP_NS = _NS  # how often an account's open alerts are judged, as its data is read


@dataclass(slots=True)
class _Open:
    """One alerted account, kind and symbol: its latest refusal, and how many since."""

    last_ns: int
    count: int = 0


class Rejections:
    """Every account's refused data: the rows kept, the counts, and their alerts."""

    def __init__(
        self, clock: Clock, publish: Callable[[Event], object], alerts: AlertBook, quiet_s: float
    ) -> None:
        self.clock = clock
        self.publish = publish  # the rejected records
        self.alerts = alerts
        self.quiet_ns = int(quiet_s * _NS)
        self.counts: Counter[tuple[str, str]] = Counter()  # (alias, kind) -> since the start
        self.kept = 0  # rejected records published, since the start
        self._day = -1  # the KST day the two below count
        self._kept_symbol: Counter[tuple[str, str, str]] = Counter()  # (alias, kind, symbol)
        self._kept_kind: Counter[tuple[str, str]] = Counter()
        self.open: dict[str, dict[str, _Open]] = {}  # alias -> subject -> its open alert
        self._swept: dict[str, int] = {}  # alias -> when its alerts were last judged

    def reject(
        self,
        alias: str,
        fault: tuple[str, str],
        frame: RealtimeEvents,
        symbol: str,
        received_ns: int,
        exchange_ns: int = 0,
        *,
        alert: bool = True,
    ) -> None:
        """A record of ``frame`` refused for ``fault`` (kind, why): counted, kept, alerted once.

        Kept if the day's caps allow; alerted (``alert``) once per kind and symbol.
        """
        kind, why = fault
        text = frame.text[: RealtimeRejected.TEXT_LENGTH]
        length = len(frame.text.encode())
        self._count(alias, kind, why, frame.tr_id, symbol, text, length, received_ns, exchange_ns)
        if alert:
            self._alert(alias, kind, symbol, frame.tr_id, why)

    def dropped(self, alias: str, frame: DroppedFrame) -> None:
        """A frame the stream dropped: counted and kept (alerted by its kind's watcher)."""
        self._count(
            alias,
            frame.cause,
            frame.error,
            frame.tr_id,
            "",
            frame.text,
            frame.length,
            frame.received_ns,
        )

    def _count(
        self,
        alias: str,
        kind: str,
        why: str,
        tr_id: str,
        symbol: str,
        text: str,
        length: int,
        received_ns: int,
        exchange_ns: int = 0,
    ) -> None:
        self.counts[alias, kind] += 1
        if self._keeps(alias, kind, symbol, received_ns):
            self.kept += 1
            self.publish(
                RealtimeRejected(
                    account=alias,
                    kind=kind,
                    symbol=symbol,
                    tr_id=tr_id,
                    reason=why,
                    received_ns=received_ns,
                    exchange_ns=exchange_ns,
                    text=text,
                    length=length,
                )
            )

    def _keeps(self, alias: str, kind: str, symbol: str, received_ns: int) -> bool:
        day = (received_ns // _NS + _KST_S) // 86_400
        if day != self._day:  # a new day: its own caps (and no memory of the last one's)
            self._day = day
            self._kept_symbol.clear()
            self._kept_kind.clear()
        if self._kept_kind[alias, kind] >= KEPT_PER_KIND:
            return False
        if self._kept_symbol[alias, kind, symbol] >= KEPT_PER_SYMBOL:
            return False
        self._kept_kind[alias, kind] += 1
        self._kept_symbol[alias, kind, symbol] += 1
        return True

    def _alert(self, alias: str, kind: str, symbol: str, tr_id: str, why: str) -> None:
        now = self.clock.now_ns()
        alerts = self.open.setdefault(alias, {})
        subject = f"{alias}/{kind}/{symbol}"
        if subject not in alerts:
            prefix = f"{alias}/{kind}/"
            alerted = sum(s.startswith(prefix) for s in alerts)
            if alerted >= ALERTED_SYMBOLS:
                subject = prefix + "*"
        known = alerts.get(subject)
        if known is not None:
            known.last_ns, known.count = now, known.count + 1
            return
        alerts[subject] = _Open(now, 1)
        what = "more symbols" if subject.endswith("/*") else (symbol or "a record")
        message = (
            f"account {alias}: KIS sent {tr_id or 'data'} of {what} that Track B refuses "
            f"({kind}: {why}): kept as a rejected record, never stored as data; a refused trade "
            "of a streamed symbol is a gap recovered from the minute bars"
        )
        log.error("%s", message)
        context = {"account": alias, "kind": kind, "symbol": symbol}
        self.alerts.raise_(DATA_REJECTED, subject, "error", message, context)

    def on_data(self, alias: str, received_ns: int) -> None:
        """The account's data was read: its alerts quiet for ``quiet_s`` are resolved."""
        alerts = self.open.get(alias)
        if not alerts or received_ns - self._swept.get(alias, 0) < _SWEEP_NS:
            return
        self._swept[alias] = received_ns
        for subject, known in list(alerts.items()):
            if received_ns - known.last_ns >= self.quiet_ns:
                del alerts[subject]
                why = f"none for {self.quiet_ns / _NS:.0f}s ({known.count} in the episode)"
                self._resolve(DATA_REJECTED, subject, why)

    def flood(self, alias: str, why: str) -> None:
        """The account's stream reconnects on a burst of bad frames: alerted once an episode."""
        if self.flooding(alias):
            return
        message = (
            f"account {alias}: {why}: the session reconnects once (with its backoff), then "
            "drops and counts the bad frames until they stop"
        )
        log.error("%s", message)
        self.alerts.raise_(BAD_FRAMES, alias, "error", message, {"account": alias})

    def flooding(self, alias: str) -> bool:
        """Whether the account's burst of bad frames is alerted: its episode is open."""
        return self.alerts.is_open(BAD_FRAMES, alias)

    def flood_over(self, alias: str, why: str) -> None:
        """The burst's episode ended (``why``)."""
        self._resolve(BAD_FRAMES, alias, why)

    def taken_over(self, subjects: Collection[str]) -> None:
        """`DATA_REJECTED` alerts an earlier run left open (of configured accounts).

        Resolved by the same rules as this run's, their quiet time counted from now.
        """
        now = self.clock.now_ns()
        for subject in subjects:
            alias = subject.partition("/")[0]
            self.open.setdefault(alias, {}).setdefault(subject, _Open(now))

    def _resolve(self, code: str, subject: str, why: str) -> None:
        message = f"account {subject.partition('/')[0]}: {subject}: {why}"
        if self.alerts.resolve(code, subject, message):
            log.warning("%s", message)
