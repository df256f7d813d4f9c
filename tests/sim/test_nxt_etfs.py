"""ETFs on Nextrade in the simulator (from `NXT_ETFS_FROM`, reported as November 2026): the
largest ETFs join Nextrade's list, trade in its pre-market and main session, and never in its
after-market or 종가매매 (stocks alone there); switched off, Nextrade lists stocks alone."""

from __future__ import annotations

from datetime import date

import numpy as np

from harness.sim.config import SimConfig
from harness.sim.hours import NXT_SPANS, ORDINARY
from harness.sim.market import NXT_ETF_SHARE, Market
from harness.sim.nextrade import NXT_ETFS_FROM
from harness.sim.server import Simulator
from observer.calendar.clock import ManualClock
from observer.calendar.trading import TradingCalendar
from tests.sim.test_krx_after_market import TRADE_CODE, at, ns, pushed, second_of

MARKET = Market(31, TradingCalendar(), stocks=40, etfs=20)
DAY = date(2026, 11, 20)
BEFORE = MARKET.calendar.previous_session(NXT_ETFS_FROM)
ETFS = {s for s, x in MARKET.listings.items() if x.group == "EF"}


def test_the_largest_etfs_join_nextrade_s_list_on_their_first_day() -> None:
    assert not MARKET.nxt_eligible(BEFORE) & ETFS
    listed = MARKET.nxt_eligible(NXT_ETFS_FROM) & ETFS
    assert len(listed) == round(len(ETFS) * NXT_ETF_SHARE) > 0
    worth = {s: MARKET.close(s, BEFORE) * MARKET.listings[s].listed_shares for s in ETFS}
    assert min(worth[s] for s in listed) > max(worth[s] for s in ETFS - listed)
    assert MARKET.nxt_eligible(DAY) & ETFS == listed  # the same list through the quarter
    stocks = MARKET.nxt_eligible(DAY) - ETFS
    off = Market(31, TradingCalendar(), stocks=40, etfs=20, nxt_etfs=False)
    assert off.nxt_eligible(DAY) == stocks  # the stocks' list is the same either way


def test_an_etf_trades_before_nextrade_s_after_market_alone() -> None:
    """Pre-market and main session; nothing from the after-market's orders (15:30) on."""
    for symbol in sorted(MARKET.nxt_eligible(DAY) & ETFS):
        day = MARKET.nxt_day(symbol, DAY)
        assert MARKET.nxt_closing_day(symbol, DAY) is None
        pre, main = NXT_SPANS[0], NXT_SPANS[1]
        assert ((day.at_s >= pre.start_s) & (day.at_s < pre.end_s)).any()
        assert ((day.at_s >= main.start_s) & (day.at_s < main.end_s)).any()
        assert len(day.at_s) > 0 and (day.at_s < ORDINARY.nxt_after_from_s).all()
        assert (np.diff(day.at_s) >= 0).all()
    stock = next(s for s in sorted(MARKET.nxt_eligible(DAY) - ETFS))
    assert (MARKET.nxt_day(stock, DAY).at_s >= ORDINARY.nxt_after_from_s).any()  # a stock's go on


def test_nextrade_s_feed_sends_an_etf_s_trades_until_its_main_session_ends() -> None:
    symbol = min(MARKET.nxt_eligible(DAY) & ETFS)
    sim = Simulator(MARKET, ManualClock(ns(at(DAY, 15))), SimConfig())
    records = [r.split("^") for r in pushed(sim, "H0NXCNT0", symbol, at(DAY, 15), at(DAY, 16))]
    day = MARKET.nxt_day(symbol, DAY)
    sent = [second_of("^".join(f)) for f in records]
    assert len(records) == int(((day.at_s > 15 * 3600) & (day.at_s <= 16 * 3600)).sum()) > 0
    assert max(sent) < NXT_SPANS[1].end_s and {f[TRADE_CODE] for f in records} == {"2"}
