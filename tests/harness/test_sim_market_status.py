"""The simulator's market-operation and program-trading records, as the client reads them."""

from __future__ import annotations

from datetime import date, datetime, time

from harness.sim.config import Faults
from harness.sim.market import KST
from harness.sim.market_status import program_record, status_records, vi_window
from observer.kis.realtime import RealtimeDecoder

DAY = date(2026, 11, 20)
NS = 1_000_000_000


def at(hour: int, minute: int) -> datetime:
    return datetime.combine(DAY, time(hour, minute), KST)


def test_krx_session_events_a_halt_and_a_vi_in_time_order() -> None:
    symbol = next(f"{n:06d}" for n in range(1, 10_000) if vi_window(f"{n:06d}", DAY))
    vi = vi_window(symbol, DAY)
    assert vi is not None and at(10, 0) <= vi[0] < vi[1] <= at(15, 1)
    faults = Faults()
    faults.halts[symbol] = (int(at(9, 10).timestamp()) * NS, int(at(9, 20).timestamp()) * NS)
    records = status_records("H0STMKO0", symbol, at(8, 0), at(16, 0), faults)
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
    assert len(status_records("H0STMKO0", symbol, at(9, 0), at(9, 15), faults)) == 1
    assert vi_window(symbol, DAY, "NXT") is None
    nxt = status_records("H0NXMKO0", symbol, at(7, 0), at(21, 0), Faults())
    assert len(nxt) == 6 and all(r.endswith("^2") for r in nxt)
    other = next(f"{n:06d}" for n in range(1, 10_000) if vi_window(f"{n:06d}", DAY, "NXT"))
    nxt = status_records("H0NXMKO0", other, at(7, 0), at(21, 0), Faults())
    events = RealtimeDecoder("acct1").decode(f"0|H0NXMKO0|{len(nxt):03d}|{'^'.join(nxt)}", 0)
    assert [s.vi for s in events.statuses if s.vi == "Y" or not s.operation] == ["Y", "N"]


def test_one_symbol_in_ten_has_a_vi_a_day() -> None:
    with_vi = sum(vi_window(f"{n:06d}", DAY) is not None for n in range(1, 2001))
    assert 140 <= with_vi <= 260


def test_program_trading_is_the_day_s_so_far() -> None:
    record = program_record("005930", "092237", 73_100, 1_000_000)
    (program,) = RealtimeDecoder().decode(f"0|H0STPGM0|001|{record}", 0).programs
    assert (program.sell_qty, program.buy_qty, program.net_qty) == (70_000, 60_000, -10_000)
    assert program.net_value == -10_000 * 73_100 == program.buy_value - program.sell_value
