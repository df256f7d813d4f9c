"""The ETF rows' parsers and the health's judgement, against independent statements."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import EtfDaily, EtfListing
from observer.config import EtfSettings
from observer.kis.schemas import EtfPriceOutput
from observer.phases import KST
from observer.trading_calendar import TradingCalendar
from workers.etf.health import due_session, health, is_due
from workers.etf.rows import from_price, merged

DAY = date(2026, 11, 20)
numbers = st.one_of(
    st.sampled_from(["0", "", "-", "0.00", "-12.5", "abc", "1e400", "NaN", " 1,234 "]),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
)


@given(price=numbers, nav=numbers, dprt=numbers, ntas=numbers)
def test_a_missing_nav_is_never_zero(price: str, nav: str, dprt: str, ntas: str) -> None:
    out = EtfPriceOutput(stck_prpr=price, nav=nav, dprt=dprt, etf_ntas_ttam=ntas)
    row = from_price("069500", DAY, out, 100_000_000)
    assert (row.nav is None) == (not row.nav_final)
    if row.nav is None:  # not published: no premium, no net assets, never a 0
        assert row.premium_pct is row.premium_calc_pct is row.net_assets_krw is None
    else:
        assert row.nav > 0
    assert row.close is None or row.close > 0
    if row.premium_calc_pct is not None:
        assert row.close is not None and row.nav is not None
        exact = (Decimal(row.close) - row.nav) / row.nav * 100
        assert abs(exact - row.premium_calc_pct) <= Decimal("0.00005")


@given(
    kis_nav=st.one_of(st.none(), st.decimals(1, 10**5, places=2)),
    krx_nav=st.one_of(st.none(), st.decimals(1, 10**5, places=2)),
    same_close=st.booleans(),
)
def test_krx_only_fills_what_kis_lacks(
    kis_nav: Decimal | None, krx_nav: Decimal | None, same_close: bool
) -> None:
    kis = EtfDaily(trade_date=DAY, symbol="A", close=10_000, nav=kis_nav, nav_final=bool(kis_nav))
    krx = EtfDaily(
        trade_date=DAY,
        symbol="A",
        close=10_000 if same_close else 9_990,
        nav=krx_nav,
        net_assets_krw=5 * 10**9,
        origin="krx",
    )
    row = merged(kis, krx)
    assert row.close == 10_000 and row.origin == "kis"
    if kis_nav is not None:
        assert row.nav == kis_nav
    elif same_close and krx_nav is not None:  # the same session's figures: taken
        assert row.nav == krx_nav and row.nav_final and row.premium_calc_pct is not None
    else:  # another close is another moment: nothing taken
        assert row.nav is None and not row.nav_final and row.net_assets_krw is None


@given(active=st.integers(1, 300), share=st.floats(0, 1))
def test_stale_below_the_coverage_floor(active: int, share: float) -> None:
    symbols = [f"{i:06d}" for i in range(active)]
    listings = {s: EtfListing(change="new", symbol=s) for s in symbols}
    collected = int(active * share)
    rows = {s: EtfDaily(trade_date=DAY, symbol=s, close=1) for s in symbols[:collected]}
    judged = health(DAY, True, listings, (), rows, {}, EtfSettings())
    assert judged.stale == (collected < math.ceil(0.95 * active - 1e-9))
    assert judged.collected == collected


@pytest.mark.parametrize(
    ("now", "session", "due_today"),
    [
        (datetime(2026, 11, 20, 16, 59, tzinfo=KST), date(2026, 11, 19), False),  # Fri, early
        (datetime(2026, 11, 20, 17, 0, tzinfo=KST), date(2026, 11, 20), True),  # Fri 17:00
        (datetime(2026, 11, 22, 12, 0, tzinfo=KST), date(2026, 11, 20), False),  # Sunday
        (datetime(2026, 11, 23, 9, 0, tzinfo=KST), date(2026, 11, 20), False),  # Monday
        (datetime(2026, 10, 12, 8, 0, tzinfo=KST), date(2026, 10, 8), False),  # Hangul Day
    ],
)
def test_the_due_session_is_session_aware(now: datetime, session: date, due_today: bool) -> None:
    assert due_session(now, TradingCalendar(), "17:00") == session
    assert is_due(session, now, "17:00")  # the judged session is always due
    assert is_due(now.date(), now, "17:00") == due_today


def test_the_list_against_the_masters_and_coverage_per_field() -> None:
    symbols = [f"{i:06d}" for i in range(200)]
    listings = {s: EtfListing(change="new", symbol=s, manager="M") for s in symbols}
    rows = {s: EtfDaily(trade_date=DAY, symbol=s, close=1) for s in symbols}
    settings = EtfSettings()
    same = health(DAY, True, listings, set(symbols), rows, {}, settings)
    assert not any(c.code == "etf_universe_mismatch" for c in same.conditions)
    two_off = health(DAY, True, listings, set(symbols[2:]), rows, {}, settings)  # 1 %: fine
    assert not any(c.code == "etf_universe_mismatch" for c in two_off.conditions)
    three_off = health(DAY, True, listings, set(symbols[3:]), rows, {}, settings)
    assert [c.severity for c in three_off.conditions if c.code == "etf_universe_mismatch"] == [
        "warning"
    ]
    # No details yet: aum, premium_20d and high_52w uncovered; issuer known; fee not.
    low = {c.subject for c in same.conditions if c.code == "etf_coverage_low"}
    assert low == {"fee", "aum", "premium_20d", "high_52w"} and not same.stale
    early = health(DAY, False, listings, set(), {}, {}, settings)  # not due yet: no verdict
    assert early.conditions == [] and not early.stale
