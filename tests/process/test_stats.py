"""The one percentile: nearest rank."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from observer.process.stats import p99, percentile

values = st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=300)
# Quoted percentiles (p50, p99) too: there ``fraction * n`` is often a whole rank.
fractions = st.floats(0, 1) | st.integers(0, 100).map(lambda k: k / 100)


def _nearest_rank(data: list[float], fraction: float) -> float:
    """The reference: the smallest value with at least ``fraction`` of them at or below it."""
    return min(v for v in data if sum(x <= v for x in data) >= fraction * len(data))


@given(values, fractions, st.data())
def test_the_percentile_is_the_nearest_rank(
    data: list[float], fraction: float, draw: st.DataObject
) -> None:
    assert percentile(data, fraction) == _nearest_rank(data, fraction)
    whole = draw.draw(st.integers(0, len(data))) / len(data)  # a whole rank's share
    assert percentile(data, whole) == _nearest_rank(data, whole)


@given(st.integers(1, 1000), st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]))
def test_the_quoted_percentiles_of_distinct_values_are_their_rank(n: int, fraction: float) -> None:
    data = [float(v) for v in range(1, n + 1)]  # the value is its rank
    assert percentile(data[::-1], fraction) == _nearest_rank(data, fraction)


@given(values, fractions, fractions)
def test_a_higher_fraction_never_gives_a_lower_value(data: list[float], a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert percentile(data, low) <= percentile(data, high)


def test_the_p99_of_a_hundred_values_is_not_their_maximum() -> None:
    gaps = [float(s) for s in range(1, 101)]  # a day of exactly 100 gaps, the worst 100 s
    assert percentile(gaps, 0.99) == 99.0 and p99(gaps) == 99.0
    assert p99([*gaps, 101.0]) == 100.0  # 101 values: the 100th
    assert p99(gaps[:99]) == 99.0  # fewer than 100: the largest


def test_no_values_and_the_p99_rounding() -> None:
    assert percentile([], 0.5) == 0.0 and p99([]) == 0.0
    assert p99([0.0012345] * 10) == 0.001
    assert percentile(range(100), 0.99) == 98 and percentile(range(100), 0.5) == 49
    assert percentile(range(100), 0) == 0 and percentile(range(100), 1) == 99
