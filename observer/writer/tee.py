"""The writer's capture tee: committed frames, in commit order, to a capture file.

A restarted writer never overwrites a capture: it continues in ``<stem>-1<suffix>``, ...
A write the capture's volume refuses stops the tee for the rest of the run, never the
writer (the database has every event): the file keeps its whole frames up to there
(`bus.capture.CaptureWriter`), and `CaptureTee.write` returns the ``capture_stopped``
alert for the writer to commit. A restarted writer's first frames captured end an earlier
run's alert (``left``: the severities of those the database holds open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from bus.capture import CaptureHeader, CaptureWriter
from bus.events import Alert, AlertResolved, Severity

__all__ = ["STOPPED", "CaptureTee"]

STOPPED = "capture_stopped"

log = logging.getLogger(__name__)


class CaptureTee:
    """Append committed frames to a new capture file next to ``first`` (or ``first``)."""

    def __init__(self, first: Path, left: Iterable[Severity] = ()) -> None:
        first.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path, n = first, 0
        while path.exists():
            n += 1
            path = first.with_name(f"{first.stem}-{n}{first.suffix}")
        log.info("capturing committed frames to %s", path)
        self._file: CaptureWriter | None = CaptureWriter(
            path, CaptureHeader(created_ns=time.time_ns(), origin="writer")
        )
        self.stopped = False  # its volume refused a write: stopped for this run
        self._left = sorted(set(left))  # an earlier run's open alerts' severities

    @property
    def path(self) -> Path | None:
        """The file captured into; None once stopped or closed."""
        return None if self._file is None else self._file.path

    def write(self, raws: Iterable[bytes]) -> list[Alert | AlertResolved]:
        """Append frames and hand them to the system.

        Returns the ``capture_stopped`` alert if refused; the end of an earlier run's once
        frames are captured again.
        """
        if self._file is None:
            return []
        try:
            for raw in raws:
                self._file.append(raw)
            self._file.flush()
        except OSError as exc:
            capture, self._file = self._file, None
            capture.abandon()
            self.stopped = True
            reason = exc.strerror or type(exc).__name__
            message = (
                f"capture {capture.path} stopped after {capture.frames} frames: {reason}; "
                "the database has every event, the capture only those up to there "
                "(a restarted writer captures into a new file)"
            )
            log.error("%s", message)
            return [
                Alert(
                    severity="critical",
                    code=STOPPED,
                    message=message,
                    context={"path": str(capture.path), "frames": str(capture.frames)},
                )
            ]
        ended, self._left = self._left, []
        again = f"frames are captured again, into {self._file.path}"
        return [AlertResolved(code=STOPPED, severity=s, message=again) for s in ended]

    def close(self) -> None:
        """Write the last frames and close; a refusal now is only logged."""
        if self._file is None:
            return
        capture, self._file = self._file, None
        try:
            capture.close()
        except OSError as exc:
            log.error("capture %s ends after %d frames: %s", capture.path, capture.frames, exc)
