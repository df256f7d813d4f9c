"""Typed decoding of KIS real-time data frames: wire text in, typed events out.

Trades (`TradeTick`), books (`OrderBook`), market-operation records (`MarketStatus`),
program trading (`ProgramTrade`), auctions' expected matches (`AuctionExpected`),
volatility interruptions (`ViNotice`) and brokers' trading (`BrokerTrade`).

A data frame is ``<enc>|<tr_id>|<count>|<payload>``: ``count`` records of ``^``-separated
fields (shared/reference/kis-api.md §5.5-5.7). Trades and books come from three TRs each, one
per venue (`TRADE_TRS`, `BOOK_TRS`): KRX's, Nextrade's, and the combined feed, whose records
name no venue ("combined"); each event carries its TR's venue. Each frame's layout is chosen
by its record width (fields / count) among those `observer.kis.schemas.REALTIME_LAYOUTS`
knows for its TR; its records are read by name through index tables built at import from
each layout's field order (a missing name fails the import). A width no layout has is
`KisLayoutUnknown`, the frame refused whole; another malformed frame raises
`KisProtocolError`; a malformed record costs that record alone, kept in
`RealtimeEvents.errors` beside the frame's good events. Every event carries the alias of the
account whose session delivered it. `decode_trade` and `decode_order_book` are Track B's hot
path: no per-record work beyond reading and checking the fields; the market-operation and
program-trading records, expected matches and VIs (`STATUS_TRS`, `PROGRAM_TRS`,
`EXPECTED_TRS`, `VI_TRS`), a few a minute, are read by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypeVar

from bus.events import (
    AuctionExpected,
    BrokerRank,
    BrokerTrade,
    MarketStatus,
    OrderBook,
    ProgramTrade,
    TradeTick,
    Venue,
    ViNotice,
)
from observer.calendar.venues import SessionOf, no_session, session_by_code
from observer.errors import KisLayoutUnknown, KisProtocolError
from observer.kis.feeds import TR_IDS, FeedKind, kind_of, venue_of
from observer.kis.parse import kst_to_utc_ns, read_decimal, read_int, read_text
from observer.kis.schemas import REALTIME_LAYOUTS, Layout

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "BOOK_READERS",
    "BOOK_TRS",
    "EXPECTED_TRS",
    "H0STASP0",
    "H0STCNT0",
    "KEYED_DECODERS",
    "PROGRAM_TRS",
    "STATUS_TRS",
    "TRADE_READERS",
    "TRADE_TRS",
    "VI_TRS",
    "VI_TR_IDS",
    "BookReader",
    "KeyedDecoder",
    "KeyedRecord",
    "OrderBookFields",
    "RealtimeDecoder",
    "RealtimeEvents",
    "RealtimeFrame",
    "RefusedRecord",
    "TradeFields",
    "decode_auction_expected",
    "decode_broker_trade",
    "decode_market_status",
    "decode_order_book",
    "decode_program_trade",
    "decode_trade",
    "decode_vi_notice",
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
    MARKET_CLS_CODE: int  # _ABSENT in layouts without it


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
    MID_PRC: int  # _ABSENT in layouts without the mid-point
    MIDP_TOTAL_RSQN: int
    MIDP_CLS_CODE: int
    MARKET_CLS_CODE: int


_ABSENT = -1  # the index of a field the layout does not have
# Fields only some layouts have; every other field must be in each layout of its TR.
_OPTIONAL = frozenset({"MARKET_CLS_CODE", "MID_PRC", "MIDP_TOTAL_RSQN", "MIDP_CLS_CODE"})

# Each kind's TR per venue, views of `observer.kis.feeds.TR_IDS` (the combined feed's records
# name no venue; its market-operation records no symbol, so it has no status feed here).
TRADE_TRS = TR_IDS["trades"]
BOOK_TRS = TR_IDS["book"]
STATUS_TRS = TR_IDS["status"]
PROGRAM_TRS = TR_IDS["program"]
EXPECTED_TRS = TR_IDS["auction"]
VI_TRS = TR_IDS["vi"]
# A field a TR names otherwise than H0STCNT0 / H0STASP0: Nextrade's and the combined trades
# call 체결구분 CNTG_CLS_CODE; a Nextrade book's own mid-point is its NMID_* (the combined
# book has one per venue, KMID_* and NMID_*, and so no mid-point of its own: None).
_NAMED: dict[str, dict[str, str]] = {
    "H0NXCNT0": {"CCLD_DVSN": "CNTG_CLS_CODE"},
    "H0UNCNT0": {"CCLD_DVSN": "CNTG_CLS_CODE"},
    "H0NXASP0": {
        "MID_PRC": "NMID_PRC",
        "MIDP_TOTAL_RSQN": "NMID_TOTAL_RSQN",
        "MIDP_CLS_CODE": "NMID_CLS_CODE",
    },
}


def _indices(
    kind: type[DataclassInstance], table: tuple[str, ...], named: dict[str, str]
) -> dict[str, int]:
    """Each field of ``kind`` with the position of its name in ``table`` (or of ``named``'s)."""
    where = {name: i for i, name in enumerate(table)}
    out = {}
    for f in fields(kind):
        name = named.get(f.name, f.name)
        out[f.name] = where.get(name, _ABSENT) if f.name in _OPTIONAL else where[name]
    return out


def _level_block(table: tuple[str, ...], prefix: str, first: int) -> tuple[slice, tuple[str, ...]]:
    """The slice of ``{prefix}1`` ... ``{prefix}10``, checked to be consecutive, and the names."""
    names = tuple(f"{prefix}{level}" for level in range(1, _LEVELS + 1))
    if table[first : first + _LEVELS] != names:
        raise RuntimeError(f"H0STASP0 layout: {prefix}1..{_LEVELS} are not consecutive")
    return slice(first, first + _LEVELS), names


@dataclass(frozen=True, slots=True)
class BookReader:
    """One order-book layout's indices and the slices of its four ten-level blocks."""

    at: OrderBookFields
    ask_prices: tuple[slice, tuple[str, ...]]
    bid_prices: tuple[slice, tuple[str, ...]]
    ask_qtys: tuple[slice, tuple[str, ...]]
    bid_qtys: tuple[slice, tuple[str, ...]]

    @classmethod
    def of(cls, table: tuple[str, ...], named: dict[str, str] | None = None) -> BookReader:
        """The reader of the layout whose field names are ``table`` (``named``: `_NAMED`)."""
        at = OrderBookFields(**_indices(OrderBookFields, table, named or {}))
        return cls(
            at,
            _level_block(table, "ASKP", at.ASKP1),
            _level_block(table, "BIDP", at.BIDP1),
            _level_block(table, "ASKP_RSQN", at.ASKP_RSQN1),
            _level_block(table, "BIDP_RSQN", at.BIDP_RSQN1),
        )


# Slotted instances, not class attributes: an instance's slot is read faster (CPython 3.11).
# TR -> record width -> the indices of that layout.
TRADE_READERS: Mapping[str, Mapping[int, TradeFields]] = {
    tr_id: {
        width: TradeFields(**_indices(TradeFields, layout.fields, _NAMED.get(tr_id, {})))
        for width, layout in REALTIME_LAYOUTS[tr_id].items()
    }
    for tr_id in TRADE_TRS.values()
}
BOOK_READERS: Mapping[str, Mapping[int, BookReader]] = {
    tr_id: {
        width: BookReader.of(layout.fields, _NAMED.get(tr_id))
        for width, layout in REALTIME_LAYOUTS[tr_id].items()
    }
    for tr_id in BOOK_TRS.values()
}
# KRX's oldest layouts' indices (the defaults of `decode_trade` and `decode_order_book`).
H0STCNT0 = TRADE_READERS["H0STCNT0"][46]
_BOOK = BOOK_READERS["H0STASP0"][59]
H0STASP0 = _BOOK.at


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class RealtimeFrame:
    """A data frame split into records of the layout its record width names."""

    tr_id: str
    records: list[list[str]]
    layout: Layout


def parse_frame(text: str) -> RealtimeFrame:
    """Split a plain data frame into records, of the layout their width names.

    Example: ``0|H0STCNT0|002|005930^093001^73100^...^005930^093001^73200^...`` (46 fields
    per record: the 2026-05 layout). The record width is ``fields / count`` and must be the
    width of one of the TR's known layouts (`REALTIME_LAYOUTS`); otherwise the frame is
    refused whole with `KisLayoutUnknown`, never sliced.
    """
    tr_id, width, records = _split(text)
    return RealtimeFrame(tr_id, records, REALTIME_LAYOUTS[tr_id][width])


def _split(text: str) -> tuple[str, int, list[list[str]]]:
    """`parse_frame` without the frame object (the decoder's hot path): the record width."""
    parts = text.split("|", 3)
    if len(parts) != 4:
        raise KisProtocolError(f"not a data frame: {text[:40]!r}")
    enc, tr_id, count_text, payload = parts
    if enc != "0":
        raise KisProtocolError(f"{tr_id}: encrypted frames are not market data")
    layouts = REALTIME_LAYOUTS.get(tr_id)
    if layouts is None:
        raise KisProtocolError(f"unknown real-time tr_id {tr_id[:20]!r}")
    if not (0 < len(count_text) <= 4 and count_text.isascii() and count_text.isdigit()) or (
        int(count_text) < 1
    ):
        raise KisProtocolError(f"{tr_id}: bad record count {count_text[:10]!r}")
    count = int(count_text)
    values = payload.split("^")
    total = len(values)
    width, rest = divmod(total, count)
    if rest or width not in layouts:
        # A count that does not match its records reads as a width no layout has (46 fields
        # under count 2: 23): refused whole too, never sliced at a guessed width.
        raise KisLayoutUnknown(tr_id, None if rest else width, total, count)
    return tr_id, width, [values[i : i + width] for i in range(0, total, width)]


# --------------------------------------------------------------------------- records


# The ticks of one second share their date and time: the conversion is remembered (a hit
# costs a tenth of it; a refusal is not remembered, so hostile input only churns the cache).
_exchange_ns: Callable[[str, str], int] = functools.lru_cache(maxsize=512)(kst_to_utc_ns)


def decode_trade(
    record: Sequence[str],
    received_ns: int,
    account: str = "",
    at: TradeFields = H0STCNT0,
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> TradeTick:
    """One trade record of the layout ``at`` indexes (H0STCNT0's oldest by default).

    Of ``venue`` (its TR's), in the session its MARKET_CLS_CODE names (`session_by_code`), or
    where it names none the one ``session_of`` gives its stamp there ("" by default).
    ``market_session`` is None where the layout has no MARKET_CLS_CODE or it came empty.
    """
    exchange_ns = _exchange_ns(record[at.BSOP_DATE], record[at.STCK_CNTG_HOUR])
    # No call where the layout has no such field (the hot path of the older layout).
    code = (
        None
        if at.MARKET_CLS_CODE == _ABSENT
        else _optional_code(record, at.MARKET_CLS_CODE, "MARKET_CLS_CODE")
    )
    clock = session_of(venue, exchange_ns)
    return TradeTick(
        symbol=read_text(record[at.MKSC_SHRN_ISCD], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=exchange_ns,
        received_ns=received_ns,
        price=read_int(record[at.STCK_PRPR], "STCK_PRPR"),
        qty=read_int(record[at.CNTG_VOL], "CNTG_VOL"),
        cum_volume=read_int(record[at.ACML_VOL], "ACML_VOL"),
        cum_value=read_int(record[at.ACML_TR_PBMN], "ACML_TR_PBMN"),
        change_rate=read_decimal(record[at.PRDY_CTRT], "PRDY_CTRT"),
        ask1=read_int(record[at.ASKP1], "ASKP1"),
        bid1=read_int(record[at.BIDP1], "BIDP1"),
        strength=read_decimal(record[at.CTTR], "CTTR"),
        side=read_text(record[at.CCLD_DVSN], "CCLD_DVSN", _CODE_LENGTH),
        session=read_text(record[at.NEW_MKOP_CLS_CODE], "NEW_MKOP_CLS_CODE", _CODE_LENGTH),
        halted=record[at.TRHT_YN] == "Y",
        account=account,
        market_session=code,
        venue=venue,
        trading_session=clock if code is None else session_by_code(code, clock)[0],
    )


def _optional_code(record: Sequence[str], where: int, name: str) -> str | None:
    """A code only some layouts have: None where absent or empty."""
    if where == _ABSENT or not record[where]:
        return None
    return read_text(record[where], name, _CODE_LENGTH)


def _optional_int(record: Sequence[str], where: int, name: str) -> int | None:
    if where == _ABSENT or not record[where]:
        return None
    return read_int(record[where], name)


def _optional_decimal(record: Sequence[str], where: int, name: str) -> Decimal | None:
    if where == _ABSENT or not record[where]:
        return None
    return read_decimal(record[where], name)


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
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    account: str = "",
    reader: BookReader = _BOOK,
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> OrderBook:
    """One book record of the layout ``reader`` reads (H0STASP0's oldest by default).

    The record has a time but no date: ``trade_date`` (``YYYYMMDD``, KST) dates it. Of
    ``venue``, in the session its MARKET_CLS_CODE names, else the one ``session_of`` gives.
    The mid-point and session fields are None where the layout has none (the combined book's:
    one mid-point per venue, not its own) or they came empty.
    """
    at = reader.at
    exchange_ns = _exchange_ns(trade_date, record[at.BSOP_HOUR])
    code = _optional_code(record, at.MARKET_CLS_CODE, "MARKET_CLS_CODE")
    clock = session_of(venue, exchange_ns)
    return OrderBook(
        symbol=read_text(record[at.MKSC_SHRN_ISCD], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=exchange_ns,
        received_ns=received_ns,
        ask_prices=_levels(record, reader.ask_prices),
        bid_prices=_levels(record, reader.bid_prices),
        ask_qtys=_levels(record, reader.ask_qtys),
        bid_qtys=_levels(record, reader.bid_qtys),
        total_ask_qty=read_int(record[at.TOTAL_ASKP_RSQN], "TOTAL_ASKP_RSQN"),
        total_bid_qty=read_int(record[at.TOTAL_BIDP_RSQN], "TOTAL_BIDP_RSQN"),
        expected_price=read_int(record[at.ANTC_CNPR], "ANTC_CNPR"),
        expected_qty=read_int(record[at.ANTC_CNQN], "ANTC_CNQN"),
        account=account,
        mid_price=_optional_decimal(record, at.MID_PRC, "MID_PRC"),
        mid_qty=_optional_int(record, at.MIDP_TOTAL_RSQN, "MIDP_TOTAL_RSQN"),
        mid_side=_optional_code(record, at.MIDP_CLS_CODE, "MIDP_CLS_CODE"),
        market_session=code,
        venue=venue,
        trading_session=clock if code is None else session_by_code(code, clock)[0],
    )


_REASON_LENGTH = 200  # TR_SUSP_REAS_CNTT: VARCHAR(200)
_BROKER_LENGTH = 8  # a broker's member number: VARCHAR(8)
_NAME_LENGTH = 64  # a broker's name: VARCHAR(64)
# Each side's fields of its five brokers, by rank (H0STMBC0's prefixes): number, name,
# English name, quantity, change, share, foreign.
_BROKER_SIDES: tuple[tuple[Literal["sell", "buy"], tuple[str, ...]], ...] = (
    ("sell", ("SELN_MBCR_NO", "SELN2_MBCR_NAME", "SELN2_MBCR_ENG_NAME", "TOTAL_SELN_QTY",
              "SELN_QTY_ICDC", "SELN_MBCR_RLIM", "SELN_MBCR_GLOB_YN_")),
    ("buy", ("SHNU_MBCR_NO", "BYOV_MBCR_NAME", "BYOV_MBCR_ENG_NAME", "TOTAL_SHNU_QTY",
             "SHNU_QTY_ICDC", "SHNU_MBCR_RLIM", "SHNU_MBCR_GLOB_YN_")),
)  # fmt: skip
VI_TR_IDS = frozenset(VI_TRS.values())


def decode_market_status(
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    where: Mapping[str, int],
    account: str = "",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> MarketStatus:
    """One market-operation record, its fields at ``where`` (the layout's positions).

    KIS's ``(null)`` for an empty halt reason reads as "". Stamped at its receipt (its
    record has no time): ``trade_date`` is not read.
    """

    def code(name: str) -> str:
        return read_text(record[where[name]], name, _CODE_LENGTH)

    reason = record[where["TR_SUSP_REAS_CNTT"]]
    exchange = where.get("EXCH_CLS_CODE", _ABSENT)
    return MarketStatus(
        symbol=read_text(record[where["MKSC_SHRN_ISCD"]], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        received_ns=received_ns,
        halted=record[where["TRHT_YN"]] == "Y",
        halt_reason=""
        if reason == "(null)"
        else read_text(reason, "TR_SUSP_REAS_CNTT", _REASON_LENGTH),
        operation=code("MKOP_CLS_CODE"),
        expected_operation=code("ANTC_MKOP_CLS_CODE"),
        extension=code("MRKT_TRTM_CLS_CODE"),
        allocation=code("DIVI_APP_CLS_CODE"),
        status=code("ISCD_STAT_CLS_CODE"),
        vi=code("VI_CLS_CODE"),
        overtime_vi=code("OVTM_VI_CLS_CODE"),
        exchange=_optional_code(record, exchange, "EXCH_CLS_CODE"),
        account=account,
        venue=venue,
        trading_session=session_of(venue, received_ns),
    )


def decode_program_trade(
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    where: Mapping[str, int],
    account: str = "",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> ProgramTrade:
    """One program-trading record; its time of day is dated ``trade_date`` (KST)."""

    def number(name: str) -> int:
        return read_int(record[where[name]], name)

    exchange_ns = _exchange_ns(trade_date, record[where["STCK_CNTG_HOUR"]])
    return ProgramTrade(
        symbol=read_text(record[where["MKSC_SHRN_ISCD"]], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=exchange_ns,
        received_ns=received_ns,
        sell_qty=number("SELN_CNQN"),
        sell_value=number("SELN_TR_PBMN"),
        buy_qty=number("SHNU_CNQN"),
        buy_value=number("SHNU_TR_PBMN"),
        net_qty=number("NTBY_CNQN"),
        net_value=number("NTBY_TR_PBMN"),
        ask_residual=number("SELN_RSQN"),
        bid_residual=number("SHNU_RSQN"),
        net_residual=number("WHOL_NTBY_QTY"),
        account=account,
        venue=venue,
        trading_session=session_of(venue, exchange_ns),
    )


def decode_auction_expected(
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    where: Mapping[str, int],
    account: str = "",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> AuctionExpected:
    """One expected-match record; its time of day is dated ``trade_date`` (KST)."""

    def number(name: str) -> int:
        return read_int(record[where[name]], name)

    exchange_ns = _exchange_ns(trade_date, record[where["STCK_CNTG_HOUR"]])
    return AuctionExpected(
        symbol=read_text(record[where["MKSC_SHRN_ISCD"]], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=exchange_ns,
        received_ns=received_ns,
        price=number("STCK_PRPR"),
        change=number("PRDY_VRSS"),
        volume=number("CNTG_VOL"),
        cumulative_volume=number("ACML_VOL"),
        ask_price=number("ASKP1"),
        bid_price=number("BIDP1"),
        ask_qty=number("ASKP_RSQN1"),
        bid_qty=number("BIDP_RSQN1"),
        total_ask_qty=number("TOTAL_ASKP_RSQN"),
        total_bid_qty=number("TOTAL_BIDP_RSQN"),
        hour_class=read_text(record[where["HOUR_CLS_CODE"]], "HOUR_CLS_CODE", _CODE_LENGTH),
        halted=record[where["TRHT_YN"]] == "Y",
        account=account,
        venue=venue,
        trading_session=session_of(venue, exchange_ns),
    )


def decode_vi_notice(
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    where: Mapping[str, int],
    account: str = "",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> ViNotice:
    """One VI record, its fields at ``where``: dated by its own BSOP_DATE, not ``trade_date``.

    An hour sent empty or all zeros (a VI not lifted yet) reads as 0.
    """
    day = record[where["BSOP_DATE"]]

    def number(name: str) -> int:
        return read_int(record[where[name]], name)

    def decimal(name: str) -> Decimal:
        return read_decimal(record[where[name]], name)

    def stamp(name: str) -> int:
        hour = record[where[name]]
        return _exchange_ns(day, hour) if hour.strip("0") else 0

    exchange = where.get("EXCH_CLS_CODE", _ABSENT)
    return ViNotice(
        symbol=read_text(record[where["MKSC_SHRN_ISCD"]], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        trade_date=_exchange_date(day),
        received_ns=received_ns,
        applies=record[where["VI_CLS_CODE"]] == "Y",
        started_ns=stamp("CNTG_VI_HOUR"),
        ended_ns=stamp("VI_CNCL_HOUR"),
        kind=read_text(record[where["VI_KIND_CODE"]], "VI_KIND_CODE", _CODE_LENGTH),
        market_class=read_text(
            record[where["MRKT_DIV_CLS_CODE"]], "MRKT_DIV_CLS_CODE", _CODE_LENGTH
        ),
        price=number("VI_PRC"),
        static_base=number("VI_STND_PRC"),
        static_move_pct=decimal("VI_DPRT"),
        dynamic_base=number("VI_DMC_STND_PRC"),
        dynamic_move_pct=decimal("VI_DMC_DPRT"),
        count=number("VI_COUNT"),
        etp=record[where["ETP_YN"]] == "Y",
        exchange=_optional_code(record, exchange, "EXCH_CLS_CODE"),
        account=account,
        venue=venue,
        trading_session=session_of(venue, received_ns),
    )


def decode_broker_trade(
    record: Sequence[str],
    trade_date: str,
    received_ns: int,
    where: Mapping[str, int],
    account: str = "",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> BrokerTrade:
    """One brokers' trading record (H0STMBC0 and its venues'), stamped at its receipt.

    The record has no time (so ``trade_date`` is not read). A rank whose member number is
    sent empty or zeros (fewer than five brokers have traded) is left out. Its 78 fields
    (`observer.kis.schemas.H0STMBC0_FIELDS`; KIS's samples name them and give no record):
    the symbol, the five sellers' and buyers' names, quantities, foreign flags, numbers,
    shares and changes, the foreign brokers' seven totals, then the ten English names.
    """

    def number(name: str) -> int:
        return read_int(record[where[name]], name)

    def rate(name: str) -> Decimal:
        return read_decimal(record[where[name]], name)

    ranks: list[BrokerRank] = []
    for side, (no, name, name_en, qty, change, share, foreign) in _BROKER_SIDES:
        for rank in range(1, 6):
            broker = record[where[f"{no}{rank}"]].strip()
            if not broker.strip("0"):  # no broker ranked there (sent empty, or zeros)
                continue
            ranks.append(
                BrokerRank(
                    side=side,
                    rank=rank,
                    broker=read_text(broker, f"{no}{rank}", _BROKER_LENGTH),
                    name=read_text(record[where[f"{name}{rank}"]], name, _NAME_LENGTH),
                    name_en=read_text(record[where[f"{name_en}{rank}"]], name_en, _NAME_LENGTH),
                    qty=number(f"{qty}{rank}"),
                    qty_change=number(f"{change}{rank}"),
                    share_pct=rate(f"{share}{rank}"),
                    foreign_broker=record[where[f"{foreign}{rank}"]] == "Y",
                )
            )
    return BrokerTrade(
        symbol=read_text(record[where["MKSC_SHRN_ISCD"]], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        received_ns=received_ns,
        ranks=tuple(ranks),
        foreign_sell_qty=number("GLOB_TOTAL_SELN_QTY"),
        foreign_buy_qty=number("GLOB_TOTAL_SHNU_QTY"),
        foreign_sell_change=number("GLOB_TOTAL_SELN_QTY_ICDC"),
        foreign_buy_change=number("GLOB_TOTAL_SHNU_QTY_ICDC"),
        foreign_net_qty=number("GLOB_NTBY_QTY"),
        foreign_sell_share_pct=rate("GLOB_SELN_RLIM"),
        foreign_buy_share_pct=rate("GLOB_SHNU_RLIM"),
        account=account,
        venue=venue,
        trading_session=session_of(venue, received_ns),
    )


def _exchange_date(text: str) -> date:
    """A ``YYYYMMDD`` date as sent; `KisProtocolError` naming BSOP_DATE if it is none."""
    if not (len(text) == 8 and text.isascii() and text.isdigit()):
        raise KisProtocolError(f"BSOP_DATE: not a date: {text[:20]!r}")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise KisProtocolError(f"BSOP_DATE: not a date: {text!r}") from exc


# Records keyed by what their registration holds (a symbol; a VI feed's, a business date),
# a few a symbol a minute, read by name.
KeyedRecord = MarketStatus | ProgramTrade | AuctionExpected | ViNotice | BrokerTrade


_Keyed = TypeVar("_Keyed", bound=KeyedRecord)


class KeyedDecoder(Protocol):
    """Reads one keyed record of a layout whose positions by name are ``where``."""

    def __call__(
        self,
        record: Sequence[str],
        trade_date: str,
        received_ns: int,
        where: Mapping[str, int],
        account: str,
        session_of: SessionOf,
        venue: Venue,
    ) -> KeyedRecord:
        """The record's event; `KisProtocolError` for a field its column cannot hold."""
        ...


# Each keyed kind's decoder: a kind's TRs (one per venue, `observer.kis.feeds.TR_IDS`) share it.
_KEYED_BY_KIND: dict[FeedKind, KeyedDecoder] = {
    "status": decode_market_status,
    "program": decode_program_trade,
    "auction": decode_auction_expected,
    "vi": decode_vi_notice,
    "brokers": decode_broker_trade,
}
KEYED_DECODERS: Mapping[str, KeyedDecoder] = {
    tr_id: decoder for kind, decoder in _KEYED_BY_KIND.items() for tr_id in TR_IDS[kind].values()
}
# Their layouts' positions by name, by TR and record width.
_POSITIONS: Mapping[str, Mapping[int, Mapping[str, int]]] = {
    tr_id: {
        width: {name: i for i, name in enumerate(layout.fields)}
        for width, layout in REALTIME_LAYOUTS[tr_id].items()
    }
    for tr_id in KEYED_DECODERS
}


# --------------------------------------------------------------------------- the decoder


class RefusedRecord(NamedTuple):
    """A record the decoder refused: why, and what could still be read of it."""

    error: KisProtocolError
    symbol: str = ""  # its code as sent, if it reads as one
    exchange_ns: int = 0  # a trade's stamp (UTC ns), if its date and time read; else 0

    @classmethod
    def of_trade(
        cls, error: KisProtocolError, record: Sequence[str], at: TradeFields = H0STCNT0
    ) -> RefusedRecord:
        """A trade record refused for ``error``: its symbol and stamp, where they read."""
        try:
            stamp = _exchange_ns(record[at.BSOP_DATE], record[at.STCK_CNTG_HOUR])
        except KisProtocolError:
            stamp = 0
        return cls(error, _symbol_of(record[at.MKSC_SHRN_ISCD]), stamp)

    @classmethod
    def of_book(
        cls, error: KisProtocolError, record: Sequence[str], at: OrderBookFields = H0STASP0
    ) -> RefusedRecord:
        """A book record refused for ``error``: its symbol, if it reads."""
        return cls(error, _symbol_of(record[at.MKSC_SHRN_ISCD]))


def _symbol_of(text: str) -> str:
    """``text`` if it can be a symbol's code (ASCII letters and digits that fit), else ""."""
    fits = 0 < len(text) <= _SYMBOL_LENGTH and text.isascii() and text.isalnum()
    return text if fits else ""


class RealtimeEvents(NamedTuple):
    """The events one data frame brought, the records refused (one each), and its text.

    A result rather than an error callback: the decoder keeps no consumer state, and a
    consumer sees all a frame brought in one value. A named tuple: made for every frame, and
    a frozen dataclass costs several times more. One frame is of one feed, so it holds
    trades, books or keyed records (``records``: market status, program trading, expected
    matches, VIs, brokers' trading), one of them.
    """

    tr_id: str  # KIS's name of the feed, kept as the provenance of what is refused
    ticks: Sequence[TradeTick] = ()
    books: Sequence[OrderBook] = ()
    errors: Sequence[RefusedRecord] = ()
    records: Sequence[KeyedRecord] = ()
    text: str = ""  # as received: what a consumer refusing a record keeps of it

    def _of(self, kind: type[_Keyed]) -> list[_Keyed]:
        return [r for r in self.records if isinstance(r, kind)]

    @property
    def statuses(self) -> list[MarketStatus]:
        """The market-operation records among ``records``."""
        return self._of(MarketStatus)

    @property
    def programs(self) -> list[ProgramTrade]:
        """The program-trading records among ``records``."""
        return self._of(ProgramTrade)

    @property
    def expected(self) -> list[AuctionExpected]:
        """The expected matches among ``records``."""
        return self._of(AuctionExpected)

    @property
    def vis(self) -> list[ViNotice]:
        """The VIs among ``records``."""
        return self._of(ViNotice)

    @property
    def brokers(self) -> list[BrokerTrade]:
        """The brokers' trading records among ``records``."""
        return self._of(BrokerTrade)

    @property
    def kind(self) -> FeedKind:
        """The kind of feed the frame came on (`observer.kis.feeds`)."""
        return kind_of(self.tr_id)

    @property
    def venue(self) -> Venue:
        """The venue of the feed the frame came on ("combined" for the combined feed)."""
        return venue_of(self.tr_id)


class RealtimeDecoder:
    """Data frames of one account's session as typed events (each `KisStream` owns one)."""

    def __init__(self, account: str = "", session_of: SessionOf = no_session) -> None:
        self.account = account
        self.session_of = session_of  # each record's session on its venue, by its stamp
        self._day = -1  # the KST day number (since 1970-01-01) of `_date`
        self._date = ""

    def __repr__(self) -> str:
        return f"<RealtimeDecoder account={self.account!r}>"

    def decode(self, text: str, received_ns: int) -> RealtimeEvents:
        """The events of one data frame received at ``received_ns`` (UTC ns), in its layout.

        A record with a value its column cannot hold (an integer beyond BIGINT, a decimal
        beyond NUMERIC(24,8), a text beyond its VARCHAR or holding a NUL, a bad date or
        time) is in ``errors`` as a `RefusedRecord`.

        Raises
        ------
        KisLayoutUnknown
            The frame's record width is none its TR's known layouts have (refused whole).
        KisProtocolError
            The frame itself is otherwise malformed.
        """
        tr_id, width, records = _split(text)
        account, session_of = self.account, self.session_of
        errors: list[RefusedRecord] = []
        if (trades := TRADE_READERS.get(tr_id)) is not None:
            at, venue = trades[width], venue_of(tr_id)
            ticks: list[TradeTick] = []
            for record in records:
                try:
                    ticks.append(decode_trade(record, received_ns, account, at, session_of, venue))
                except KisProtocolError as exc:
                    errors.append(RefusedRecord.of_trade(exc, record, at))
            return RealtimeEvents(tr_id, ticks=ticks, errors=errors, text=text)
        if (books_of := BOOK_READERS.get(tr_id)) is not None:
            reader, venue = books_of[width], venue_of(tr_id)
            day = self.trade_date(received_ns)
            books: list[OrderBook] = []
            for record in records:
                try:
                    books.append(
                        decode_order_book(
                            record, day, received_ns, account, reader, session_of, venue
                        )
                    )
                except KisProtocolError as exc:
                    errors.append(RefusedRecord.of_book(exc, record, reader.at))
            return RealtimeEvents(tr_id, books=books, errors=errors, text=text)
        if (decoder := KEYED_DECODERS.get(tr_id)) is not None:
            where = _POSITIONS[tr_id][width]
            venue, day = venue_of(tr_id), self.trade_date(received_ns)
            keyed: list[KeyedRecord] = []
            for record in records:
                try:
                    keyed.append(
                        decoder(record, day, received_ns, where, account, session_of, venue)
                    )
                except KisProtocolError as exc:
                    errors.append(RefusedRecord(exc, _symbol_of(record[where["MKSC_SHRN_ISCD"]])))
            return RealtimeEvents(tr_id, errors=errors, records=keyed, text=text)
        raise KisProtocolError(f"{tr_id}: no decoder")  # a TR added to REALTIME_LAYOUTS only

    def trade_date(self, received_ns: int) -> str:
        """The KST calendar day (``YYYYMMDD``) of ``received_ns``, which dates order books.

        An order book has a time but no date; each venue trades within one KST day.
        """
        day = (received_ns // _NS + _KST_OFFSET_S) // 86_400
        if day != self._day:
            self._day, self._date = day, (_EPOCH + timedelta(days=day)).strftime("%Y%m%d")
        return self._date
