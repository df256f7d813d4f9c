"""The daily run's backfill and the repair's revision rule, with KIS's accounts faked.

A history call (FHPST02440200) that fails after the day's row was stored must be asked
again by a later run (the ETF has a stored row, not a history), and until then no figure
calls a few days' range a 52-week one. The repair sends a NAV that moved by one step
(0.01), the smallest revision KRX and KIS can print.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import EtfDaily
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.errors import KisApiError
from observer.kis.schemas import EtfNavDailyRow, EtfPriceOutput
from workers.etf import backfill, collect
from workers.etf.collect import _revised, collect_daily
from workers.etf.details import detail_of
from workers.etf.rows import repaired

CALENDAR = TradingCalendar()
SYMBOL = "069500"
QUOTE = EtfPriceOutput(
    stck_prpr="40000",
    nav="40010.00",
    dprt="-0.02",
    stck_oprc="39900",
    stck_hgpr="40100",
    stck_lwpr="39800",
    acml_vol="100",
    lstn_stcn="1000",
)


class Kis:
    """One account: the quote, and a NAV series that fails while ``failing``."""

    alias = "acct1"
    rate_limited = 0  # its EGW00201 is raised, not counted: KIS's pace is not this test's

    def __init__(self) -> None:
        self.failing = False
        self.requests = 0
        self.series_calls: list[tuple[str, str]] = []

    @property
    def client(self) -> Kis:
        return self

    async def aclose(self) -> None:
        pass

    async def etf_price(self, symbol: str) -> EtfPriceOutput:
        self.requests += 1
        return QUOTE

    async def etf_nav_daily(self, symbol: str, start: str, end: str) -> list[EtfNavDailyRow]:
        self.requests += 1
        self.series_calls.append((start, end))
        if self.failing:
            raise KisApiError("EGW00201", "초당 거래건수를 초과하였습니다.", "FHPST02440200", 500)
        first, last = (datetime.strptime(x, "%Y%m%d").date() for x in (start, end))
        days = CALENDAR.sessions_before(last + timedelta(days=1), 300)
        return [
            EtfNavDailyRow(d.strftime("%Y%m%d"), "40000", "40010.00", "-0.02")
            for d in reversed(days)
            if first <= d
        ]


def run(kis: Kis, day: date, history: dict[str, dict[date, EtfDaily]]) -> list[date]:
    """The daily run's collection for ``day`` (as `jobs.run_daily` calls it), rows stored."""
    sessions = CALENDAR.sessions_before(day + timedelta(days=1), 260)
    out = asyncio.run(
        collect_daily(Settings(), None, [SYMBOL], day, sessions[-250], history, None)  # type: ignore[arg-type]
    )
    for row in [*out.backfilled, *out.rows.values()]:
        history.setdefault(row.symbol, {})[row.trade_date] = row
    return sessions


@pytest.fixture
def kis(monkeypatch: pytest.MonkeyPatch) -> Kis:
    account = Kis()
    monkeypatch.setattr(collect, "rate_limits", lambda settings, share: None)
    monkeypatch.setattr(collect, "open_account", lambda *args, **options: account)
    return account


def test_a_failed_history_call_is_asked_again_by_the_next_run(kis: Kis) -> None:
    history: dict[str, dict[date, EtfDaily]] = {}
    d1, d2, d3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
    kis.failing = True
    sessions = run(kis, d1, history)
    assert len(kis.series_calls) == 1 and sorted(history[SYMBOL]) == [d1]  # the day's row
    # Until the history is in, the two stored days are not a 52-week range.
    run(kis, d2, history)
    assert len(kis.series_calls) == 2  # asked again: a stored row is not a history
    detail = detail_of(history[SYMBOL], CALENDAR.sessions_before(d2 + timedelta(days=1), 260), None)
    assert detail is not None and detail.range_52w_basis == "partial"
    assert (detail.high_52w, detail.low_52w, detail.high_52w_date) == (0, 0, None)
    kis.failing = False
    sessions = run(kis, d3, history)
    assert len(kis.series_calls) == 3
    assert kis.series_calls[-1] == (sessions[-250].strftime("%Y%m%d"), "20261120")
    assert len(history[SYMBOL]) == 250  # the window's 249 sessions and the day's
    detail = detail_of(history[SYMBOL], sessions, None)
    assert detail is not None and detail.n_250d == 250
    assert detail.range_52w_basis == "close" and detail.high_52w == 40_100  # a year of closes
    run(kis, CALENDAR.next_session(d3), history)
    assert len(kis.series_calls) == 3  # covered: not asked again


