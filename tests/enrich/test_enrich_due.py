"""When ``--incremental`` re-checks a stock (`workers.enrich.classify.due`)."""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.db.sector_queries import Stored
from workers.enrich.classify import DAY_NS, due

MARKETS = ("NAS", "NYS", "HKS", "TSE", "SHS", "HSX")
SYMBOL = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", min_size=1, max_size=8)


def stored(market: str, symbol: str, enriched_ns: int, origin: str = "kis_map") -> Stored:
    return Stored(market, symbol, market, "US", "0010", origin, "45", enriched_ns)


def daily_runs(
    stocks: list[tuple[str, str]], age: int, first_day: int, days: int, hours: list[int]
) -> dict[tuple[str, str], list[int]]:
    """Every stock classified on ``first_day``, then one incremental run a day (at a drifting
    hour): the days each stock was re-checked."""
    enriched = {key: first_day * DAY_NS + hours[0] for key in stocks}
    checked: dict[tuple[str, str], list[int]] = {key: [] for key in stocks}
    for day in range(first_day + 1, first_day + days + 1):
        now = day * DAY_NS + hours[day % len(hours)]
        for key in stocks:
            if due(stored(*key, enriched[key]), now, age, force=False):
                enriched[key] = now
                checked[key].append(day)
    return checked


@given(
    st.lists(st.tuples(st.sampled_from(MARKETS), SYMBOL), min_size=1, max_size=30, unique=True),
    st.integers(1, 60),
    st.integers(0, 40_000),
    st.lists(st.integers(0, DAY_NS - 1), min_size=1, max_size=5),
)
def test_every_stock_is_rechecked_exactly_once_in_every_max_age_days(
    stocks: list[tuple[str, str]], age: int, first_day: int, hours: list[int]
) -> None:
    """Not once in 1 to 30 days by symbol: in any ``age`` days in a row, exactly once."""
    checked = daily_runs(stocks, age, first_day, 3 * age, hours)
    for key, days in checked.items():
        assert first_day < days[0] <= first_day + age, key  # never older than max_age_days
        assert all(b - a == age for a, b in pairwise(days)), (key, days)
        for start in range(first_day + 1, first_day + 2 * age + 2):
            assert sum(start <= d < start + age for d in days) == 1, (key, start, days)


@settings(max_examples=15)
@given(
    st.integers(2, 60), st.integers(0, 40_000), st.sampled_from(MARKETS), st.text("XYZ", max_size=2)
)
def test_the_daily_load_is_about_a_max_age_days_th_of_the_stocks(
    age: int, first_day: int, market: str, prefix: str
) -> None:
    n = 1500
    stocks = [(market, f"{prefix}S{i:05d}") for i in range(n)]
    checked = daily_runs(stocks, age, first_day, age, [3_600 * 10**9])
    per_day = Counter(day for days in checked.values() for day in days)
    assert sum(per_day.values()) == n  # each stock once in the window: N / age a day on average
    mean = n / age
    assert max(per_day.values()) <= mean + 5 * math.sqrt(mean) + 1  # the phases spread them


def test_unclassified_forced_and_resumed_stocks_keep_their_meaning() -> None:
    now = 20_000 * DAY_NS
    assert due(stored("NAS", "A", 0, origin=""), now, 30, force=False)  # nothing stored yet
    assert due(stored("NAS", "A", now - DAY_NS, origin=""), now, 30, force=False)
    assert due(stored("NAS", "A", now, origin="unresolved"), now, 30, force=True)  # forced
    assert not due(stored("NAS", "A", now, origin="fallback"), now, 30, force=False)  # today
    # a resumed forced run: what was stored since the killed run started is fresh
    assert not due(stored("NAS", "A", now - 10, origin="kis_map"), now, 30, True, now - 100)
    assert due(stored("NAS", "A", now - 1000, origin="kis_map"), now, 30, True, now - 100)
