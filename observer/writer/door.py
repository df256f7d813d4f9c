"""What the writer lets in: a frame decoded, its sender allowed its sources, their number bounded.

Every frame passes `Door.let_in` before the store sees it. A frame that does not decode, or whose
envelopes' source and seq cannot be read, is rejected whole (logged, counted in ``rejected``,
never acknowledged); events that alone do not decode become rejected events in the store, so
their source keeps flowing. Over tcp a frame whose CURVE key may not send as its sources
(`observer.writer.owners`) is refused, as is one that would pass ``max_sources``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bus.codec import BusFrame, decode_parts
from bus.curve import ServerCurve
from bus.errors import FrameError
from bus.events import Alert, Event
from observer.writer.owners import SourceKeys

__all__ = ["FRAME_REJECTED", "Door"]

log = logging.getLogger(__name__)

FRAME_REJECTED = "bus_frame_rejected"
_UNKNOWN = ""  # the alert key of frames whose source cannot be read
_BEYOND = "\x00"  # the alert key of frames refused beyond max_sources (no source holds NUL)


class Door:
    """Decode and admit frames; keep the alerts it raises for the writer to commit."""

    def __init__(self, curve: ServerCurve | None, max_sources: int, known: Iterable[str]) -> None:
        self.curve = curve
        self.max_sources = max_sources
        self.rejected = 0  # frames rejected whole (undecodable, or beyond max_sources)
        self.refused_sources = 0  # frames whose key may not send as one of their sources
        # Client keys alerted for a source they may not use: once per key (keys are only
        # those of the allow-list, so a key inventing names cannot grow this or flood alerts).
        self._refused_keys: set[str] = set()
        self._may_send: dict[tuple[str, str], bool] = {}  # (key, source) -> allowed: a cache
        self._source_keys = SourceKeys()  # the key each source is sent with: one per source
        # Every source the writer keeps state for (marks, routes); bounded by max_sources.
        self.sources: set[str] = set(known)
        self._alerted: set[str] = set()  # admitted sources, _UNKNOWN and _BEYOND
        self._alerts: list[Event] = []
        if len(self.sources) > max_sources:
            log.warning(
                "the database holds %d sources, more than max_sources = %d: "
                "frames of new sources will be refused",
                len(self.sources),
                max_sources,
            )

    def take_alerts(self) -> list[Event]:
        """The alerts raised since the last call, for the writer to commit."""
        alerts, self._alerts = self._alerts, []
        return alerts

    def let_in(self, sender: bytes, raw: bytes, key: str) -> BusFrame | None:
        """The decoded frame if it may go to the store; None if it was rejected or refused.

        ``sender`` is the peer's routing id (named in the log); ``key`` is its CURVE key.
        """
        try:
            frame = decode_parts(raw)
        except FrameError as exc:
            self.rejected += 1
            log.warning("rejected frame from %s: %s", sender.hex(), exc)
            self._alert_once(_UNKNOWN, f"a frame from {sender.hex()} was rejected: {exc}")
            return None
        try:
            if not self._key_may_send(key, frame):
                return None
            sources = self.admit(frame)
        except FrameError as exc:
            self.rejected += 1
            log.warning("rejected frame from %s: %s", sender.hex(), exc)
            self._alert_once(_BEYOND, f"a frame from {sender.hex()} was refused: {exc}")
            return None
        if not self._one_key_per_source(key, sources):
            return None
        for index in frame.undecodable:
            env = frame.envelopes[index]
            self._alert_once(
                env.source,
                f"{env.source}/{env.seq} could not be decoded and is kept in rejected_events: "
                f"{getattr(env.event, 'reason', '')}",
            )
        return frame

    def admit(self, frame: BusFrame) -> frozenset[str]:
        """The frame's sources; `FrameError` if they would exceed ``max_sources``.

        The bound keeps a peer inventing names from growing the writer's memory.
        """
        sources = frame.sources
        new = sources - self.sources
        if new:
            if len(self.sources) + len(new) > self.max_sources:
                raise FrameError(
                    f"{len(new)} new sources (e.g. {min(new)[:40]!r}) would exceed "
                    f"[writer] max_sources = {self.max_sources}"
                )
            self.sources |= new
        return sources

    def _alert_once(self, source: str, message: str) -> None:
        """Alert the first of ``source``'s frames or events the door rejects in this run.

        An undecodable frame or event of an admitted ``source``; `_UNKNOWN`: a frame whose
        source cannot be read; `_BEYOND`: a frame refused beyond ``max_sources``. The alert
        (``bus_frame_rejected``, a warning) keeps the writer's health from staying silently
        green while a producer's events go nowhere.
        """
        if source in self._alerted:
            return
        self._alerted.add(source)
        subject = {_UNKNOWN: "unknown source", _BEYOND: "max_sources"}.get(source, source)
        log.error("%s (alerted once for %s in this run)", message, subject)
        # The writer's own alert must be storable whatever the peer sent: no NUL, bounded.
        text = message.replace("\x00", "\\x00")[:500]
        self._alerts.append(
            Alert(
                severity="warning",
                code=FRAME_REJECTED,
                message=text,
                context={"source": "" if source == _BEYOND else source},
                subject=subject,
            )
        )

    def _key_may_send(self, key: str, frame: BusFrame) -> bool:
        """Over CURVE: may ``key`` send as every source of ``frame``? Else refuse it."""
        if self.curve is None:
            return True
        if len(self._may_send) > 4 * self.max_sources:
            self._may_send.clear()  # refused names are not bounded by max_sources
        wrong = ""
        for source in frame.sources:
            allowed = self._may_send.get((key, source))
            if allowed is None:
                allowed = self._may_send[key, source] = self.curve.may_send(key, source)
            if not allowed:
                wrong = source[:40]
                break
        if not wrong:
            return True
        self.refused_sources += 1
        if key not in self._refused_keys:
            self._refused_keys.add(key)
            log.error(
                "refused frames from CURVE key %s: it may not send as source %r "
                "(counted in refused_sources from now on)",
                key,
                wrong,
            )
            self._alerts.append(
                Alert(
                    severity="critical",
                    code="bus_source_not_allowed",
                    message=f"a client key sent as source {wrong!r}, which it may not",
                    context={"key": key, "source": wrong},
                    subject=key,
                )
            )
        return False

    def _one_key_per_source(self, key: str, sources: frozenset[str]) -> bool:
        """Over CURVE: does no other key send as one of ``sources``? Else refuse the frame."""
        if self.curve is None:
            return True
        taken = self._source_keys.claim(key, sources)
        if taken is None:
            return True
        self.refused_sources += 1
        alert = self._source_keys.refusal(key, taken)
        if alert is not None:
            self._alerts.append(alert)
        return False
