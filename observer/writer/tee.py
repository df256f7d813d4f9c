"""The writer's capture tee: committed frames, in commit order, to a capture file.

A restarted writer never overwrites a capture: it continues in ``<stem>-1<suffix>``, ...
A write the capture's volume refuses stops the tee for the rest of the run, never the
writer (the database has every event): the file keeps its whole frames up to there
(`bus.capture.CaptureWriter`), and `CaptureTee.write` returns the ``capture_stopped``
alert for the writer to commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from bus.capture import CaptureHeader, CaptureWriter
from bus.events import Alert

__all__ = ["CaptureTee"]

log = logging.getLogger(__name__)


class CaptureTee:
    """Append committed frames to a new capture file next to ``first`` (or ``first``)."""

    def __init__(self, first: Path) -> None:
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

    def write(self, raws: Iterable[bytes]) -> Alert | None:
        """Append frames and hand them to the system; the ``capture_stopped`` alert if refused."""
        if self._file is None:
            return None
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
            return Alert(
                severity="critical",
                code="capture_stopped",
                message=message,
                context={"path": str(capture.path), "frames": str(capture.frames)},
            )
        return None

    def close(self) -> None:
        """Write the last frames and close; a refusal now is only logged."""
        if self._file is None:
            return
        capture, self._file = self._file, None
        try:
            capture.close()
        except OSError as exc:
            log.error("capture %s ends after %d frames: %s", capture.path, capture.frames, exc)
