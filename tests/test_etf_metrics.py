"""The ETF figures against independent computations from random daily rows."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from workers.etf.metrics import (
    aum_check_pct,
    chart_start,
    premium_pct,
    premium_windows,
    range_52w,
)

FIRST = date(2025, 1, 6)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[date], dict[date, Decimal]]:
    """Sessions (weekdays, some holidays) and premiums on some of them (gaps), plus noise."""
    days = draw(st.integers(min_value=0, max_value=320))
    holidays = draw(st.sets(st.integers(min_value=0, max_value=max(days, 1)), max_size=30))
    sessions = [
        FIRST + timedelta(days=i)
        for i in range(days + 1)
        if (FIRST + timedelta(days=i)).weekday() < 5 and i not in holidays
    ]
    premiums = {}
    for day in sessions:
        if draw(st.integers(min_value=0, max_value=9)) < draw(st.integers(0, 9)):
            continue  # a gap
        premiums[day] = Decimal(draw(st.integers(min_value=-900, max_value=900))) / 100
    for day in draw(st.lists(st.dates(), max_size=3)):  # days that are not sessions
        if day not in sessions:
            premiums[day] = Decimal("99.99")
    return sessions, premiums


@given(histories())
def test_windows_match_an_independent_computation(
    history: tuple[list[date], dict[date, Decimal]],
) -> None:
    sessions, premiums = history
    if not sessions:
        return
    result = premium_windows(premiums, sessions)
    for size, window in result.items():
        wanted = set(sessions[len(sessions) - min(size, len(sessions)) :])
        values = [Fraction(v) for d, v in premiums.items() if d in wanted]
        assert window.n == len(values) <= size
        if len(values) * 10 < 8 * size or not values:  # below 80 %: no figure
            assert window.mean is None and window.mean_abs is None
            continue
        assert window.mean is not None and window.mean_abs is not None
        mean = sum(values) / len(values)
        mean_abs = sum(abs(v) for v in values) / len(values)
        assert abs(Fraction(window.mean) - mean) <= Fraction(1, 20000)
        assert abs(Fraction(window.mean_abs) - mean_abs) <= Fraction(1, 20000)
        assert abs(window.mean) <= window.mean_abs


@given(
    st.dictionaries(
        st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
        st.tuples(
            st.none() | st.integers(1, 10**6),
            st.none() | st.integers(1, 10**6),
            st.none() | st.integers(1, 10**6),
        ),
        max_size=40,
    ),
    st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 12, 31)),
)
def test_52_week_range_matches_a_scan(
    days: dict[date, tuple[int | None, int | None, int | None]], d0: date
) -> None:
    found = range_52w(days, d0)
    inside = {d: v for d, v in days.items() if d0 - timedelta(days=364) <= d <= d0}
    highs = [(h if h is not None else c, d) for d, (h, _, c) in inside.items()]
    lows = [(lo if lo is not None else c, d) for d, (_, lo, c) in inside.items()]
    highs = [(v, d) for v, d in highs if v is not None]
    lows = [(v, d) for v, d in lows if v is not None]
    if not highs or not lows:
        assert found is None
        return
    assert found is not None
    top = max(v for v, _ in highs)
    bottom = min(v for v, _ in lows)
    assert (found.high, found.high_date) == (top, min(d for v, d in highs if v == top))
    assert (found.low, found.low_date) == (bottom, min(d for v, d in lows if v == bottom))
    lacking = sum(h is None or lo is None for h, lo, _ in inside.values())
    assert found.basis == ("close" if lacking else "high_low")
    assert found.close_days == lacking


@given(
    st.dictionaries(
        st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
        st.tuples(st.none() | st.integers(1, 10**6), st.none() | st.integers(1, 10**6)),
        max_size=40,
    ),
    st.dates(min_value=date(2025, 6, 1), max_value=date(2026, 12, 31)),
    st.none() | st.dates(min_value=date(2024, 6, 1), max_value=date(2026, 12, 31)),
)
def test_the_chart_is_asked_from_the_first_day_lacking_a_high_or_low(
    days: dict[date, tuple[int | None, int | None]], d0: date, backfill: date | None
) -> None:
    start = chart_start(days, d0, backfill)
    span_start = d0 - timedelta(days=364)
    if backfill is not None:
        assert start == max(span_start, backfill)  # the 52 weeks the backfill covers
        return
    lacking = [d for d, v in days.items() if span_start <= d < d0 and None in v]
    assert start == (min(lacking) if lacking else None)
    # Once the rows from ``start`` on have theirs, nothing more is asked.
    filled = {d: (v if start is None or d < start else (1, 1)) for d, v in days.items()}
    assert chart_start(filled, d0, backfill) is None


def test_premium_and_aum_check() -> None:
    assert premium_pct(10_100, Decimal("10000.00")) == Decimal("1.0000")
    assert premium_pct(10_100, None) is None and premium_pct(10_100, Decimal(0)) is None
    assert aum_check_pct(1_010_000, 100, Decimal(10_000)) == Decimal("1.0000")
    assert aum_check_pct(0, 100, Decimal(10_000)) is None  # not published: cannot tell
