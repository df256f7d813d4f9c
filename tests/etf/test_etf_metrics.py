"""The ETF figures against independent computations from random daily rows."""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.events import EtfDaily
from observer.calendar.trading import TradingCalendar
from observer.market.etf import premium_pct
from workers.etf.details import detail_of, flags_of
from workers.etf.metrics import aum_check_pct, backfill_due, chart_start, premium_windows, range_52w

FIRST = date(2025, 1, 6)
CALENDAR = TradingCalendar()
D0 = date(2026, 11, 20)


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
    st.sets(st.dates(min_value=date(2024, 6, 1), max_value=date(2026, 12, 31)), max_size=60),
    st.none() | st.dates(min_value=date(2024, 6, 1), max_value=date(2026, 12, 31)),
)
def test_52_week_range_matches_a_scan(
    days: dict[date, tuple[int | None, int | None, int | None]],
    d0: date,
    calendar: set[date],
    listed_on: date | None,
) -> None:
    calendar |= set(days)  # mostly sessions; days that are not count for the range only
    calendar -= set(list(days)[::3])
    found = range_52w(days, d0, calendar, listed_on)
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
    assert found.close_days == lacking
    # Sessions with a price, against the span's sessions since the listing.
    seen = sum(d in calendar and v != (None, None, None) for d, v in inside.items())
    first = max(d0 - timedelta(days=364), listed_on or date.min)
    expected = sum(first <= d <= d0 for d in calendar)
    assert (found.sessions, found.expected) == (seen, expected)
    if 10 * seen < 8 * expected:  # a few days' range is never told as 52 weeks'
        assert found.basis == "partial"
    else:
        assert found.basis == ("close" if lacking else "high_low")


def test_a_few_stored_days_are_not_a_52_week_range() -> None:
    """A lost backfill: two stored sessions of 52 weeks' are a partial range, not high_low."""
    sessions = CALENDAR.sessions_before(D0 + timedelta(days=1), 260)
    two = {d: (40_100, 39_800, 40_000) for d in sessions[-2:]}
    found = range_52w(two, D0, sessions)
    assert found is not None and found.basis == "partial" and found.sessions == 2
    assert found.expected == sum(d >= D0 - timedelta(days=364) for d in sessions)
    # Since its listing (two sessions ago) the same two days are the whole range.
    listed = range_52w(two, D0, sessions, listed_on=sessions[-2])
    assert listed is not None and listed.basis == "high_low" and listed.expected == 2
    need = math.ceil(0.8 * found.expected)  # 80 % of the 52 weeks' sessions
    enough = {d: (100 + i, 90 + i, 95 + i) for i, d in enumerate(sessions[-need:])}
    short = dict(list(enough.items())[1:])
    assert [range_52w(x, D0, sessions).basis for x in (enough, short)] == [  # type: ignore[union-attr]
        "high_low",
        "partial",
    ]


@st.composite
def backfill_stories(draw: st.DrawFn) -> tuple[list[date], int, int | None, int | None, int]:
    """Sessions, the backfill's size, when the ETF was listed and KIS's history starts
    (indices into the sessions; None: unknown listing, no history at all), and how many
    history calls fail first."""
    size = draw(st.integers(min_value=2, max_value=260))
    runs = draw(st.integers(min_value=1, max_value=300))
    sessions = CALENDAR.sessions_before(D0 + timedelta(days=1), size + runs)
    listed = draw(st.none() | st.integers(0, size + runs - 1))
    history = draw(st.none() | st.integers(0, size + runs - 1))
    return sessions, size, listed, history, draw(st.integers(0, 12))


