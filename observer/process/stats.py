"""Percentiles, defined once: the nearest rank, as every report, heartbeat and bench quotes them."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["p99", "percentile"]


def percentile(values: Iterable[float], fraction: float) -> float:
    """The value at ``fraction`` (0..1) of the sorted values (nearest rank); 0 for none.

    The smallest value with at least ``fraction`` of the values at or below it: the p99 of
    100 values is the 99th, not the largest; of fewer than 100, the largest.
    """
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def p99(values: Iterable[float]) -> float:
    """The 99th percentile, rounded to the millisecond (values in seconds); 0 for none."""
    return round(percentile(values, 0.99), 3)
