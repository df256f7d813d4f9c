"""A read of the database run beside Track B's evaluations, tried again on a backoff.

The context sync's (`workers.track_b.context_sync.LateSync`) and the take-over's
(`workers.track_b.earlier_run.LateTakeOver`) reads run in a thread, so that a read waiting
the reader pool's timeout does not stall the evaluations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from observer.db.engine import error_reason
from observer.db.outages import DATABASE_ERRORS
from observer.process.retry import Backoff

__all__ = ["ReadBeside"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ReadBeside(Generic[T]):
    """A read of the database run beside the evaluations, tried again on a backoff.

    It runs in a thread, so that a read waiting the reader pool's timeout does not stall
    the evaluations: one round starts it (`start`), a later one takes what it read
    (`taken`). The backoff is of wall time.
    """

    def __init__(self) -> None:
        self.backoff = Backoff(1.0, 30.0)
        self.reading: asyncio.Future[T] | None = None  # under way

    def due(self) -> bool:
        """Whether no read is under way and the pause after the last failure is over."""
        return self.reading is None and self.backoff.wait_s() <= 0

    def start(self, read: Callable[[], T]) -> None:
        """Begin ``read`` in a thread."""
        self.reading = asyncio.ensure_future(asyncio.to_thread(read))

    def taken(self, failed: Callable[[str, float], object]) -> T | None:
        """What the read gave once it is done; None while under way or if it failed.

        A read the database failed is told to ``failed`` (why, and the pause before the
        next try); any other error is raised.
        """
        reading = self.reading
        if reading is None or not reading.done():
            return None
        self.reading = None
        try:
            return reading.result()
        except DATABASE_ERRORS as exc:
            failed(error_reason(exc), self.backoff.failed())
            return None

    def abandon(self) -> None:
        """Drop a read under way, or take the failure it ended with.

        Its thread ends with the read, nothing waits for it; a failure nobody takes is
        logged by asyncio as never retrieved.
        """
        reading, self.reading = self.reading, None
        if reading is None:
            return
        if reading.done() and not reading.cancelled():
            failure = reading.exception()
            if failure is not None and not isinstance(failure, DATABASE_ERRORS):
                log.error("a read dropped at the streams' end had failed", exc_info=failure)
        reading.cancel()
