"""Typed decoding of KIS real-time data frames: wire text in, `TradeTick` / `OrderBook` out.

A data frame is ``<enc>|<tr_id>|<count>|<payload>``: ``count`` records of ``^``-separated
fields (shared/reference/kis-api.md §5.5-5.7), read by name through index tables built at
import from the field orders in `observer.kis.schemas` (a missing name fails the import). A
malformed frame raises `KisProtocolError`; a malformed record costs that record alone, kept
in `RealtimeEvents.errors` beside the frame's good events. Every event carries the alias of
the account whose session delivered it. `decode_trade` and `decode_order_book` are Track B's
hot path: no per-record work beyond reading and checking the fields.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import TYPE_CHECKING, NamedTuple

from bus.events import OrderBook, TradeTick
from observer.errors import KisProtocolError
from observer.kis.parse import kst_to_utc_ns, read_decimal, read_int, read_text
from observer.kis.schemas import H0STASP0_FIELDS, H0STCNT0_FIELDS, REALTIME_FIELDS

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "H0STASP0",
    "H0STCNT0",
    "MAX_TRAILING",
    "OrderBookFields",
    "RealtimeDecoder",
    "RealtimeEvents",
    "RealtimeFrame",
    "RefusedRecord",
    "TradeFields",
    "decode_order_book",
    "decode_trade",
    "parse_frame",
]

_NS = 1_000_000_000
_KST_OFFSET_S = 9 * 3600  # Korea has no daylight saving time
_EPOCH = date(1970, 1, 1)
_SYMBOL_LENGTH = 16  # VARCHAR(16)
_CODE_LENGTH = 8  # side, session: VARCHAR(8)
_LEVELS = 10  # order-book depth


# --------------------------------------------------------------------------- field indices


@dataclass(frozen=True, slots=True)
class TradeFields:
    """Indices of the H0STCNT0 fields the decoder reads (the instance is `H0STCNT0`)."""

    MKSC_SHRN_ISCD: int
    STCK_CNTG_HOUR: int
    STCK_PRPR: int
    PRDY_CTRT: int
    ASKP1: int
    BIDP1: int
    CNTG_VOL: int
    ACML_VOL: int
    ACML_TR_PBMN: int
    CTTR: int
    CCLD_DVSN: int
    BSOP_DATE: int
    NEW_MKOP_CLS_CODE: int
    TRHT_YN: int


@dataclass(frozen=True, slots=True)
class OrderBookFields:
    """Indices of the H0STASP0 fields the decoder reads (the instance is `H0STASP0`).

    The ten levels of each side follow their first field (``ASKP1`` ... ``ASKP10``).
    """

    MKSC_SHRN_ISCD: int
    BSOP_HOUR: int
    ASKP1: int
    BIDP1: int
    ASKP_RSQN1: int
    BIDP_RSQN1: int
    TOTAL_ASKP_RSQN: int
    TOTAL_BIDP_RSQN: int
    ANTC_CNPR: int
    ANTC_CNQN: int


def _indices(kind: type[DataclassInstance], table: tuple[str, ...]) -> dict[str, int]:
    """Each field of ``kind`` with the position of the same name in ``table``."""
    where = {name: i for i, name in enumerate(table)}
    return {f.name: where[f.name] for f in fields(kind)}


# Slotted instances, not class attributes: an instance's slot is read faster (CPython 3.11).
H0STCNT0 = TradeFields(**_indices(TradeFields, H0STCNT0_FIELDS))
H0STASP0 = OrderBookFields(**_indices(OrderBookFields, H0STASP0_FIELDS))


def _level_block(prefix: str, first: int) -> tuple[slice, tuple[str, ...]]:
    """The slice of ``{prefix}1`` ... ``{prefix}10``, checked to be consecutive, and the names."""
    names = tuple(f"{prefix}{level}" for level in range(1, _LEVELS + 1))
    if H0STASP0_FIELDS[first : first + _LEVELS] != names:
        raise RuntimeError(f"H0STASP0_FIELDS: {prefix}1..{_LEVELS} are not consecutive")
    return slice(first, first + _LEVELS), names


_ASK_PRICES = _level_block("ASKP", H0STASP0.ASKP1)
_BID_PRICES = _level_block("BIDP", H0STASP0.BIDP1)
_ASK_QTYS = _level_block("ASKP_RSQN", H0STASP0.ASKP_RSQN1)
_BID_QTYS = _level_block("BIDP_RSQN", H0STASP0.BIDP_RSQN1)


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class RealtimeFrame:
    """A data frame split into records of its TR's known fields (extra trailing fields cut)."""

    tr_id: str
    records: list[list[str]]


def parse_frame(text: str) -> RealtimeFrame:
    """Split a plain data frame into records.

    Example: ``0|H0STCNT0|002|005930^093001^73100^...^005930^093001^73200^...`` (46 fields
    per record). The record width is ``fields / count`` and must be the known fields (as
    python-kis has it), or at most `MAX_TRAILING` more: KIS appends a few fields over time,
    and only the known ones are kept. A count that does not match its records is refused
    whole, never sliced (but for a count whose fields divide within that tolerance, which no
    reading can tell from appended fields).
    """
    return RealtimeFrame(*_split(text))