def test_an_etf_kis_has_no_history_for_is_not_asked_on_every_run(kis: Kis) -> None:
    """KIS keeps failing (or has nothing): asked on the 1st, 2nd, 4th, 8th... run, not all."""
    kis.failing = True
    history: dict[str, dict[date, EtfDaily]] = {}
    day = date(2026, 6, 1)
    asked = []
    for n in range(40):
        before = len(kis.series_calls)
        run(kis, day, history)
        if len(kis.series_calls) > before:
            asked.append(n)
        day = CALENDAR.next_session(day)
    assert asked == [0, 1, 2, 4, 8, 16, 32]  # streaks 0, 1, 2, 4, ... stored sessions


def test_a_backfill_sends_only_the_days_not_stored(kis: Kis) -> None:
    """A backfill after a long outage re-sent the stored days too: KIS's thinner series row
    (no net assets, no listed units) then stood for a day KRX's table had filled."""
    day = date(2026, 11, 20)
    window = CALENDAR.sessions_before(day + timedelta(days=1), 260)[-250:-1]
    stored = {
        d: EtfDaily(
            trade_date=d,
            symbol=SYMBOL,
            close=40_000,
            nav=Decimal("40010.00"),
            net_assets_krw=123_000_000_000,
            listed_units=1000,
            nav_final=True,
            origin="krx",
        )
        for d in window[:150]  # then 99 sessions missing: under 80 % covered
    }
    history = {SYMBOL: dict(stored)}
    run(kis, day, history)
    assert len(kis.series_calls) == 1  # backfilled
    assert all(history[SYMBOL][d] is row for d, row in stored.items())  # none sent again
    assert len(history[SYMBOL]) == 250  # the 99 missing and the day's


def row(nav: Decimal | None) -> EtfDaily:
    return EtfDaily(trade_date=date(2026, 11, 20), symbol=SYMBOL, close=40_000, nav=nav)


@given(
    stored=st.none() | st.integers(10**5, 10**9),
    step=st.none() | st.integers(-3, 3) | st.integers(-(10**5), 10**5),
)
def test_a_nav_revised_by_one_step_is_repaired(stored: int | None, step: int | None) -> None:
    """NAVs in cents: a difference of a cent or more is a revision, none is not.

    ``step``: the fresh NAV's distance from the stored one (None: the fresh row has none).
    """
    fresh = None if step is None else (stored or 10**6) + step
    as_nav = {x: None if x is None else Decimal(x).scaleb(-2) for x in (stored, fresh)}
    revised = _revised(row(as_nav[stored]), row(as_nav[fresh]))
    if fresh is None:
        assert not revised  # no NAV never replaces one
    elif stored is None:
        assert revised  # a missing NAV is filled
    else:
        assert revised == (stored != fresh)


def test_the_reviewers_case_a_revision_of_0_01() -> None:
    assert _revised(row(Decimal("40010.14")), row(Decimal("40010.15")))
    assert not _revised(row(Decimal("40010.15")), row(Decimal("40010.150")))


