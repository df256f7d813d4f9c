"""`QuietGuard`: reads cut by a stop or by a quiet spell, never by anything else."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from observer.calendar.clock import ManualClock
from observer.kis.waits import QuietGuard

START_NS = 1_795_000_000_000_000_000


async def _yield_until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (bounded: a failing test ends)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never")


def test_a_stop_ends_a_pending_read_with_none_and_the_message_stays_queued() -> None:
    async def main() -> None:
        stop, queue = asyncio.Event(), asyncio.Queue[str]()
        async with QuietGuard(ManualClock(START_NS), stop, lambda: (90.0, 0.0)) as guard:
            queue.put_nowait("first")
            assert await guard.next(queue.get) == "first"
            reading = asyncio.ensure_future(guard.next(queue.get))
            await asyncio.sleep(0)
            stop.set()
            assert await reading is None
            assert await guard.next(queue.get) is None  # stopped for good
        queue.put_nowait("kept")  # the cancelled get took nothing
        assert queue.get_nowait() == "kept"

    asyncio.run(main())


def test_quiet_for_the_clock_limit_raises_timeout_and_each_message_starts_it_again() -> None:
    async def main() -> None:
        clock, stop, queue = ManualClock(START_NS), asyncio.Event(), asyncio.Queue[int]()
        async with QuietGuard(clock, stop, lambda: (90.0, 0.0)) as guard:
            for n in range(3):  # each message within the limit: no timeout
                clock.advance(80)
                await asyncio.sleep(0)
                queue.put_nowait(n)
                assert await guard.next(queue.get) == n
            reading = asyncio.ensure_future(guard.next(queue.get))
            clock.advance(80)
            for _ in range(20):
                await asyncio.sleep(0)
            assert not reading.done()  # 80 s of quiet: still reading
            clock.advance(11)
            with pytest.raises(TimeoutError):
                await reading
            with pytest.raises(TimeoutError):
                await guard.next(queue.get)

    asyncio.run(main())


def test_a_limit_that_shrinks_counts_from_the_latest_message() -> None:
    async def main() -> None:
        clock, stop, queue = ManualClock(START_NS), asyncio.Event(), asyncio.Queue[int]()
        limit = [600.0]
        async with QuietGuard(clock, stop, lambda: (limit[0], 0.0)) as guard:
            await asyncio.sleep(0)  # the watchdog counts 600 s
            queue.put_nowait(1)
            assert await guard.next(queue.get) == 1
            limit[0] = 90.0  # the message brought the limit down
            reading = asyncio.ensure_future(guard.next(queue.get))
            await asyncio.sleep(0)
            clock.advance(91)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reading, 5)

    asyncio.run(main())


def test_the_wall_limit_holds_after_the_clock_limit() -> None:
    async def main() -> None:
        clock, stop, queue = ManualClock(START_NS), asyncio.Event(), asyncio.Queue[int]()
        async with QuietGuard(clock, stop, lambda: (90.0, 0.3)) as guard:
            reading = asyncio.ensure_future(guard.next(queue.get))
            clock.advance(91)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await reading
            assert loop.time() - started >= 0.25  # the wall floor, not the clock alone

    asyncio.run(main())


def test_a_cancellation_not_the_guards_goes_through() -> None:
    async def main() -> None:
        stop, queue = asyncio.Event(), asyncio.Queue[int]()
        async with QuietGuard(ManualClock(START_NS), stop, lambda: (90.0, 0.0)) as guard:
            reading = asyncio.ensure_future(guard.next(queue.get))
            await asyncio.sleep(0)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            queue.put_nowait(7)  # the guard reads on
            assert await guard.next(queue.get) == 7

    asyncio.run(main())


def test_a_stop_beside_an_outside_cancellation_still_cancels() -> None:
    async def main() -> None:
        stop, queue = asyncio.Event(), asyncio.Queue[int]()
        async with QuietGuard(ManualClock(START_NS), stop, lambda: (90.0, 0.0)) as guard:
            reading = asyncio.ensure_future(guard.next(queue.get))
            await asyncio.sleep(0)
            stop.set()  # the guard's cancel, then the owner's, before the reader runs
            await _yield_until(lambda: guard._cut)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading

    asyncio.run(main())


def test_a_failing_watchdog_ends_the_reads_with_its_error() -> None:
    async def main() -> None:
        clock, stop, queue = ManualClock(START_NS), asyncio.Event(), asyncio.Queue[int]()
        broken = [False]

        def limits() -> tuple[float, float]:
            if broken[0]:
                raise RuntimeError("a limit that cannot be computed")
            return 90.0, 0.0

        async with QuietGuard(clock, stop, limits) as guard:
            await asyncio.sleep(0)  # the watchdog counts from the start
            queue.put_nowait(1)
            assert await guard.next(queue.get) == 1
            reading = asyncio.ensure_future(guard.next(queue.get))
            await asyncio.sleep(0)
            broken[0] = True
            clock.advance(91)  # the watchdog wakes, heard a message, asks the limits again
            with pytest.raises(RuntimeError, match="cannot be computed"):
                await asyncio.wait_for(reading, 5)

    asyncio.run(main())
