"""Pure functions from KIS wire data to bus events (no I/O).

Real-time frames are ``<enc>|<tr_id>|<count>|<payload>`` with ``count`` records of
``^``-separated fields simply concatenated in ``payload``; JSON text frames are control
answers and PINGPONG keep-alives (shared/reference/kis-api.md §5.3-5.5). Every malformed
input raises `KisProtocolError` and nothing else: JSON that does not decode (deeply nested
JSON included), and values the database's columns cannot hold (an integer beyond BIGINT, a
decimal beyond NUMERIC(24,8), a string longer than its VARCHAR or holding a NUL).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import msgspec

from bus.events import OrderBook, PriceSnapshot, TradeTick
from observer.errors import KisProtocolError
from observer.kis.schemas import REALTIME_FIELDS, CurrentPriceOutput

__all__ = [
    "ControlMessage",
    "RealtimeFrame",
    "decode_json",
    "is_data_frame",
    "kst_to_utc_ns",
    "parse_control",
    "parse_frame",
    "parse_order_book",
    "parse_trade",
    "price_snapshot",
]

_KST_OFFSET_S = 9 * 3600  # Korea has no daylight saving time
_NS = 1_000_000_000

# The ranges of the columns the events are stored in (observer.db.models: `kis` may not
# import `db`; tests/test_hostile.py checks every parsed event against the models).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1  # BIGINT
_DECIMAL_LIMIT = Decimal(10) ** 16  # NUMERIC(24, 8): at most 16 digits before the point ...
_DECIMAL_QUANTUM = Decimal("1E-8")  # ... and 8 after it
_SYMBOL_LENGTH = 16  # VARCHAR(16)
_CODE_LENGTH = 8  # side, session: VARCHAR(8)

_T = TypeVar("_T")
# msgspec raises RecursionError on deeply nested input (it walks skipped fields and `Raw`
# values too), however small the input: it is malformed like any other.
_JSON_ERRORS = (msgspec.DecodeError, RecursionError)


def decode_json(data: bytes | str, kind: type[_T], what: str) -> _T:
    """Decode KIS JSON as ``kind``; anything malformed raises `KisProtocolError`.

    Every JSON answer of KIS (tokens, REST envelopes and outputs, WebSocket control frames)
    is decoded here, so that no decoding failure escapes as anything else.
    """
    try:
        return msgspec.json.decode(data, type=kind)
    except _JSON_ERRORS as exc:
        reason = str(exc) if isinstance(exc, msgspec.DecodeError) else "nested too deeply"
        raise KisProtocolError(f"{what}: {reason[:200]}") from None


@dataclass(frozen=True, slots=True)
class RealtimeFrame:
    """A data frame split into records of its TR's known fields (extra trailing fields cut)."""

    tr_id: str
    records: list[list[str]]


class _ControlHeader(msgspec.Struct):
    tr_id: str = ""
    tr_key: str = ""
    encrypt: str = "N"
    datetime: str = ""


class _ControlBody(msgspec.Struct):
    rt_cd: str = ""
    msg_cd: str = ""
    msg1: str = ""


class _Control(msgspec.Struct):
    header: _ControlHeader
    body: _ControlBody | None = None


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A JSON text frame: a subscribe/unsubscribe answer, or a PINGPONG (``body`` absent)."""

    tr_id: str
    tr_key: str
    rt_cd: str
    msg_cd: str
    msg1: str

    @property
    def is_pingpong(self) -> bool:
        """The server's keep-alive, to be echoed back."""
        return self.tr_id == "PINGPONG"


def is_data_frame(text: str) -> bool:
    """True for ``0|...`` (plain) and ``1|...`` (encrypted) frames; JSON otherwise."""
    return text[:2] in ("0|", "1|")


def parse_control(text: str) -> ControlMessage:
    """Parse a JSON control answer or PINGPONG.

    Example: ``{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},
    "body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{...}}}``
    """
    control = decode_json(text, _Control, "bad control message")
    body = control.body or _ControlBody()
    header = control.header
    return ControlMessage(header.tr_id, header.tr_key, body.rt_cd, body.msg_cd, body.msg1.strip())


