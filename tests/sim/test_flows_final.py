"""When the simulator's KRX day is final in its flows (FHPTJ04160001, FHPPG04650201): at its
after-market's 20:00 close with that volume in, on a day the stock has one; at 15:40 on a day
before 2026-09-14, for an ETF, or with the after-market switched off (the belief before)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from harness.sim.flows import investor_rows, program_rows
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar

MARKET = Market(7, TradingCalendar(), stocks=30, etfs=5)
NEW, OLD = date(2026, 11, 20), date(2026, 9, 11)  # a Friday on each side of 2026-09-14
STOCK = next(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
ETF = next(s for s, x in MARKET.listings.items() if x.group == "EF" and not x.suspended)


def _listed(symbol: str, day: date, hhmm: str, after_market: bool = True) -> list[str]:
    now = datetime.combine(day, time.fromisoformat(hhmm), KST)
    rows = investor_rows(MARKET, symbol, "J", day, now, after_market)
    assert [
        r["stck_bsop_date"] for r in program_rows(MARKET, symbol, "J", day, now, after_market)
    ] == [r["stck_bsop_date"] for r in rows]
    return [r["stck_bsop_date"] for r in rows]


@pytest.mark.parametrize(
    ("symbol", "day", "after_market", "closed"),
    [
        (STOCK, NEW, True, ("19:59", "20:00")),
        (STOCK, NEW, False, ("15:39", "15:40")),  # SimConfig.krx_after_market off
        (STOCK, OLD, True, ("15:39", "15:40")),  # before KRX's after-market began
        (ETF, NEW, True, ("15:39", "15:40")),  # ETFs and ETNs do not trade in it
    ],
)
def test_krx_s_day_is_listed_once_its_last_session_has_closed(
    symbol: str, day: date, after_market: bool, closed: tuple[str, str]
) -> None:
    still_open, final = closed
    today = f"{day:%Y%m%d}"
    assert today not in _listed(symbol, day, still_open, after_market)
    assert _listed(symbol, day, final, after_market)[0] == today


def test_the_after_market_s_volume_is_in_krx_s_day() -> None:
    evening = MARKET.krx_after_day(STOCK, NEW)
    assert evening is not None and len(evening.qty)
    now = datetime.combine(NEW, time(20, 0), KST)
    with_it = investor_rows(MARKET, STOCK, "J", NEW, now, True)[0]
    without = investor_rows(MARKET, STOCK, "J", NEW, now, False)[0]
    assert int(with_it["acml_vol"]) == int(without["acml_vol"]) + int(evening.qty.sum())
    assert int(without["acml_vol"]) == MARKET.daily_bar(STOCK, NEW).volume