class Sent:
    """A producer that keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, event: object) -> None:
        self.sent.append(event)


def at(year: int, month: int, day: int, hour: int, minute: int) -> ManualClock:
    return ManualClock(int(datetime(year, month, day, hour, minute, tzinfo=KST).timestamp() * 1e9))


@pytest.mark.parametrize(
    ("clock", "until", "last"),
    [
        (at(2026, 11, 20, 10, 30), date(2026, 11, 20), date(2026, 11, 19)),  # under way
        (at(2026, 11, 20, 8, 0), date(2026, 11, 20), date(2026, 11, 19)),  # not yet open
        (at(2026, 11, 20, 16, 10), date(2026, 11, 20), date(2026, 11, 20)),  # closed
        (at(2026, 11, 22, 21, 0), date(2026, 11, 22), date(2026, 11, 20)),  # the Sunday job
        (at(2026, 11, 22, 21, 0), date(2026, 11, 18), date(2026, 11, 18)),  # --date 18th
    ],
)
def test_the_repair_reads_completed_sessions_only(
    monkeypatch: pytest.MonkeyPatch, clock: ManualClock, until: date, last: date
) -> None:
    """A backfill at 10:30 read today's table so far and stored it as the day's final row;
    at 08:00 today's empty table failed the whole repair over to KIS."""
    asked: list[list[date]] = []

    async def repair(*args: Any, **options: Any) -> collect.Collected:
        asked.append(list(args[3]))  # (settings, clock, symbols, sessions, ...)
        return collect.Collected()

    monkeypatch.setattr(backfill, "symbols_of", lambda settings, send: ({}, [SYMBOL]))
    monkeypatch.setattr(backfill, "read", lambda settings, read: {})
    monkeypatch.setattr(backfill, "portal", lambda settings, clock, send: None)
    monkeypatch.setattr(backfill, "resolve", lambda *args, **kwargs: 0)
    monkeypatch.setattr(backfill, "repair", repair)
    out = backfill.run_repair(Settings(), clock, until, Sent(), None)  # type: ignore[arg-type]
    assert asked[0][-1] == last and len(asked[0]) == out.sessions == 20
    assert asked[0] == CALENDAR.sessions_before(last + timedelta(days=1), 20)


def midsession_and_final() -> tuple[EtfDaily, EtfDaily]:
    """One day's row stored at 10:30 (a final NAV of the moment), and KRX's row of the day."""
    day = date(2026, 11, 20)
    stored = EtfDaily(
        trade_date=day,
        symbol=SYMBOL,
        close=9940,
        open=9900,
        high=9970,
        low=9870,
        volume=505_395,
        nav=Decimal("9948.10"),
        premium_pct=Decimal("-0.08"),
        net_assets_krw=5_000_000_000,
        listed_units=500_000,
        holdings=40,
        nav_final=True,
        origin="kis",
    )
    final = EtfDaily(
        trade_date=day,
        symbol=SYMBOL,
        close=9920,
        open=9900,
        high=9990,
        low=9850,
        volume=1_204_881,
        nav=Decimal("9948.10"),
        premium_calc_pct=Decimal("-0.2825"),
        net_assets_krw=5_001_000_000,
        nav_final=True,
        origin="krx",
    )
    return stored, final


def test_a_close_stored_mid_session_is_repaired_with_the_days_prices() -> None:
    """The repair replaced only the NAV: a wrong close, high, low and volume stood for good
    (and an unchanged NAV hid the row from the repair altogether)."""
    stored, final = midsession_and_final()
    assert _revised(stored, final)  # the same NAV, another close
    assert not _revised(stored, msgspec.structs.replace(final, close=stored.close))
    sent = repaired(stored, final)
    prices = ("close", "open", "high", "low", "volume")
    assert [getattr(sent, f) for f in prices] == [getattr(final, f) for f in prices]
    assert sent.premium_pct is None  # KIS's premium was against the 10:30 close
    assert sent.premium_calc_pct == final.premium_calc_pct
    assert (sent.holdings, sent.listed_units) == (40, 500_000)  # only KIS has them: kept
    # A NAV revised on the right close keeps the row's prices and KIS's premium.
    revised = msgspec.structs.replace(final, close=9940, nav=Decimal("9950.00"))
    kept = repaired(stored, revised)
    assert (kept.high, kept.volume, kept.premium_pct) == (9970, 505_395, Decimal("-0.08"))
    assert kept.nav == Decimal("9950.00")
