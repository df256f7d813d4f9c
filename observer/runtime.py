"""Process entry helpers: logging, and SIGTERM/SIGINT turned into a stop event."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["setup_logging", "stop_on_signals"]


def setup_logging(level: str = "INFO") -> None:
    """One line per record, led by time, level and logger name."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )


def stop_on_signals() -> threading.Event:
    """Return an event set by SIGTERM or SIGINT (the process then drains and exits)."""
    stop = threading.Event()

    def handle_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    return stop
