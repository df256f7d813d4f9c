"""The collector's simulator: 200 stocks at 10:00, 30x (a few ticks per wall second per symbol)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from tests.support import SimThread

MARKET = Market(17, TradingCalendar(), stocks=200, etfs=10)
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
TEN = datetime(2026, 11, 20, 10, 0, tzinfo=KST)


@pytest.fixture
def sim() -> Iterator[SimThread]:
    with SimThread(MARKET, TEN, speed=30) as thread:
        yield thread
