"""`observer kis check` reads off an ETF's bars whether KRX's after-market trades ETFs, and off
a stock's under 투자경고 whether Nextrade's and KRX's trade it: against a simulator that follows
the exchanges' rules (as the observer believes them) and one that does not (the other way)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, time
from pathlib import Path

import pytest

from bus.events import Venue
from bus.producer import Producer
from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.settings import VenueSettings
from observer.calendar.trading import TradingCalendar
from observer.db.settings import DatabaseSettings
from observer.kis.client import KisClient
from observer.kis_check.after_markets import (
    ITEM,
    MEASURED_ITEMS,
    MeasuredTarget,
    etf_after_market_finding,
    measured_after_market_finding,
    measured_target,
)
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.kis_check.run import Configured
from tests.support import SimThread, WriterProcess, sim_client
from tests.track_b.test_track_b import DAY as UNIVERSE_DAY
from tests.track_b.test_track_b import universe

DAY = datetime(2026, 11, 20, tzinfo=KST).date()  # a Friday session under the 2026-09 regime


Ask = Callable[[KisClient, datetime, Report], Awaitable[None]]


def _row(market: Market, at: time, folder: Path, item: str, ask: Ask) -> tuple[str, str]:
    """The (status, text) of ``item``'s row as ``ask`` writes it at ``at`` KST."""
    now = datetime.combine(DAY, at, KST)
    report = Report(account="acct1", environment="real", symbol="", seconds=0)
    with SimThread(market, now, SimConfig(token_min_interval_s=0)) as sim:
        client = sim_client(sim, folder, "acct1")

        async def run() -> None:
            try:
                await ask(client, now, report)
            finally:
                await client._http.aclose()  # type: ignore[attr-defined]

        asyncio.run(run())
    [found] = [f for f in report.findings if f.item == item]
    return found.outcome, found.finding


def _finding(market: Market, at: time, folder: Path) -> tuple[str, str]:
    """The ETF row of the market's largest ETF, asked at ``at`` KST."""
    etf = next(s for s, x in market.listings.items() if x.group == "EF" and not x.suspended)
    return _row(
        market,
        at,
        folder,
        ITEM,
        lambda client, now, report: etf_after_market_finding(
            client, etf, Configured().venues, now, report
        ),
    )


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


def _measured(
    market: Market,
    symbol: str,
    at: time,
    folder: Path,
    venue: Venue = "NXT",
    excluded: bool = True,
) -> tuple[str, str]:
    """``venue``'s row for ``symbol`` under 투자경고, asked at ``at`` KST; ``excluded``:
    whether the venue's setting excludes it."""
    target = MeasuredTarget(venue, symbol, ("warning",), excluded=excluded)
    return _row(
        market,
        at,
        folder,
        MEASURED_ITEMS[venue],
        lambda client, now, report: measured_after_market_finding(
            client, target, Configured().venues, now, report
        ),
    )


@pytest.mark.parametrize(("measures_trade", "status"), [(False, OK), (True, MISMATCH)])
def test_a_stock_under_a_measure_trading_in_nextrade_s_after_market_is_a_mismatch(
    tmp_path: Path, measures_trade: bool, status: str
) -> None:
    """Against a simulator whose Nextrade after-market follows the rule (no trade of a stock
    under 투자경고) and one that trades it (the other way)."""
    market = Market(11, TradingCalendar(), nxt_after_market_measures=measures_trade)
    warned = sorted(
        s for s in market.nxt_eligible(DAY) if "warning" in market.listings[s].measures
    )[0]
    found, text = _measured(market, warned, time(17, 0), tmp_path)
    assert found == status, text
    assert f"{warned} (warning)" in text and "15:40-17:00" in text
    if measures_trade:
        assert "[venues.nxt] after_market_excludes" in text