# Fields KIS may append to a record over time, beyond those `schemas` knows. A small bound,
# so that the count is checked: a wide one lets a count one short of its records pass, the
# records beyond it cut as trailing fields.
MAX_TRAILING = 8


def _split(text: str) -> tuple[str, list[list[str]]]:
    """`parse_frame` without the frame object (the decoder's hot path)."""
    parts = text.split("|", 3)
    if len(parts) != 4:
        raise KisProtocolError(f"not a data frame: {text[:40]!r}")
    enc, tr_id, count_text, payload = parts
    if enc != "0":
        raise KisProtocolError(f"{tr_id}: encrypted frames are not market data")
    known = REALTIME_FIELDS.get(tr_id)
    if known is None:
        raise KisProtocolError(f"unknown real-time tr_id {tr_id[:20]!r}")
    if not (0 < len(count_text) <= 4 and count_text.isascii() and count_text.isdigit()) or (
        int(count_text) < 1
    ):
        raise KisProtocolError(f"{tr_id}: bad record count {count_text[:10]!r}")
    count = int(count_text)
    values = payload.split("^")
    n, total = len(known), len(values)
    stride, rest = divmod(total, count)
    if rest or not n <= stride <= n + MAX_TRAILING:
        raise KisProtocolError(
            f"{tr_id}: {total} fields do not make {count} records of {n} (or of up to"
            f" {MAX_TRAILING} more fields each): the record count does not match its records"
        )
    # A wrong count whose fields still divide within the tolerance (24 records of 46 under
    # count 23: 23 of 48) cannot be told from KIS appending fields, which it does: refusing
    # it would drop every valid frame of such counts once KIS adds two fields. Its misaligned
    # records fail their own checks (a time, a price) one by one instead.
    return tr_id, [values[i : i + n] for i in range(0, total, stride)]


# --------------------------------------------------------------------------- records

# The ticks of one second share their date and time: the conversion is remembered (a hit
# costs a tenth of it; a refusal is not remembered, so hostile input only churns the cache).
_exchange_ns: Callable[[str, str], int] = functools.lru_cache(maxsize=512)(kst_to_utc_ns)


