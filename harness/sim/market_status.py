"""The simulator's market-operation and program-trading records (H0STMKO0, H0NXMKO0, *PGM0).

Market operation (11 fields, KIS's order): a record at each of the venue's session events, at
a halt's start and end (`Faults.halts`), and at the start and end of its VI of the day on the
venue, if it has one (`Market.vi_window`). KRX's session codes are KIS's
(the H0STMKO0 code table); Nextrade's are the simulator's, KIS documents none for H0NXMKO0.
Program trading (11 fields): one record at each minute's last trade of the venue's feed, the
day's program buying and selling so far a fixed share of the volume.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from harness.sim.config import Faults
from harness.sim.market import KST, Market
from harness.sim.protocol import NS

__all__ = [
    "PROGRAMS",
    "PROGRAM_BUY_PCT",
    "PROGRAM_SELL_PCT",
    "STATUSES",
    "program_record",
    "status_records",
]

STATUSES = frozenset({"H0STMKO0", "H0NXMKO0"})
PROGRAMS = frozenset({"H0STPGM0", "H0NXPGM0", "H0UNPGM0"})

# (time, MKOP_CLS_CODE, ANTC_MKOP_CLS_CODE, with the opening) on an ordinary day: 311 the
# opening auction's expected prices start, 112 the open (both later on a day that opens
# late), 121 the closing auction, 129 the close (later on a day whose close moves).
_KRX_EVENTS = (
    (time(8, 30), "", "311", True),
    (time(9, 0), "112", "112", True),
    (time(15, 20), "121", "121", False),
    (time(15, 30), "129", "129", False),
)
# Nextrade's by its session code: (MKOP_CLS_CODE at its start, at its end): 130/139 the
# pre-market, 112/129 the main session, 150/159 the after-market (150 at its auction's match).
_NXT_EVENTS = {"1": ("130", "139"), "2": ("112", "129"), "3": ("150", "159")}
PROGRAM_SELL_PCT, PROGRAM_BUY_PCT = 7, 6  # of the day's volume so far


def status_records(
    tr_id: str, symbol: str, start: datetime, end: datetime, faults: Faults, market: Market
) -> list[str]:
    """The symbol's market-operation records in (start, end], in time order.

    On Nextrade's feed (H0NXMKO0) the symbol is one Nextrade trades: its VIs are its own.
    """
    day = end.date()
    krx = tr_id == "H0STMKO0"
    exchange = "1" if krx else "2"
    events: list[tuple[datetime, str]] = []
    halted = faults.halts.get(symbol)
    for when, operation, expected in _krx_events(market, day) if krx else _nxt_events(market, day):
        record = _status(symbol, _halted(halted, when), operation, expected, exchange=exchange)
        events.append((when, record))
    if halted is not None:
        for ns, flag in ((halted[0], True), (halted[1], False)):
            when = datetime.fromtimestamp(ns / NS, KST)
            events.append((when, _status(symbol, flag, exchange=exchange)))
    if (vi := market.vi_window(symbol, day, "KRX" if krx else "NXT")) is not None:
        for when, applies in ((vi[0], "Y"), (vi[1], "N")):
            record = _status(symbol, _halted(halted, when), vi=applies, exchange=exchange)
            events.append((when, record))
    return [record for when, record in sorted(events) if start < when <= end]


def _krx_events(market: Market, day: date) -> list[tuple[datetime, str, str]]:
    """KRX's session events of ``day``: (when, MKOP_CLS_CODE, ANTC_MKOP_CLS_CODE)."""
    hours = market.hours(day)
    return [
        (
            datetime.combine(day, at, KST)
            + timedelta(minutes=hours.morning if opening else hours.shift),
            op,
            expected,
        )
        for at, op, expected, opening in _KRX_EVENTS
    ]


def _nxt_events(market: Market, day: date) -> list[tuple[datetime, str, str]]:
    """Nextrade's session events of ``day`` (`DayHours.nxt`), as KRX's."""
    midnight = datetime.combine(day, time(), KST)
    events = []
    hours = market.hours(day)
    for span in hours.nxt:
        opened, closed = _NXT_EVENTS[span.market_code]
        start = hours.nxt_auction[1] if span.market_code == "3" else span.start_s
        events.append((midnight + timedelta(seconds=start), opened, ""))
        events.append((midnight + timedelta(seconds=span.end_s), closed, ""))
    return events


def _halted(window: tuple[int, int] | None, when: datetime) -> bool:
    return window is not None and window[0] <= int(when.timestamp()) * NS < window[1]


def _status(
    symbol: str,
    halted: bool,
    operation: str = "",
    expected: str = "",
    vi: str = "N",
    exchange: str = "1",
) -> str:
    """One record: TRHT_YN and status 58 while halted, KIS's ``(null)`` for no reason."""
    reason = "simulated halt" if halted else "(null)"
    status = "58" if halted else "55"
    fields = [symbol, "Y" if halted else "N", reason, operation, expected, "", "", status, vi]
    return "^".join([*fields, "N", exchange])


def program_record(symbol: str, hhmmss: str, price: int, volume: int) -> str:
    """One program-trading record: the day's program selling and buying so far."""
    sold = volume * PROGRAM_SELL_PCT // 100
    bought = volume * PROGRAM_BUY_PCT // 100
    asks, bids = 1_000 + volume % 700, 1_000 + volume % 500
    fields = [
        symbol,
        hhmmss,
        sold,
        sold * price,
        bought,
        bought * price,
        bought - sold,
        (bought - sold) * price,
        asks,
        bids,
        bids - asks,
    ]
    return "^".join(str(f) for f in fields)
