"""One retry policy: capped exponential backoff, on the project's Clock.

`retry` runs an async call under tenacity with full jitter (or the curve plus a bounded jitter:
the fallback sector source), sleeping on the `Clock` so a simulated day retries in simulated time
(the KIS client, the master-file job). `backoff_s` is the same curve for code that schedules a
retry (gap recovery's jobs, the supervisor's restarts); `Backoff` keeps that schedule for a loop
that goes on between tries (the writer: its batches and its own alerts share one).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from observer.calendar.clock import Clock

__all__ = ["Backoff", "backoff_s", "retry"]

T = TypeVar("T")

# 2**62 seconds is beyond any cap; a larger exponent would overflow the float.
_MAX_DOUBLINGS = 62


def backoff_s(failures: int, initial_s: float, max_s: float) -> float:
    """The pause after ``failures`` (>= 1) failures in a row: ``initial_s`` doubled, capped."""
    return min(initial_s * 2.0 ** min(max(failures - 1, 0), _MAX_DOUBLINGS), max_s)


class Backoff:
    """Failures in a row and when the next try is due, on the `backoff_s` curve.

    `failed` counts a failure and returns the pause before the next try: the curve's value
    jittered over its upper half (0.5x to 1x), so that clients failing together spread out
    without any try coming much sooner than the curve. `wait_s` is what is left of that pause;
    `succeeded` starts again from ``initial_s``; `failing_s` is how long the failures in a row
    have lasted.
    """

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._monotonic = monotonic
        self._jitter = jitter
        self._next_at = 0.0
        self._first_failed_at = 0.0

    def failed(self) -> float:
        """Count a failure; the pause before the next try."""
        if not self.failures:
            self._first_failed_at = self._monotonic()
        self.failures += 1
        pause = backoff_s(self.failures, self.initial_s, self.max_s) * self._jitter(0.5, 1.0)
        self._next_at = self._monotonic() + pause
        return pause

    def succeeded(self) -> None:
        """The next failure pauses ``initial_s`` again."""
        self.failures = 0
        self._next_at = 0.0

    def failing_s(self) -> float:
        """Seconds since the first of the failures in a row (0: the last try succeeded)."""
        return self._monotonic() - self._first_failed_at if self.failures else 0.0

    def wait_s(self) -> float:
        """Seconds until the next try is due (0: now)."""
        return max(0.0, self._next_at - self._monotonic()) if self.failures else 0.0


async def retry(
    call: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    attempts: int,
    initial_s: float,
    max_s: float,
    retry_if: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    jitter_s: float | None = None,
) -> T:
    """Await ``call()`` up to ``attempts`` times while it raises what ``retry_if`` accepts.

    Between tries it sleeps on ``clock`` a uniform pause up to `backoff_s` (full jitter, so
    clients failing together do not retry together), after calling ``on_retry(error,
    attempt, pause)``. With ``jitter_s`` the pause is `backoff_s` itself plus a uniform
    jitter up to ``jitter_s``: never sooner than the curve (a source that rate-limits, and
    says nothing of when to come back). The last error, or any other, is raised as it is.
    """
    # The first try runs bare: nearly every call succeeds at once, and tenacity's machinery
    # costs about 60 us a call (Track A alone makes over 40,000 calls a day).
    first_failure: Exception | None = None
    try:
        return await call()
    except Exception as error:
        if attempts <= 1 or not retry_if(error):
            raise
        first_failure = error

    async def again() -> T:
        """The first failure as tenacity's first attempt, then the real tries."""
        nonlocal first_failure
        if first_failure is not None:
            error, first_failure = first_failure, None
            raise error
        return await call()

    # Loaded here: `backoff_s` is on the writer's and the supervisor's path to READY.
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
    from tenacity.wait import wait_base, wait_exponential, wait_random, wait_random_exponential

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            assert error is not None
            on_retry(error, state.attempt_number, state.next_action.sleep)

    wait: wait_base = wait_random_exponential(multiplier=initial_s, max=max_s)
    if jitter_s is not None:  # initial_s, 2x, 4x ... up to max_s, each plus [0, jitter_s]
        wait = wait_exponential(multiplier=initial_s, max=max_s) + wait_random(0, jitter_s)
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception(retry_if),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await again()
    raise AssertionError("unreachable: tenacity reraises")