@settings(max_examples=60, deadline=None)
@given(backfill_stories())
def test_a_backfill_is_asked_again_until_covered_and_boundedly(
    story: tuple[list[date], int, int | None, int | None, int],
) -> None:
    """One run a session: the day's row stored, the history asked when `backfill_due` says.

    A history call that fails is asked again by a later run (the day's stored row does not
    make the ETF look backfilled), and never on every run: an ETF KIS has no history for
    is asked at most 2 + log2(window) times.
    """
    sessions, size, listed, history, failing = story
    listed_on = sessions[listed] if listed is not None else None
    stored: set[date] = set()
    asks = []
    first_success = None
    for run in range(size - 1, len(sessions)):
        d0, window = sessions[run], sessions[run - size + 1 : run]
        if listed_on is not None and d0 < listed_on:
            continue  # not listed yet: no run collects it
        due = backfill_due(stored, window, listed_on)
        if not stored and any(listed_on is None or d >= listed_on for d in window):
            assert due  # nothing stored of a span it was listed in: a first load
        if due:
            asks.append(run)
            if len(asks) > failing:
                first_success = first_success or run
                if history is not None:
                    stored |= {d for d in window if d >= sessions[history]}
        stored.add(d0)
    assert len(asks) <= 2 + math.log2(size)
    if first_success is not None and history is not None:
        start = sessions[first_success - size + 1]
        if sessions[history] <= max(start, listed_on or start):  # KIS had all it was asked
            assert asks[-1] == first_success  # covered: never asked again


def test_coverage_is_counted_since_the_listing() -> None:
    window = CALENDAR.sessions_before(D0, 249)
    recent = set(window[-16:])
    assert backfill_due(recent, window)  # 16 of 249: short of history, asked
    assert not backfill_due(set(window[-15:]), window)  # a streak of 15: not this run
    assert not backfill_due(recent, window, listed_on=window[-16])  # all since its listing
    assert not backfill_due(set(), window, listed_on=D0)  # listed today: nothing to ask
    assert not backfill_due(set(window[-200:]), window)  # 200 of 249: 80 %
    assert backfill_due({window[-1]}, window)  # the day after a failed call: again
    assert not backfill_due(set(window[-3:]), window)  # the third: a streak of 3, not asked
    assert backfill_due(set(window[-4:]), window)  # the fourth


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


def aum_flags(net_assets: int, units: int, nav: Decimal, origin: str) -> list[str]:
    """The flags of a day whose net assets are ``net_assets``, as ``origin`` printed them."""
    day = date(2026, 11, 20)
    close = int(nav)
    row = EtfDaily(
        trade_date=day,
        symbol="123456",
        close=close,
        nav=nav,
        net_assets_krw=net_assets,
        premium_calc_pct=premium_pct(close, nav),
        listed_units=units,
        nav_final=True,
        origin=origin,
    )
    detail = detail_of({day: row}, CALENDAR.sessions_before(day + timedelta(days=1), 260), None)
    assert detail is not None
    flags = flags_of(
        detail,
        None,
        premium_pct=1e9,
        aum_jump_pct=50.0,
        aum_check_pct=2.0,
        net_assets_unit_krw=UNIT,
    )
    return [f.code for f in flags]


UNIT = 100_000_000  # KIS's etf_ntas_ttam: 억 KRW (UNCONFIRMED)


@given(
    units=st.integers(10_000, 10**9),
    cents=st.integers(100_00, 200_000_00),
    rounding=st.sampled_from([math.floor, round, math.ceil]),
)
def test_kis_whole_units_of_net_assets_are_no_mismatch(
    units: int, cents: int, rounding: Any
) -> None:
    """A 29.9억 ETF printed as 29억 by KIS was 3 % off units x NAV: flagged every day."""
    nav = Decimal(cents).scaleb(-2)
    exact = units * nav
    printed = int(rounding(exact / UNIT)) * UNIT
    if printed:  # 0: not published, no check
        assert "etf_aum_mismatch" not in aum_flags(printed, units, nav, "kis")
    # A figure 10 % off is flagged where a unit is a small share of it; KRX's exact
    # figure is held to the 2 % itself.
    if exact >= 100 * UNIT:
        off = int(exact * Decimal("1.1")) // UNIT * UNIT
        assert "etf_aum_mismatch" in aum_flags(off, units, nav, "kis")
    wrong = int(exact * Decimal("1.03"))
    assert "etf_aum_mismatch" in aum_flags(wrong, units, nav, "krx")


def test_the_reviewers_small_etf() -> None:
    units, nav = 1_000_000, Decimal("2990.00")
    assert aum_flags(29 * UNIT, units, nav, "kis") == []  # 29.9억 printed as 29
    assert aum_flags(27 * UNIT, units, nav, "kis") == ["etf_aum_mismatch"]  # 9.7 % off
    assert aum_flags(int(2_990_000_000 * 0.97), units, nav, "krx") == ["etf_aum_mismatch"]
