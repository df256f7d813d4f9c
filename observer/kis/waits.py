"""Awaiting work that a stop, or a time limit of the clock's, may cut short."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from observer.calendar.clock import Clock

__all__ = ["QuietGuard", "wait_unless"]

_T = TypeVar("_T")
_NS = 1_000_000_000


async def wait_unless(
    stop: asyncio.Event, work: Awaitable[_T], limit: Awaitable[None] | None = None
) -> _T | None:
    """The result of ``work``, or None if ``stop`` is set first.

    Raises TimeoutError if ``limit`` (a Clock sleep, so simulated time counts) ends first.
    The losers are cancelled.
    """
    task = asyncio.ensure_future(work)
    others: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if limit is not None:
        others.append(asyncio.ensure_future(limit))
    try:
        done, _ = await asyncio.wait({task, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for other in others:
            other.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if stop.is_set():
        return None
    raise TimeoutError


class QuietGuard:
    """Awaits one message after another until a stop, or until none came for a quiet limit.

    `wait_unless` costs three tasks per await (50-100 us on these machines): a busy feed's
    frames spent more CPU there than in their parsing. A guard holds one watchdog task and
    one stop waiter for its whole life and cancels the reader's await when either fires, as
    `asyncio.timeout` does, so a message already received costs no task at all. Use it as
    an async context manager around the reads of one connection.

    ``limits`` gives the quiet limit as it stands: (clock seconds, wall seconds), both
    counted from the latest message (or the guard's start); a read is cut when both have
    passed with nothing received. It is asked again after every message, so a limit that
    shrinks (the read found data again) takes effect from that message, as a fresh timer
    per await did.
    """

    def __init__(
        self, clock: Clock, stop: asyncio.Event, limits: Callable[[], tuple[float, float]]
    ) -> None:
        self._clock, self._stop, self._limits = clock, stop, limits
        self._why: type[BaseException] | None = None  # what ended the reads: _Stopped or quiet
        self._reader: asyncio.Task[Any] | None = None  # the task awaiting a message, if any
        self._cut = False  # this guard cancelled the reader
        self._heard, self._heard_ns, self._heard_wall = 0, 0, 0.0  # the latest message
        self._timing: float = 0.0  # the clock limit the watchdog is counting
        self._tasks: list[asyncio.Future[Any]] = []
        self._failure: BaseException | None = None  # the watchdog's, raised to the reader

    async def __aenter__(self) -> QuietGuard:
        self._mark()
        stopped = asyncio.ensure_future(self._stop.wait())
        stopped.add_done_callback(self._stopped)
        self._tasks = [stopped, self._watchdog()]
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()

    async def next(self, receive: Callable[[], Awaitable[_T]]) -> _T | None:
        """``receive()``'s result, awaited in this task; None once stopped.

        ``receive`` must let a cancellation through and lose nothing to it (websockets'
        ``recv`` does). Raises TimeoutError once the quiet limit has passed, and the
        watchdog's own error should it fail (``limits`` raising).
        """
        clock_s = self._limits()[0]
        if clock_s < self._timing:  # shorter since the watchdog started counting: again
            self._timing = clock_s
            self._tasks[1].cancel()
            self._tasks[1] = self._watchdog()
        if self._why is None:
            self._reader = asyncio.current_task()
            try:
                message = await receive()
            except asyncio.CancelledError:
                if not self._cut or self._reader is None or self._reader.uncancel():
                    raise  # not this guard's, or another's besides
            else:
                self._mark()
                return message
            finally:
                self._reader, self._cut = None, False
        if self._failure is not None:
            raise self._failure
        if self._why is _Stopped:
            return None
        raise TimeoutError

    def _mark(self) -> None:
        self._heard += 1
        self._heard_ns, self._heard_wall = self._clock.now_ns(), time.monotonic()

    def _stopped(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.cancelled():  # set, not the guard's end
            self._interrupt(_Stopped)

    def _interrupt(self, why: type[BaseException]) -> None:
        if self._why is None:
            self._why = why
            if self._reader is not None:
                self._cut = True
                self._reader.cancel()

    def _watchdog(self) -> asyncio.Future[None]:
        """The watchdog task; should it fail, its error ends the reads (raised by `next`)."""
        task = asyncio.ensure_future(self._watch())
        task.add_done_callback(self._watch_ended)
        return task

    def _watch_ended(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self._failure = error
            self._interrupt(type(error))

    async def _watch(self) -> None:
        while True:
            heard, heard_ns, heard_wall = self._heard, self._heard_ns, self._heard_wall
            clock_s, wall_s = self._limits()
            self._timing = clock_s
            await self._clock.sleep(max(0.0, clock_s - (self._clock.now_ns() - heard_ns) / _NS))
            await asyncio.sleep(max(0.0, wall_s - (time.monotonic() - heard_wall)))
            if self._heard == heard:
                self._interrupt(TimeoutError)
                return


class _Stopped(Exception):
    """The stop was set: what ended a guard's reads (never raised)."""