def parse_frame(text: str) -> RealtimeFrame:
    """Split a plain data frame into records.

    Example: ``0|H0STCNT0|002|005930^093001^73100^...^005930^093001^73200^...`` (46 fields
    per record). A record may carry extra trailing fields (KIS appends fields over time):
    the stride is ``fields / count`` and only the known fields are kept.
    """
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
    fields = payload.split("^")
    stride, rest = divmod(len(fields), count)
    if rest or stride < len(known):
        raise KisProtocolError(
            f"{tr_id}: {len(fields)} fields do not make {count} records of {len(known)}"
        )
    n = len(known)
    return RealtimeFrame(tr_id, [fields[i : i + n] for i in range(0, len(fields), stride)])


@functools.lru_cache(maxsize=64)
def _day_start_utc_s(yyyymmdd: str) -> int:
    day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    return (day.toordinal() - date(1970, 1, 1).toordinal()) * 86400 - _KST_OFFSET_S


def kst_to_utc_ns(yyyymmdd: str, hhmmss: str) -> int:
    """A KST business date and time of day as UTC nanoseconds."""
    digits = yyyymmdd + hhmmss
    if len(yyyymmdd) != 8 or len(hhmmss) != 6 or not (digits.isascii() and digits.isdigit()):
        raise KisProtocolError(f"bad KST time {yyyymmdd[:20]!r} {hhmmss[:20]!r}")
    h, m, s = int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:])
    if h > 23 or m > 59 or s > 59:
        raise KisProtocolError(f"bad KST time {hhmmss!r}")
    try:
        start = _day_start_utc_s(yyyymmdd)
    except ValueError as exc:
        raise KisProtocolError(f"bad KST date {yyyymmdd!r}") from exc
    return _bounded((start + h * 3600 + m * 60 + s) * _NS, f"KST time {yyyymmdd}")


def _bounded(value: int, name: str) -> int:
    """``value`` if a BIGINT column holds it, else `KisProtocolError`."""
    if not _INT_MIN <= value <= _INT_MAX:
        raise KisProtocolError(f"{name} is out of range: {str(value)[:24]}")
    return value


def _int(value: str, name: str) -> int:
    try:
        result = int(value)
    except ValueError:  # not digits, or more digits than int() converts (4,300)
        raise KisProtocolError(f"{name} is not an integer: {value[:20]!r}") from None
    return _bounded(result, name)


def _dec(value: str, name: str) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise KisProtocolError(f"{name} is not a number: {value[:20]!r}") from None
    if not result.is_finite():
        raise KisProtocolError(f"{name} is not finite: {value[:20]!r}")
    if abs(result) >= _DECIMAL_LIMIT or result != result.quantize(_DECIMAL_QUANTUM):
        raise KisProtocolError(f"{name} does not fit NUMERIC(24,8): {value[:20]!r}")
    return result


def _text(value: str, name: str, length: int) -> str:
    """``value`` if its VARCHAR(``length``) column holds it (and PostgreSQL: no NUL)."""
    if len(value) > length or "\x00" in value:
        raise KisProtocolError(f"{name} is not a text of at most {length}: {value[:20]!r}")
    return value