@pytest.mark.parametrize(
    ("measures_trade", "excluded", "status", "said"),
    [
        (True, False, OK, "as [venues.krx] after_market_excludes (none of its measures) says"),
        (False, False, NOT_MEASURED, "KRX's after-market may exclude its measures"),
        (True, True, MISMATCH, "take its measures out of [venues.krx] after_market_excludes"),
        (False, True, OK, "as KRX's rules say"),
    ],
)
def test_a_stock_under_a_measure_in_krx_s_after_market_is_held_against_krx_s_setting(
    tmp_path: Path, measures_trade: bool, excluded: bool, status: str, said: str
) -> None:
    """Against a simulator whose KRX after-market trades a stock under 투자경고 (as the
    observer believes) and one that does not (the other way), with the setting excluding
    none (the default) and excluding it."""
    market = Market(11, TradingCalendar(), krx_after_market_measures=measures_trade)
    stocks = sorted(s for s, x in market.listings.items() if x.group == "ST")
    warned = next(s for s in stocks if "warning" in market.listings[s].measures)
    found, text = _measured(market, warned, time(17, 0), tmp_path, "KRX", excluded)
    assert found == status, text
    assert f"{warned} (warning)" in text and "16:00-17:00" in text and said in text, text


def test_without_a_target_or_ten_minutes_in_nothing_is_measured(tmp_path: Path) -> None:
    market = Market(7, TradingCalendar(), stocks=10, etfs=5)
    found, text = _measured(market, "005930", time(15, 45), tmp_path)
    assert found == NOT_MEASURED and "after 15:50" in text, text
    report = Report(account="acct1", environment="real", symbol="005930", seconds=0)
    none = MeasuredTarget(unread="no stock of 2026-11-20's universe Nextrade lists is under one")
    assert none.venue == "NXT"
    now = datetime.combine(DAY, time(17), KST)
    asyncio.run(measured_after_market_finding(None, none, Configured().venues, now, report))  # type: ignore[arg-type]
    [row] = report.findings
    assert (row.outcome, row.finding) == (NOT_MEASURED, none.unread)


def test_the_target_is_the_largest_nextrade_member_under_an_excluded_measure(
    tmp_path: Path,
) -> None:
    """From today's universe as stored: Nextrade's names under a measure the setting
    excludes, the largest; none said why (no database, no universe, no such member)."""
    excludes = VenueSettings().nxt.after_market_excludes
    missing = DatabaseSettings(url=f"sqlite:///{tmp_path / 'absent' / 'observer.db'}")
    assert measured_target(missing, UNIVERSE_DAY, "NXT", excludes).unread.startswith("no database")
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    try:
        database = DatabaseSettings(url=url)
        assert (
            measured_target(database, UNIVERSE_DAY, "NXT", excludes).unread
            == f"no universe of {UNIVERSE_DAY} stored"
        )
        symbols = ["000001", "000002", "000003", "000004"]
        measures = {"000002": ("caution",), "000003": ("warning",), "000004": ("risk",)}
        with Producer("universe", writer.ingest, tmp_path / "outbox") as producer:
            producer.send(universe(symbols, nxt=symbols[:3], measures=measures))
            assert producer.wait_acked(30)
        # 000002: a caution is no excluded measure; 000004: Nextrade does not list it
        assert measured_target(database, UNIVERSE_DAY, "NXT", excludes) == MeasuredTarget(
            "NXT", "000003", ("warning",)
        )
        none = measured_target(database, UNIVERSE_DAY, "NXT", ("administrative",))
        assert none.unread == f"no stock of {UNIVERSE_DAY}'s universe Nextrade lists is under one"
        # KRX's: every member; its setting naming none, under one of Nextrade's (not excluded)
        assert measured_target(database, UNIVERSE_DAY, "KRX", (), excludes) == MeasuredTarget(
            "KRX", "000003", ("warning",), excluded=False
        )
        named = measured_target(database, UNIVERSE_DAY, "KRX", ("risk",))  # not on Nextrade
        assert named == MeasuredTarget("KRX", "000004", ("risk",))
        none = measured_target(database, UNIVERSE_DAY, "KRX", ("liquidation",))
        assert none.unread == f"no stock of {UNIVERSE_DAY}'s universe is under one"
        asked = measured_target(database, UNIVERSE_DAY, "KRX", ())
        assert asked.unread == "no measure to ask about"
    finally:
        writer.terminate()
