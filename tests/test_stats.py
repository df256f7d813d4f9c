"""The one percentile: nearest rank."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from observer.stats import p99, percentile

values = st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=300)
fractions = st.floats(0, 1)


@given(values, fractions)
def test_the_percentile_is_a_value_with_that_share_at_or_below_it(
    data: list[float], fraction: float
) -> None:
    found = percentile(data, fraction)
    assert found in data
    at_or_below = sum(v <= found for v in data)
    assert at_or_below >= min(len(data), int(fraction * len(data)) + 1)
    assert sum(v < found for v in data) <= int(fraction * len(data))


@given(values, fractions, fractions)
def test_a_higher_fraction_never_gives_a_lower_value(data: list[float], a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert percentile(data, low) <= percentile(data, high)


def test_no_values_and_the_p99_rounding() -> None:
    assert percentile([], 0.5) == 0.0 and p99([]) == 0.0
    assert p99([0.0012345] * 10) == 0.001
    assert percentile(range(100), 0.99) == 99 and percentile(range(100), 0.5) == 50