def parse_trade(record: list[str], received_ns: int, account: str = "") -> TradeTick:
    """One H0STCNT0 record as a `TradeTick` (fields by index, see `H0STCNT0_FIELDS`)."""
    return TradeTick(
        symbol=_text(record[0], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=kst_to_utc_ns(record[33], record[1]),
        received_ns=received_ns,
        price=_int(record[2], "STCK_PRPR"),
        qty=_int(record[12], "CNTG_VOL"),
        cum_volume=_int(record[13], "ACML_VOL"),
        cum_value=_int(record[14], "ACML_TR_PBMN"),
        change_rate=_dec(record[5], "PRDY_CTRT"),
        ask1=_int(record[10], "ASKP1"),
        bid1=_int(record[11], "BIDP1"),
        strength=_dec(record[18], "CTTR"),
        side=_text(record[21], "CCLD_DVSN", _CODE_LENGTH),
        session=_text(record[34], "NEW_MKOP_CLS_CODE", _CODE_LENGTH),
        halted=record[35] == "Y",
        account=account,
    )


def parse_order_book(
    record: list[str], trade_date: str, received_ns: int, account: str = ""
) -> OrderBook:
    """One H0STASP0 record as an `OrderBook`.

    The record has a time but no date, so the session's ``trade_date`` (``YYYYMMDD``, KST)
    is given.
    """
    levels = [_int(v, "H0STASP0 level") for v in record[3:43]]
    return OrderBook(
        symbol=_text(record[0], "MKSC_SHRN_ISCD", _SYMBOL_LENGTH),
        exchange_ns=kst_to_utc_ns(trade_date, record[1]),
        received_ns=received_ns,
        ask_prices=tuple(levels[0:10]),
        bid_prices=tuple(levels[10:20]),
        ask_qtys=tuple(levels[20:30]),
        bid_qtys=tuple(levels[30:40]),
        total_ask_qty=_int(record[43], "TOTAL_ASKP_RSQN"),
        total_bid_qty=_int(record[44], "TOTAL_BIDP_RSQN"),
        expected_price=_int(record[47], "ANTC_CNPR"),
        expected_qty=_int(record[48], "ANTC_CNQN"),
        account=account,
    )


_NEGATIVE_SIGNS = frozenset({"4", "5"})  # prdy_vrss_sign: 4 lower limit, 5 down
_UNCHANGED_SIGN = "3"
_EOK = 100_000_000  # hts_avls is in 억 KRW


def _signed(value: Decimal, sign: str) -> Decimal:
    """``value`` with the sign ``prdy_vrss_sign`` gives (whether KIS signs it is unconfirmed)."""
    if sign == _UNCHANGED_SIGN:
        return Decimal(0)
    return -abs(value) if sign in _NEGATIVE_SIGNS else abs(value)


def _optional_int(value: str, name: str) -> int:
    return _int(value, name) if value.strip() else 0


def price_snapshot(
    out: CurrentPriceOutput, symbol: str, market: str, cycle_id: str, observed_ns: int
) -> PriceSnapshot:
    """One FHKST01010100 answer as a Track A `PriceSnapshot`.

    A price of 0 is KIS's answer for a code it does not know, and is refused.
    """
    price = _int(out.stck_prpr, "stck_prpr")
    if price <= 0:
        raise KisProtocolError(f"{symbol}: price {out.stck_prpr!r} (not a listed code?)")
    sign = out.prdy_vrss_sign
    return PriceSnapshot(
        cycle_id=cycle_id,
        symbol=symbol,
        market=market,
        observed_ns=observed_ns,
        price=price,
        change=_bounded(int(_signed(Decimal(_int(out.prdy_vrss, "prdy_vrss")), sign)), "prdy_vrss"),
        change_rate=_signed(_dec(out.prdy_ctrt, "prdy_ctrt"), sign),
        open=_optional_int(out.stck_oprc, "stck_oprc"),
        high=_optional_int(out.stck_hgpr, "stck_hgpr"),
        low=_optional_int(out.stck_lwpr, "stck_lwpr"),
        volume=_optional_int(out.acml_vol, "acml_vol"),
        traded_value=_optional_int(out.acml_tr_pbmn, "acml_tr_pbmn"),
        upper_limit=_optional_int(out.stck_mxpr, "stck_mxpr"),
        lower_limit=_optional_int(out.stck_llam, "stck_llam"),
        base_price=_optional_int(out.stck_sdpr, "stck_sdpr"),
        market_cap=_bounded(_optional_int(out.hts_avls, "hts_avls") * _EOK, "hts_avls"),
        halted=out.temp_stop_yn == "Y",
    )