def decode_trade(record: Sequence[str], received_ns: int, account: str = "") -> TradeTick:
    """One H0STCNT0 record (its fields in `H0STCNT0_FIELDS` order) as a `TradeTick`."""
    return TradeTick(
        symbol=read_text(record[H0STCNT0.MKSC_SHRN_ISCD], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=_exchange_ns(record[H0STCNT0.BSOP_DATE], record[H0STCNT0.STCK_CNTG_HOUR]),
        received_ns=received_ns,
        price=read_int(record[H0STCNT0.STCK_PRPR], "STCK_PRPR"),
        qty=read_int(record[H0STCNT0.CNTG_VOL], "CNTG_VOL"),
        cum_volume=read_int(record[H0STCNT0.ACML_VOL], "ACML_VOL"),
        cum_value=read_int(record[H0STCNT0.ACML_TR_PBMN], "ACML_TR_PBMN"),
        change_rate=read_decimal(record[H0STCNT0.PRDY_CTRT], "PRDY_CTRT"),
        ask1=read_int(record[H0STCNT0.ASKP1], "ASKP1"),
        bid1=read_int(record[H0STCNT0.BIDP1], "BIDP1"),
        strength=read_decimal(record[H0STCNT0.CTTR], "CTTR"),
        side=read_text(record[H0STCNT0.CCLD_DVSN], "CCLD_DVSN", _CODE_LENGTH),
        session=read_text(record[H0STCNT0.NEW_MKOP_CLS_CODE], "NEW_MKOP_CLS_CODE", _CODE_LENGTH),
        halted=record[H0STCNT0.TRHT_YN] == "Y",
        account=account,
    )


def _levels(record: Sequence[str], block: tuple[slice, tuple[str, ...]]) -> tuple[int, ...]:
    """Ten levels of one side; a bad value is named (``ASKP3``) on the error path only."""
    where, names = block
    try:
        return tuple([read_int(value, "H0STASP0 level") for value in record[where]])
    except KisProtocolError:
        for value, name in zip(record[where], names, strict=True):
            read_int(value, name)  # raises, naming the field
        raise


def decode_order_book(
    record: Sequence[str], trade_date: str, received_ns: int, account: str = ""
) -> OrderBook:
    """One H0STASP0 record (its fields in `H0STASP0_FIELDS` order) as an `OrderBook`.

    The record has a time but no date: ``trade_date`` (``YYYYMMDD``, KST) dates it.
    """
    return OrderBook(
        symbol=read_text(record[H0STASP0.MKSC_SHRN_ISCD], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=_exchange_ns(trade_date, record[H0STASP0.BSOP_HOUR]),
        received_ns=received_ns,
        ask_prices=_levels(record, _ASK_PRICES),
        bid_prices=_levels(record, _BID_PRICES),
        ask_qtys=_levels(record, _ASK_QTYS),
        bid_qtys=_levels(record, _BID_QTYS),
        total_ask_qty=read_int(record[H0STASP0.TOTAL_ASKP_RSQN], "TOTAL_ASKP_RSQN"),
        total_bid_qty=read_int(record[H0STASP0.TOTAL_BIDP_RSQN], "TOTAL_BIDP_RSQN"),
        expected_price=read_int(record[H0STASP0.ANTC_CNPR], "ANTC_CNPR"),
        expected_qty=read_int(record[H0STASP0.ANTC_CNQN], "ANTC_CNQN"),
        account=account,
    )


# --------------------------------------------------------------------------- the decoder


class RefusedRecord(NamedTuple):
    """A record the decoder refused: why, and what could still be read of it."""

    error: KisProtocolError
    symbol: str = ""  # its code as sent, if it reads as one
    exchange_ns: int = 0  # a trade's stamp (UTC ns), if its date and time read; else 0

    @classmethod
    def of_trade(cls, error: KisProtocolError, record: Sequence[str]) -> RefusedRecord:
        """An H0STCNT0 record refused for ``error``: its symbol and stamp, where they read."""
        try:
            stamp = _exchange_ns(record[H0STCNT0.BSOP_DATE], record[H0STCNT0.STCK_CNTG_HOUR])
        except KisProtocolError:
            stamp = 0
        return cls(error, _symbol_of(record[H0STCNT0.MKSC_SHRN_ISCD]), stamp)

    @classmethod
    def of_book(cls, error: KisProtocolError, record: Sequence[str]) -> RefusedRecord:
        """An H0STASP0 record refused for ``error``: its symbol, if it reads."""
        return cls(error, _symbol_of(record[H0STASP0.MKSC_SHRN_ISCD]))


def _symbol_of(text: str) -> str:
    """``text`` if it can be a symbol's code (ASCII letters and digits that fit), else ""."""
    fits = 0 < len(text) <= _SYMBOL_LENGTH and text.isascii() and text.isalnum()
    return text if fits else ""


class RealtimeEvents(NamedTuple):
    """The events one data frame brought, the records refused (one each), and its text.

    A result rather than an error callback: the decoder keeps no consumer state, and a
    consumer sees all a frame brought in one value. A named tuple: made for every frame, and
    a frozen dataclass costs several times more.
    """

    tr_id: str
    ticks: Sequence[TradeTick] = ()
    books: Sequence[OrderBook] = ()
    errors: Sequence[RefusedRecord] = ()
    text: str = ""  # as received: what a consumer refusing a record keeps of it


class RealtimeDecoder:
    """Data frames of one account's session as typed events (each `KisStream` owns one)."""

    def __init__(self, account: str = "") -> None:
        self.account = account
        self._day = -1  # the KST day number (since 1970-01-01) of `_date`
        self._date = ""

    def __repr__(self) -> str:
        return f"<RealtimeDecoder account={self.account!r}>"

    def decode(self, text: str, received_ns: int) -> RealtimeEvents:
        """The events of one data frame received at ``received_ns`` (UTC ns).

        A record with a value its column cannot hold (an integer beyond BIGINT, a decimal
        beyond NUMERIC(24,8), a text beyond its VARCHAR or holding a NUL, a bad date or
        time) is in ``errors`` as a `RefusedRecord`.

        Raises
        ------
        KisProtocolError
            The frame itself is malformed.
        """
        tr_id, records = _split(text)
        account = self.account
        errors: list[RefusedRecord] = []
        if tr_id == "H0STCNT0":
            ticks: list[TradeTick] = []
            for record in records:
                try:
                    ticks.append(decode_trade(record, received_ns, account))
                except KisProtocolError as exc:
                    errors.append(RefusedRecord.of_trade(exc, record))
            return RealtimeEvents(tr_id, ticks=ticks, errors=errors, text=text)
        if tr_id == "H0STASP0":
            day = self.trade_date(received_ns)
            books: list[OrderBook] = []
            for record in records:
                try:
                    books.append(decode_order_book(record, day, received_ns, account))
                except KisProtocolError as exc:
                    errors.append(RefusedRecord.of_book(exc, record))
            return RealtimeEvents(tr_id, books=books, errors=errors, text=text)
        raise KisProtocolError(f"{tr_id}: no decoder")  # a TR added to REALTIME_FIELDS only

    def trade_date(self, received_ns: int) -> str:
        """The KST calendar day (``YYYYMMDD``) of ``received_ns``, which dates order books.

        An order book has a time but no date; KRX trades within one KST day.
        """
        day = (received_ns // _NS + _KST_OFFSET_S) // 86_400
        if day != self._day:
            self._day, self._date = day, (_EPOCH + timedelta(days=day)).strftime("%Y%m%d")
        return self._date
