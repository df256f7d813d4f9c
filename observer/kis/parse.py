"""Pure functions from KIS wire data to values and bus events (no I/O).

JSON text frames are control answers and PINGPONG keep-alives (kis-api.md §5.3-5.5); REST answers
become events here too; `observer.kis.realtime` decodes the ``^`` data frames with this module's
value readers. Every malformed input raises `KisProtocolError` and nothing else: JSON that does
not decode (deeply nested included), and values the database cannot hold (beyond BIGINT or
NUMERIC(24,8), a string longer than its VARCHAR or holding a NUL).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import msgspec

from bus.events import PriceSnapshot, TradingSession, Venue
from observer.errors import KisProtocolError, KisServerError
from observer.kis.schemas import CurrentPriceOutput
from observer.kis.settings import HaltFrom

__all__ = [
    "HALTED_STATUS",
    "KEY_REFUSALS",
    "SESSION_REFUSALS",
    "ControlMessage",
    "decode_answer",
    "decode_json",
    "is_data_frame",
    "is_halted",
    "kst_to_utc_ns",
    "parse_control",
    "price_snapshot",
    "read_decimal",
    "read_int",
    "read_text",
]

_KST_OFFSET_S = 9 * 3600  # Korea has no daylight saving time
_NS = 1_000_000_000

# The ranges of the columns the events are stored in (observer.db.models: `kis` may not
# import `db`; tests/kis/test_parsers_storable.py checks every parsed event against the models).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1  # BIGINT
_DECIMAL_LIMIT = Decimal(10) ** 16  # NUMERIC(24, 8): at most 16 digits before the point ...
_DECIMAL_QUANTUM = Decimal("1E-8")  # ... and 8 after it

# iscd_stat_cls_code of a halted symbol: 거래정지 in KIS's workbook
HALTED_STATUS = "58"

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


def decode_answer(data: bytes, status: int, kind: type[_T], tr_id: str, what: str = "") -> _T:
    """`decode_json` of an HTTP answer (REST, tokens): KIS's JSON, or the gateway's failure.

    An answer that is not the JSON expected is a `KisProtocolError`, except with a status of
    500 or more: then it is a gateway's error page (an HTML 502/503 from a proxy), a
    retryable `KisServerError`, as a 5xx with KIS's own JSON is.
    """
    try:
        return decode_json(data, kind, what or tr_id)
    except KisProtocolError:
        if status < 500:
            raise
        raise KisServerError(f"HTTP{status}", "no KIS envelope", tr_id, status) from None


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


# Answers to a registration that fault the session, not the symbol: another session holds
# the app key (OPSP8996), the approval key or app key is invalid or missing (OPSP0010, 0011,
# 8994, 8995, 9993, ...), or KIS cannot read the message (8997, 8998, 9990-9999). Every
# registration of the session would get the same: the session ends and is opened again
# (backoff, budget), the symbols are not refused.
SESSION_REFUSALS = frozenset(
    {"OPSP0010", "OPSP0011", "OPSP8994", "OPSP8995", "OPSP8996", "OPSP8997", "OPSP8998"}
    | {f"OPSP{n}" for n in range(9990, 10000)}
)
# The session refusals that say the approval key itself is not (or no longer) valid: a new
# key may help, so the stream renews the one it presented, once (`observer.kis.approval`).
# OPSP0010 "invalid appkey", OPSP0011 "invalid approval(appkey) : NOT FOUND" and OPSP9994
# (INVALID appkey in the third-party code tables). Not OPSP9993 (JSON parsing error in those
# tables: the message, not the key), nor 8994/8995 (personalseckey / appsecret *not found*:
# a message without the field, which no new key mends), nor 8996 (the key is valid and in use).
KEY_REFUSALS = frozenset({"OPSP0010", "OPSP0011", "OPSP9994"})


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


def read_int(value: str, name: str) -> int:
    """``value`` as an integer a BIGINT column holds, else `KisProtocolError` naming ``name``."""
    try:
        result = int(value)
    except ValueError:  # not digits, or more digits than int() converts (4,300)
        raise KisProtocolError(f"{name} is not an integer: {value[:20]!r}") from None
    return _bounded(result, name)


def read_decimal(value: str, name: str) -> Decimal:
    """``value`` as a finite decimal NUMERIC(24,8) holds, else `KisProtocolError`."""
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise KisProtocolError(f"{name} is not a number: {value[:20]!r}") from None
    if not result.is_finite():
        raise KisProtocolError(f"{name} is not finite: {value[:20]!r}")
    if abs(result) >= _DECIMAL_LIMIT or result != result.quantize(_DECIMAL_QUANTUM):
        raise KisProtocolError(f"{name} does not fit NUMERIC(24,8): {value[:20]!r}")
    return result


def read_text(value: str, name: str, length: int) -> str:
    """``value`` if its VARCHAR(``length``) column holds it (and PostgreSQL: no NUL)."""
    if len(value) > length or "\x00" in value:
        raise KisProtocolError(f"{name} is not a text of at most {length}: {value[:20]!r}")
    return value


_NEGATIVE_SIGNS = frozenset({"4", "5"})  # prdy_vrss_sign: 4 lower limit, 5 down
_UNCHANGED_SIGN = "3"
_EOK = 100_000_000  # hts_avls is in 억 KRW


def _signed(value: Decimal, sign: str) -> Decimal:
    """``value`` with the sign ``prdy_vrss_sign`` gives (whether KIS signs it is unconfirmed)."""
    if sign == _UNCHANGED_SIGN:
        return Decimal(0)
    return -abs(value) if sign in _NEGATIVE_SIGNS else abs(value)


def _optional_int(value: str, name: str) -> int:
    return read_int(value, name) if value.strip() else 0


def price_snapshot(
    out: CurrentPriceOutput,
    symbol: str,
    market: str,
    cycle_id: str,
    observed_ns: int,
    *,
    halt_from: HaltFrom = "both",
    venue: Venue = "KRX",
    trading_session: TradingSession = "",
) -> PriceSnapshot:
    """One FHKST01010100 answer as a Track A `PriceSnapshot` of ``venue`` (FID J or NX).

    A price of 0 is KIS's answer for a code it does not know, and is refused. ``halted`` is
    read from ``halt_from`` (`is_halted`); ``trading_session`` is the venue's at
    ``observed_ns``.
    """
    price = read_int(out.stck_prpr, "stck_prpr")
    if price <= 0:
        raise KisProtocolError(f"{symbol}: price {out.stck_prpr!r} (not a listed code?)")
    sign = out.prdy_vrss_sign
    return PriceSnapshot(
        cycle_id=cycle_id,
        symbol=symbol,
        market=market,
        observed_ns=observed_ns,
        price=price,
        change=_bounded(
            int(_signed(Decimal(read_int(out.prdy_vrss, "prdy_vrss")), sign)), "prdy_vrss"
        ),
        change_rate=_signed(read_decimal(out.prdy_ctrt, "prdy_ctrt"), sign),
        open=_optional_int(out.stck_oprc, "stck_oprc"),
        high=_optional_int(out.stck_hgpr, "stck_hgpr"),
        low=_optional_int(out.stck_lwpr, "stck_lwpr"),
        volume=_optional_int(out.acml_vol, "acml_vol"),
        traded_value=_optional_int(out.acml_tr_pbmn, "acml_tr_pbmn"),
        upper_limit=_optional_int(out.stck_mxpr, "stck_mxpr"),
        lower_limit=_optional_int(out.stck_llam, "stck_llam"),
        base_price=_optional_int(out.stck_sdpr, "stck_sdpr"),
        market_cap=_bounded(_optional_int(out.hts_avls, "hts_avls") * _EOK, "hts_avls"),
        halted=is_halted(out, halt_from),
        venue=venue,
        trading_session=trading_session,
    )


def is_halted(out: CurrentPriceOutput, halt_from: HaltFrom = "both") -> bool:
    """Whether an FHKST01010100 answer says trading in its symbol is halted.

    ``"temp_stop_yn"``: the flag is "Y"; ``"iscd_stat_cls_code"``: the status is 58
    (거래정지); ``"both"``: either of them (which one KIS fills for a long suspension is
    UNCONFIRMED).
    """
    flag = out.temp_stop_yn == "Y"
    status = out.iscd_stat_cls_code == HALTED_STATUS
    if halt_from == "temp_stop_yn":
        return flag
    if halt_from == "iscd_stat_cls_code":
        return status
    return flag or status
