"""Nextrade's 종가매매 in the simulator: trades at KRX's closing price 15:30-16:00, beside the
after-market's auction (never folded into its match), on Nextrade's feed and the combined one
with their own session code ("5", or another by `SimConfig.nxt_closing_price_code`), counted
in the day's volume; switched off, none."""

from __future__ import annotations

import itertools

import numpy as np

from harness.sim.hours import AFTER_AUCTION, CLOSING_PRICE_SPAN
from harness.sim.market import Market
from harness.sim.nextrade import DayTrades
from observer.calendar.trading import TradingCalendar
from tests.sim.test_krx_after_market import (
    ACML_VOL,
    CNTG_VOL,
    DAY,
    MARKET,
    NXT,
    TRADE_CODE,
    at,
    pushed,
    second_of,
    simulator,
)

OPENS, CLOSES = CLOSING_PRICE_SPAN.start_s, CLOSING_PRICE_SPAN.end_s
PRICE = 2  # a trade record's STCK_PRPR


def _closing(market: Market = MARKET, symbol: str = NXT) -> DayTrades:
    closing = market.nxt_closing_day(symbol, DAY)
    assert closing is not None and len(closing.at_s) > 0
    return closing


def test_the_trades_print_at_krx_s_close_in_their_half_hour_beside_the_auction() -> None:
    closing = _closing()
    assert ((closing.at_s >= OPENS) & (closing.at_s < CLOSES)).all()
    assert set(closing.price.tolist()) == {MARKET.daily_bar(NXT, DAY).close}  # the 15:30 match
    # Inside the after-market's auction too, where Nextrade's own orders wait for 15:40
    assert (closing.at_s < AFTER_AUCTION[1]).any()
    # Nextrade's day holds them beside its own trades, which stay as drawn without them
    off = Market(31, TradingCalendar(), stocks=40, etfs=4, nxt_closing_price=False)
    assert off.nxt_closing_day(NXT, DAY) is None
    day, alone = MARKET.nxt_day(NXT, DAY), off.nxt_day(NXT, DAY)
    assert len(day.at_s) == len(alone.at_s) + len(closing.at_s)
    assert int(day.qty.sum()) == int(alone.qty.sum()) + int(closing.qty.sum())
    assert (np.diff(day.at_s) >= 0).all()
    auction = (alone.at_s > AFTER_AUCTION[0]) & (alone.at_s < AFTER_AUCTION[1])
    assert not auction.any()  # Nextrade's own: one match at 15:40, nothing before it


def test_nextrade_s_feed_codes_them_apart_and_its_volume_runs_through_them() -> None:
    closing = _closing()
    for code in ("5", "3"):  # as believed, and the other way
        sim = simulator(at(DAY, 15, 29), nxt_closing_price_code=code)
        records = [
            r.split("^") for r in pushed(sim, "H0NXCNT0", NXT, at(DAY, 15, 29), at(DAY, 16, 1))
        ]
        coded = [
            f for f in records if f[TRADE_CODE] == code and OPENS <= second_of("^".join(f)) < CLOSES
        ]
        if code == "5":
            assert len(coded) == len(closing.at_s)
            assert {int(f[PRICE]) for f in coded} == set(closing.price.tolist())
            assert [int(f[CNTG_VOL]) for f in coded] == closing.qty.tolist()
            others = {f[TRADE_CODE] for f in records if f not in coded}
            assert others <= {"2", "3"}  # the main session's last minute, the after-market
        else:
            assert "5" not in {f[TRADE_CODE] for f in records}
        for a, b in itertools.pairwise(records):
            assert int(b[ACML_VOL]) == int(a[ACML_VOL]) + int(b[CNTG_VOL])


def test_the_combined_feed_carries_them_with_their_code() -> None:
    sim = simulator(at(DAY, 15, 29))
    records = [r.split("^") for r in pushed(sim, "H0UNCNT0", NXT, at(DAY, 15, 29), at(DAY, 16, 1))]
    assert sum(1 for f in records if f[TRADE_CODE] == "5") == len(_closing().at_s)
