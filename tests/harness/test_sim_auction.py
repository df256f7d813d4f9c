"""The simulator's expected matches through KRX's auctions, as the client reads them."""

from __future__ import annotations

from datetime import date, datetime, time

from harness.sim.auction import EVERY_S, expected_records
from harness.sim.market import KST, Market
from harness.sim.price_units import price_limits
from observer.calendar.trading import TradingCalendar
from observer.kis.realtime import RealtimeDecoder

DAY = date(2026, 11, 20)
NS = 1_000_000_000


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute, second), KST)


def test_each_auction_moves_toward_the_match_its_bars_print() -> None:
    market = Market(3, TradingCalendar(), stocks=20, etfs=0)
    symbol = next(iter(market.listings))
    path = market.day_path(symbol, DAY)
    records = expected_records("H0STANC0", symbol, path, at(8, 0), at(16, 0))
    per_auction = 30 * 60 // EVERY_S - 1 + 10 * 60 // EVERY_S - 1
    assert len(records) == per_auction
    frame = "^".join(records)
    events = RealtimeDecoder("acct1").decode(f"0|H0STANC0|{len(records):03d}|{frame}", 0)
    expected = events.expected
    assert not events.errors and len(expected) == len(records)
    opening = [e for e in expected if e.hour_class == "B"]
    closing = [e for e in expected if e.hour_class == "A"]
    assert len(opening) == 179 and len(closing) == 59
    lower, upper = price_limits(path.prev_close)
    assert all(lower <= e.price <= upper for e in expected)
    # The expected price settles on the match the bars print.
    assert opening[-1].price == path.day_open and closing[-1].price == path.day_close
    assert opening[0].volume < opening[-1].volume  # the quantity grows toward the match
    # Within a window only its records; Nextrade sends none.
    assert len(expected_records("H0STANC0", symbol, path, at(8, 59), at(9, 0))) == 60 // EVERY_S - 1
    assert expected_records("H0NXANC0", symbol, path, at(8, 0), at(16, 0)) == []


def test_nextrade_s_after_market_auction_moves_from_krx_s_close_to_its_match() -> None:
    market = Market(3, TradingCalendar(), stocks=20, etfs=0)
    symbol = next(s for s in market.listings if s in market.nxt_eligible(DAY))
    path, nxt = market.day_path(symbol, DAY), market.nxt_day(symbol, DAY)
    matched = nxt.auction_match(path.hours.nxt_auction[1])
    assert matched is not None  # a listed name's orders of those ten minutes
    records = expected_records("H0NXANC0", symbol, path, at(8, 0), at(20, 0), nxt)
    frame = "^".join(record + "^0" for record in records)  # its VI_STND_PRC
    received = int(at(15, 41).timestamp()) * NS  # the records' times are dated by it
    events = RealtimeDecoder("acct1").decode(f"0|H0NXANC0|{len(records):03d}|{frame}", received)
    expected = events.expected
    assert not events.errors and len(expected) == 10 * 60 // EVERY_S - 1
    assert {(e.venue, e.hour_class) for e in expected} == {("NXT", "B")}
    assert expected[-1].price == matched[0] and expected[-1].volume <= matched[1]
    first = int(at(15, 30, EVERY_S).timestamp()) * NS
    assert (
        expected[0].exchange_ns == first and expected[-1].exchange_ns < at(15, 40).timestamp() * NS
    )
