"""The simulator's market-operation and program-trading records, as the client reads them."""

from __future__ import annotations

from datetime import date, datetime, time

from harness.sim.config import Faults
from harness.sim.market import KST, Market
from harness.sim.market_status import program_record, status_records
from observer.calendar.trading import TradingCalendar
from observer.kis.realtime import RealtimeDecoder

MARKET = Market(7, TradingCalendar(), stocks=1500, etfs=500)
DAY = date(2026, 11, 20)
NS = 1_000_000_000


def at(hour: int, minute: int) -> datetime:
    return datetime.combine(DAY, time(hour, minute), KST)


def test_krx_session_events_a_halt_and_a_vi_in_time_order() -> None:
    symbol = next(
        s for s in MARKET.listings if (w := MARKET.vi_window(s, DAY)) and w[0] < at(15, 0)
    )
    vi = MARKET.vi_window(symbol, DAY)
    assert vi is not None and at(10, 0) <= vi[0] < vi[1] <= at(15, 1)
    faults = Faults()
    faults.halts[symbol] = (int(at(9, 10).timestamp()) * NS, int(at(9, 20).timestamp()) * NS)
    records = status_records("H0STMKO0", symbol, at(8, 0), at(16, 0), faults, MARKET)
    frame = "^".join(records)
    events = RealtimeDecoder("acct1").decode(f"0|H0STMKO0|{len(records):03d}|{frame}", 0)
    statuses = events.statuses
    assert not events.errors and len(statuses) == 8
    assert [(s.operation, s.expected_operation) for s in statuses[:2]] == [
        ("", "311"),
        ("112", "112"),
    ]
    assert [(s.halted, s.status) for s in statuses[2:4]] == [(True, "58"), (False, "55")]
    assert statuses[2].halt_reason and statuses[3].halt_reason == ""
    assert [s.vi for s in statuses[4:6]] == ["Y", "N"]
    assert [s.operation for s in statuses[6:]] == ["121", "129"]
    assert {s.exchange for s in statuses} == {"1"} and {s.symbol for s in statuses} == {symbol}
    # Within a window: only its events; Nextrade's feed has its own, its VIs its own too.
    assert len(status_records("H0STMKO0", symbol, at(9, 0), at(9, 15), faults, MARKET)) == 1
    assert MARKET.vi_window(symbol, DAY, "NXT") is None
    nxt = status_records("H0NXMKO0", symbol, at(7, 0), at(21, 0), Faults(), MARKET)
    assert len(nxt) == 6 and all(r.endswith("^2") for r in nxt)
    other = next(s for s in MARKET.listings if MARKET.vi_window(s, DAY, "NXT"))
    nxt = status_records("H0NXMKO0", other, at(7, 0), at(21, 0), Faults(), MARKET)
    events = RealtimeDecoder("acct1").decode(f"0|H0NXMKO0|{len(nxt):03d}|{'^'.join(nxt)}", 0)
    assert [s.vi for s in events.statuses if s.vi == "Y" or not s.operation] == ["Y", "N"]


def test_one_symbol_in_ten_has_a_vi_a_day() -> None:
    with_vi = sum(MARKET.vi_window(s, DAY) is not None for s in MARKET.listings)
    assert 140 <= with_vi <= 260


def test_krx_s_vis_happen_in_its_after_market_too_unless_the_switch_says_not() -> None:
    """With `Market.krx_after_market_vis` (the default), a KRX VI of a stock starts in the
    regular day's 10:00-14:59 or in the after-market's 16:00-19:57, about as the minutes
    weigh (238 of 538); an ETF's (no after-market), and every VI before 2026-09-14, in the
    regular day. Off, every VI is in the regular day; the same names have one either way, and
    Nextrade's are the same. The status feed sends the evening's at its instants."""
    regular = Market(7, TradingCalendar(), stocks=1500, etfs=500, krx_after_market_vis=False)

    def windows(market: Market, day: date, venue: str = "KRX") -> dict[str, tuple[datetime, ...]]:
        return {s: w for s in market.listings if (w := market.vi_window(s, day, venue))}

    evening, day_only = windows(MARKET, DAY), windows(regular, DAY)
    assert evening.keys() == day_only.keys()
    assert windows(MARKET, DAY, "NXT") == windows(regular, DAY, "NXT")
    assert all(at(10, 0) <= w[0] <= at(14, 59) for w in day_only.values())
    late = {s: w for s, w in evening.items() if w[0] >= at(16, 0)}
    assert all(at(16, 0) <= w[0] <= at(19, 57) and w[1] <= at(20, 0) for w in late.values())
    assert all(MARKET.listings[s].group == "ST" for s in late)
    stocks = [s for s in evening if MARKET.listings[s].group == "ST"]
    assert 0.3 < len(late) / len(stocks) < 0.58, (len(late), len(stocks))
    assert all(evening[s] == day_only[s] for s in evening if s not in late)
    before = date(2026, 9, 11)
    assert all(w[0] < at(15, 0).replace(day=11, month=9) for w in windows(MARKET, before).values())
    symbol = min(late, key=lambda s: late[s][0])
    records = status_records("H0STMKO0", symbol, at(15, 30), at(20, 0), Faults(), MARKET)
    assert [r.split("^")[8] for r in records] == ["Y", "N"]


def test_program_trading_is_the_day_s_so_far() -> None:
    record = program_record("005930", "092237", 73_100, 1_000_000)
    (program,) = RealtimeDecoder().decode(f"0|H0STPGM0|001|{record}", 0).programs
    assert (program.sell_qty, program.buy_qty, program.net_qty) == (70_000, 60_000, -10_000)
    assert program.net_value == -10_000 * 73_100 == program.buy_value - program.sell_value
