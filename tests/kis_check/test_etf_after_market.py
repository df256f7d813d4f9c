"""`observer kis check` reads off an ETF's bars whether KRX's after-market trades ETFs: against
a simulator that follows KRX's rule (none) and one that does not (the other way)."""

from __future__ import annotations

import asyncio
from datetime import datetime, time
from pathlib import Path

import pytest

from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.kis_check.etf_after_market import ITEM, etf_after_market_finding
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.kis_check.run import Configured
from tests.support import SimThread, sim_client

DAY = datetime(2026, 11, 20, tzinfo=KST).date()  # a Friday session under the 2026-09 regime


def _finding(market: Market, at: time, folder: Path) -> tuple[str, str]:
    """The finding's (status, text) of the market's largest ETF, asked at ``at`` KST."""
    etf = next(s for s, x in market.listings.items() if x.group == "EF" and not x.suspended)
    now = datetime.combine(DAY, at, KST)
    report = Report(account="acct1", environment="real", symbol=etf, seconds=0)
    with SimThread(market, now, SimConfig(token_min_interval_s=0)) as sim:
        client = sim_client(sim, folder, "acct1")

        async def run() -> None:
            try:
                await etf_after_market_finding(client, etf, Configured().venues, now, report)
            finally:
                await client._http.aclose()  # type: ignore[attr-defined]

        asyncio.run(run())
    [found] = [f for f in report.findings if f.item == ITEM]
    return found.outcome, found.finding


@pytest.mark.parametrize(("etfs_trade", "status"), [(False, OK), (True, MISMATCH)])
def test_an_etf_trading_in_krx_s_after_market_is_a_mismatch(
    tmp_path: Path, etfs_trade: bool, status: str
) -> None:
    market = Market(7, TradingCalendar(), stocks=10, etfs=5, etfs_after_market=etfs_trade)
    found, text = _finding(market, time(18, 30), tmp_path)
    assert found == status, text
    assert "16:00-18:30" in text
    if etfs_trade:
        assert "observer/market/after_markets.py" in text


def test_before_ten_minutes_of_the_after_market_nothing_is_measured(tmp_path: Path) -> None:
    market = Market(7, TradingCalendar(), stocks=10, etfs=5, etfs_after_market=True)
    found, text = _finding(market, time(16, 5), tmp_path)
    assert found == NOT_MEASURED and "after 16:10" in text, text
