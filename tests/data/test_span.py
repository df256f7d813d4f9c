"""`observer.data.span`: every way of naming a time names the same instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.calendar.phases import KST
from observer.data import DataRequestError, span_of

_NS = 10**9
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


def ns(at: datetime) -> int:
    """Exact UTC nanoseconds (a float timestamp loses microseconds)."""
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


@given(instants, st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=9)))
def test_a_naive_time_its_text_its_aware_twin_and_its_nanoseconds_agree(
    naive: datetime, length: timedelta
) -> None:
    aware = naive.replace(tzinfo=KST)
    expected = (ns(aware), ns(aware + length))
    for start, end in (
        (naive, naive + length),
        (aware.astimezone(UTC), (aware + length).astimezone(UTC)),
        (naive.isoformat(sep=" "), (naive + length).isoformat(sep=" ")),
        (aware.isoformat(), (aware + length).isoformat()),
        expected,
    ):
        span = span_of("005930", start, end)
        assert (span.lo_ns, span.hi_ns) == expected, (start, end)
    days = list(span_of(None, naive, naive + length).days())
    assert (
        days[0] == naive.date() and days[-1] == (naive + length - timedelta(microseconds=1)).date()
    )
    assert len(days) == len(set(days)) == (days[-1] - days[0]).days + 1


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_a_date_or_its_text_alone_is_that_kst_day(day: date) -> None:
    midnight = datetime(day.year, day.month, day.day, tzinfo=KST)
    for start in (day, day.isoformat()):
        span = span_of(["005930", "005930", "000660"], start)
        assert span.lo_ns == ns(midnight) and span.hi_ns - span.lo_ns == 86_400 * _NS
        assert list(span.days()) == [day]
        assert span.symbols == ("005930", "000660")  # each once, in order


@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 1)),
    st.integers(0, 30),
    st.booleans(),
)
def test_a_day_as_the_end_is_included_and_an_instant_excluded(
    first: date, length: int, as_text: bool
) -> None:
    """One convention, the API's and the commands': a day at either end is the whole KST day
    (as pandas slices days), an instant as the end is excluded."""
    last = first + timedelta(days=length)
    start, end = (first.isoformat(), last.isoformat()) if as_text else (first, last)
    span = span_of(None, start, end)
    after = datetime(last.year, last.month, last.day, tzinfo=KST) + timedelta(days=1)
    assert span.hi_ns == ns(after)
    assert list(span.days()) == [first + timedelta(days=n) for n in range(length + 1)]
    assert span_of(None, first, first) == span_of(None, first)  # one day, however named
    midnight = datetime(last.year, last.month, last.day, tzinfo=KST)
    if length:  # an instant, its text, its nanoseconds: excluded
        for end_instant in (midnight, midnight.isoformat(), ns(midnight)):
            assert span_of(None, start, end_instant).hi_ns == ns(midnight)


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        ("2026-11-20 25:00", None, "not an ISO date or time"),
        (True, None, "is not a time"),
        (2.5, None, "not a date, a datetime"),
        ("2026-11-21", "2026-11-20", "before it starts"),
        ("2026-11-20 10:00", "2026-11-20 09:00", "before it starts"),
    ],
)
def test_what_is_not_a_range_is_said(start: object, end: object, said: str) -> None:
    with pytest.raises(DataRequestError, match=said):
        span_of("005930", start, end)  # type: ignore[arg-type]
