"""The simulator's expected matches through the auctions (H0STANC0, H0NXANC0, H0UNANC0).

KRX's opening auction (08:30-09:00, HOUR_CLS_CODE ``B``; later on a day that opens late) and
closing auction (15:20-15:30, ``A``; later on a day whose close moves: `harness.sim.hours`): a
record every `EVERY_S` seconds, in H0STCNT0's first 45 fields as KIS's example fills them (the
expected price in STCK_PRPR, the expected quantity in CNTG_VOL and ACML_VOL, the day's high,
low and counts zero). The expected price moves from where the auction starts (the previous
close; the last trade before the closing auction) to the match the day's bars print (their
open; their close), which it reaches at four fifths of the auction, with a wiggle of a few
price units that narrows to none; the quantity grows toward the match's. The combined feed's
records are KRX's. Nextrade's after-market opening auction (15:30-15:40,
`harness.sim.hours.DayHours.nxt_auction`) sends H0NXANC0 the same way for a name it trades,
from KRX's close to its 15:40 match; KIS documents no hour class for it: ``B`` here, as an
opening's.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from harness.sim.market import KST, DayPath
from harness.sim.nextrade import NxtDay
from harness.sim.paths import CLOSING_AUCTION_FROM
from harness.sim.price_units import price_limits, tick_size
from harness.sim.protocol import price_sign

__all__ = ["EVERY_S", "EXPECTED", "FIELDS", "expected_records"]

EXPECTED = frozenset({"H0STANC0", "H0NXANC0", "H0UNANC0"})
FIELDS = 45  # H0STANC0's 2026-05 record
EVERY_S = 10
_WIGGLE_UNITS = 3
_SETTLES = 1.25  # the expected price reaches the match at 80 % of the auction
# (start, end, HOUR_CLS_CODE, match at the open) on an ordinary day: the opening's at its
# first traded bar's open (later on a day that opens late: `DayHours.morning`), the closing's
# at the last bar's close (later on a day whose close moves: `DayHours.shift`)
_AUCTIONS = (
    (time(8, 30), time(9, 0), "B", True),
    (time(15, 20), time(15, 30), "A", False),
)


def expected_records(
    tr_id: str,
    symbol: str,
    path: DayPath,
    start: datetime,
    end: datetime,
    nxt: NxtDay | None = None,
) -> list[str]:
    """``symbol``'s expected-match records in (start, end], in time order (45 fields each).

    Nextrade's (H0NXANC0) with ``nxt``, the name's Nextrade day if it trades there.
    """
    day = end.date()
    records = []
    if tr_id == "H0NXANC0":
        auction_s = path.hours.nxt_auction
        matched = nxt.auction_match(auction_s[1]) if nxt is not None else None
        if matched is None:
            return []
        opens, closes = (_at(day, second) for second in auction_s)
        auction = _Auction(opens, closes, int(path.close[-1]), *matched, "B")
        return _path(symbol, day, auction, path.prev_close, start, end)
    for first, last, hour_class, at_open in _AUCTIONS:
        moved = timedelta(minutes=path.hours.morning if at_open else path.hours.shift)
        opens = datetime.combine(day, first, KST) + moved
        closes = datetime.combine(day, last, KST) + moved
        bar = path.first if at_open else -1
        match = int(path.open[bar]) if at_open else int(path.close[bar])
        origin = path.prev_close if at_open else int(path.close[CLOSING_AUCTION_FROM - 1])
        auction = _Auction(opens, closes, origin, match, int(path.volume[bar]), hour_class)
        records += _path(symbol, day, auction, path.prev_close, start, end)
    return records


@dataclass(frozen=True, slots=True)
class _Auction:
    """One auction of a day: its span, where its expected price starts, its match."""

    opens: datetime
    closes: datetime
    origin: int
    match: int
    quantity: int
    hour_class: str


def _at(day: date, second_of_day: int) -> datetime:
    return datetime.combine(day, time(), KST) + timedelta(seconds=second_of_day)


def _path(
    symbol: str, day: date, auction: _Auction, prev_close: int, start: datetime, end: datetime
) -> list[str]:
    """The records of ``auction`` in (start, end]: toward the match, every `EVERY_S`."""
    if end <= auction.opens or start >= auction.closes:
        return []
    records = []
    seconds = int((auction.closes - auction.opens).total_seconds())
    for offset in range(EVERY_S, seconds, EVERY_S):
        at = auction.opens + timedelta(seconds=offset)
        if not start < at <= end:
            continue
        share = min(1.0, _SETTLES * offset / seconds)  # at the match before the end
        level = auction.origin + (auction.match - auction.origin) * share
        price = _price(symbol, day, offset, level, share, prev_close)
        qty = max(1, int(auction.quantity * offset / seconds))
        records.append(_record(symbol, at, day, price, qty, prev_close, auction.hour_class))
    return records


def _price(symbol: str, day: date, offset: int, level: float, share: float, prev_close: int) -> int:
    """``level`` a few price units off (the symbol, day and instant pick), within the limits.

    The wiggle narrows as the auction settles (``share`` of the way): none at the match.
    """
    unit = tick_size(int(level))
    wiggle = round(_WIGGLE_UNITS * (1 - share))
    mark = zlib.crc32(f"{symbol}{day}{offset}".encode()) % (2 * wiggle + 1) - wiggle
    price = (round(level / unit) + mark) * unit
    lower, upper = price_limits(prev_close)
    return min(max(price, lower), upper)


def _record(
    symbol: str, at: datetime, day: date, price: int, qty: int, prev_close: int, hour_class: str
) -> str:
    change = price - prev_close
    unit = tick_size(price)
    fields = [
        symbol,
        at.strftime("%H%M%S"),
        str(price),
        price_sign(price, prev_close),
        str(change),
        f"{change * 100 / prev_close:.2f}",
        *["0"] * 4,  # WGHN_AVRG_STCK_PRC, the day's open, high, low: none before the match
        str(price + unit),
        str(price),
        str(qty),
        str(qty),
        *["0"] * 4,  # ACML_TR_PBMN and the match counts
        "0.00",  # CTTR
        "0",
        "0",
        "",  # CNTG_CLS_CODE
        "0.00",
        "0.00",
        *["000000", "3", "0"] * 3,  # the open's, high's and low's times and changes
        day.strftime("%Y%m%d"),
        "20",
        "N",
        str(qty // 3),
        str(qty // 4),
        str(qty * 2),
        str(qty * 3),
        "0.00",
        "0",
        "0.00",
        hour_class,
        "",
    ]
    assert len(fields) == FIELDS, len(fields)
    return "^".join(fields)
