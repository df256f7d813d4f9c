"""The one retry policy: its curve, and tenacity on the project's Clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.errors import KisAuthError, KisTransportError
from observer.process.retry import Backoff, backoff_s, retry


class SleepRecorder:
    """A clock whose sleeps return at once and are remembered."""

    spec = "test"

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now_ns(self) -> int:
        return 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@given(
    st.integers(1, 10_000),
    st.floats(0.001, 100, allow_nan=False),
    st.floats(0.001, 10_000, allow_nan=False),
)
def test_backoff_doubles_from_initial_up_to_the_cap(
    failures: int, initial: float, cap: float
) -> None:
    pause = backoff_s(failures, initial, cap)
    assert pause == min(initial * 2.0 ** min(failures - 1, 62), cap)
    assert pause <= cap and backoff_s(failures + 1, initial, cap) >= pause
    assert backoff_s(1, initial, cap) == min(initial, cap)


def run_failing(failures: int, error: Exception, attempts: int = 5) -> tuple[int, SleepRecorder]:
    clock = SleepRecorder()
    calls = 0
    retried: list[int] = []

    async def call() -> int:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise error
        return calls

    result = asyncio.run(
        retry(
            call,
            clock=clock,
            attempts=attempts,
            initial_s=0.5,
            max_s=4.0,
            retry_if=lambda e: isinstance(e, KisTransportError),
            on_retry=lambda e, attempt, pause: retried.append(attempt),
        )
    )
    assert retried == list(range(1, failures + 1))
    return result, clock


@given(st.integers(0, 4))
def test_retryable_failures_are_retried_with_jittered_pauses_on_the_clock(failures: int) -> None:
    result, clock = run_failing(failures, KisTransportError("timed out"))
    assert result == failures + 1
    assert len(clock.sleeps) == failures
    for attempt, pause in enumerate(clock.sleeps, 1):
        assert 0 <= pause <= backoff_s(attempt, 0.5, 4.0)


def test_the_last_failure_and_any_other_error_are_raised_as_they_are() -> None:
    with pytest.raises(KisTransportError, match="timed out"):
        run_failing(5, KisTransportError("timed out"))
    with pytest.raises(KisAuthError):
        run_failing(1, KisAuthError("EGW00123", "expired"))


@given(
    st.lists(st.floats(0.5, 1.0), min_size=1, max_size=30),
    st.floats(0.001, 10, allow_nan=False),
    st.floats(0.001, 100, allow_nan=False),
)
def test_a_backoff_schedule_waits_the_jittered_curve_and_a_success_restarts_it(
    jitters: list[float], initial: float, cap: float
) -> None:
    now = [1000.0]
    draws = iter(jitters)
    backoff = Backoff(
        initial, cap, monotonic=lambda: now[0], jitter=lambda _a, _b: next(draws, 1.0)
    )
    assert backoff.wait_s() == 0  # no failure yet: due at once
    first_failed_at = now[0]
    for failures, jitter in enumerate(jitters, 1):
        pause = backoff.failed()
        assert backoff.failing_s() == pytest.approx(now[0] - first_failed_at)
        assert pause == backoff_s(failures, initial, cap) * jitter
        assert 0.5 * backoff_s(failures, initial, cap) <= pause <= backoff_s(failures, initial, cap)
        assert backoff.wait_s() == pytest.approx(pause)
        now[0] += pause / 2
        assert backoff.wait_s() == pytest.approx(pause / 2)  # not due halfway
        now[0] += pause / 2
        assert backoff.wait_s() == pytest.approx(0, abs=1e-9)
    backoff.succeeded()
    assert backoff.failures == 0 and backoff.wait_s() == 0 and backoff.failing_s() == 0
    now[0] += 5
    backoff.failed()  # a new run of failures counts from its own first
    assert backoff.failing_s() == 0
    now[0] += 2
    assert backoff.failing_s() == pytest.approx(2)


def test_a_backoff_jitters_within_the_upper_half_of_the_curve() -> None:
    backoff = Backoff(0.2, 10.0)
    pauses = [backoff.failed() for _ in range(12)]
    for failures, pause in enumerate(pauses, 1):
        assert 0.5 * backoff_s(failures, 0.2, 10.0) <= pause <= backoff_s(failures, 0.2, 10.0)
    assert max(pauses) <= 10.0 and backoff.wait_s() > 0


@given(st.integers(1, 4), st.floats(0.001, 10, allow_nan=False), st.floats(0, 5))
def test_with_a_bounded_jitter_no_pause_comes_before_the_curve(
    failures: int, initial: float, jitter: float
) -> None:
    """What the fallback source asks: ``initial``, 2x, 4x (capped), each plus at most
    ``jitter`` (full jitter could retry a 429 after ~0 s)."""
    clock = SleepRecorder()
    calls = 0

    async def call() -> int:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise KisTransportError("timed out")
        return calls

    result = asyncio.run(
        retry(
            call,
            clock=clock,
            attempts=5,
            initial_s=initial,
            max_s=4 * initial,
            jitter_s=jitter,
            retry_if=lambda e: isinstance(e, KisTransportError),
        )
    )
    assert result == failures + 1 and len(clock.sleeps) == failures
    for attempt, pause in enumerate(clock.sleeps, 1):
        curve = backoff_s(attempt, initial, 4 * initial)
        assert curve <= pause <= curve + jitter
