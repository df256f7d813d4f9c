"""Daemons and session workers that fail again and again, each time after working a while.

A daemon that beat for ``stable_s`` after READY is forgiven its failures
(`observer.supervisor.program`), so one crashing every few minutes would restart for ever,
unalerted. `CRASH_LOOP_COUNT` such failures (the first after a forgiven count, of a run that
said READY) within `CRASH_LOOP_WINDOW_S` raise an error ``program_crash_loop`` (subject: the
program); a whole window without one resolves it. Fast failures end FATAL instead, and jobs
are not counted. It escalates ``program_replaced`` (`observer.supervisor.replacements`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from observer.alerts.book import AlertBook

__all__ = ["CRASH_LOOP_CODE", "CRASH_LOOP_COUNT", "CRASH_LOOP_WINDOW_S", "CrashLoops"]

CRASH_LOOP_COUNT = 5  # failures ...
CRASH_LOOP_WINDOW_S = 3600.0  # ... within this many (real) seconds; as long without: resolved
CRASH_LOOP_CODE = "program_crash_loop"


class CrashLoops:
    """Count each program's failures; alert a loop, resolve it after a quiet window.

    Parameters
    ----------
    alerts:
        The supervisor's alert book: the loops alerted and not resolved (its predecessor's
        too, once taken over: `taken_over`).
    count, window_s:
        ``count`` failures within ``window_s`` seconds are a loop; ``window_s`` seconds
        without a failure end it.
    """

    def __init__(
        self,
        alerts: AlertBook,
        count: int = CRASH_LOOP_COUNT,
        window_s: float = CRASH_LOOP_WINDOW_S,
    ) -> None:
        self._alerts = alerts
        self._count = count
        self._window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._quiet: dict[str, asyncio.TimerHandle] = {}  # an open loop's quiet window's end

    @property
    def open(self) -> set[str]:
        """The programs whose loop is alerted and not yet resolved."""
        return self._alerts.subjects(CRASH_LOOP_CODE)

    def failed(self, name: str) -> None:
        """A failure of program ``name`` after a run that worked (it is restarted).

        The supervisor counts only those: a daemon failing fast is parked FATAL and alerted
        ``program_fatal``; counting each of its failures raised a loop alert beside it.
        """
        now = time.monotonic()
        times = self._failures.setdefault(name, deque())
        times.append(now)
        while times[0] <= now - self._window_s:
            times.popleft()
        if self._alerts.is_open(CRASH_LOOP_CODE, name):
            self._quiet_from_now(name)
        elif len(times) >= self._count:
            minutes = self._window_s / 60
            message = (
                f"{name} failed {len(times)} times within {minutes:g} minutes, each time "
                "after running long enough to be restarted without end (see its log)"
            )
            self._alerts.raise_(CRASH_LOOP_CODE, name, "error", message)
            self._quiet_from_now(name)

    def taken_over(self, names: Iterable[str]) -> None:
        """Loops a predecessor alerted, now open in the book: resolved after a quiet window."""
        for name in names:
            self._quiet_from_now(name)

    def _quiet_from_now(self, name: str) -> None:
        if (handle := self._quiet.get(name)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        self._quiet[name] = loop.call_later(self._window_s, self._resolve, name)

    def _resolve(self, name: str) -> None:
        self._quiet.pop(name, None)
        self._failures.pop(name, None)
        minutes = self._window_s / 60
        self._alerts.resolve(CRASH_LOOP_CODE, name, f"{name}: no failure for {minutes:g} minutes")
