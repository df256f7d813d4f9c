"""The portal's ETF screens as it spells them, and pure parsers of its number formats.

Facts from shared/reference/krx-etf-and-metadata.md §1.3-1.5: every value is a string;
numbers are comma-grouped (``188,600,000``), a lone ``-`` or an empty string means "not
available" (never 0); dates are ``YYYY/MM/DD``; short codes are alphanumeric (``0120J0``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

import msgspec

__all__ = [
    "ETF_DAILY_BLD",
    "ETF_DAILY_KEYS",
    "ETF_LIST_BLD",
    "ETF_LIST_KEYS",
    "KrxEtfDailyRow",
    "KrxEtfRow",
    "is_short_code",
    "krx_date",
    "krx_decimal",
    "krx_int",
    "krx_price",
    "missing_keys",
    "tracking_multiple",
]

ETF_LIST_BLD = "dbms/MDC/STAT/standard/MDCSTAT04601"  # screen 13104, every listed ETF
ETF_DAILY_BLD = "dbms/MDC/STAT/standard/MDCSTAT04301"  # screen 13101, every ETF on trdDd


class KrxEtfRow(msgspec.Struct, frozen=True):
    """MDCSTAT04601 ``output`` row: one listed ETF's static facts.

    Trimmed real row: ``{"ISU_CD": "KR7069500007", "ISU_SRT_CD": "069500", "ISU_ABBRV":
    "KODEX 200", "LIST_DD": "2002/10/14", "IDX_CALC_INST_NM2": "일반", "LIST_SHRS":
    "188,600,000", "COM_ABBRV": "삼성자산운용", "ETF_TOT_FEE": "0.150000"}``.
    """

    ISU_SRT_CD: str  # the ticker; alphanumeric, never an int
    ISU_CD: str = ""  # ISIN
    ISU_NM: str = ""
    ISU_ABBRV: str = ""
    ISU_ENG_NM: str = ""
    LIST_DD: str = ""
    ETF_OBJ_IDX_NM: str = ""  # underlying index
    IDX_CALC_INST_NM1: str = ""  # index provider
    IDX_CALC_INST_NM2: str = ""  # tracking multiple (일반 / 2X 레버리지 / 1X 인버스 / ...)
    ETF_REPLICA_METHD_TP_CD: str = ""  # replication method, a label
    IDX_MKT_CLSS_NM: str = ""
    IDX_ASST_CLSS_NM: str = ""
    LIST_SHRS: str = ""
    COM_ABBRV: str = ""  # asset manager
    CU_QTY: str = ""
    ETF_TOT_FEE: str = ""  # % a year, 6 decimals
    TAX_TP_CD: str = ""


# Every key of the list's rows: one missing (renamed by a site update) would read as "" for
# every ETF, an empty fee and manager "changed" for all of them; the answer is refused.
ETF_LIST_KEYS = KrxEtfRow.__struct_fields__


class KrxEtfDailyRow(msgspec.Struct, frozen=True):
    """MDCSTAT04301 ``output`` row: one ETF's day (prices, NAV, net assets in KRW).

    ``INVSTASST_NETASST_TOTAMT`` is ``0`` for the newest day until KRX publishes it (§1.4).
    """

    ISU_SRT_CD: str
    ISU_CD: str = ""
    SECUGRP_ID: str = ""
    ISU_ABBRV: str = ""
    TDD_CLSPRC: str = ""
    NAV: str = ""
    TDD_OPNPRC: str = ""
    TDD_HGPRC: str = ""
    TDD_LWPRC: str = ""
    ACC_TRDVOL: str = ""
    ACC_TRDVAL: str = ""
    MKTCAP: str = ""
    INVSTASST_NETASST_TOTAMT: str = ""
    LIST_SHRS: str = ""
    IDX_IND_NM: str = ""


# The daily table's keys the rows are read from (`workers.etf.rows.from_krx`).
ETF_DAILY_KEYS = (
    "ISU_SRT_CD", "TDD_CLSPRC", "NAV", "TDD_OPNPRC", "TDD_HGPRC", "TDD_LWPRC", "ACC_TRDVOL",
    "INVSTASST_NETASST_TOTAMT", "LIST_SHRS",
)  # fmt: skip

_SHORT_CODE = re.compile(r"[0-9A-Z]{6}")


def is_short_code(code: str) -> bool:
    """Whether ``code`` is a KRX short code: six digits or capitals (``069500``, ``0120J0``)."""
    return _SHORT_CODE.fullmatch(code.strip()) is not None


def missing_keys(rows: Sequence[Mapping[str, object]], keys: Iterable[str]) -> dict[str, int]:
    """Each of ``keys`` absent from some of ``rows`` -> how many rows lack it."""
    missing = {key: sum(key not in row for row in rows) for key in keys}
    return {key: n for key, n in missing.items() if n}


def _bare(text: str) -> str | None:
    text = text.strip().replace(",", "")
    return None if text in ("", "-") else text


def krx_int(text: str) -> int | None:
    """``"188,600,000"`` -> 188600000; ``"-"``, ``""`` or anything else not a number -> None."""
    bare = _bare(text)
    if bare is None or not re.fullmatch(r"-?\d+", bare):
        return None
    return int(bare)


def krx_price(text: str) -> int | None:
    """A price: as `krx_int`, but one not positive is None too.

    KRX prints ``0`` for the open, high and low (MDCSTAT04301) of a day without trades: no
    price, never a price of 0 (a 52-week low of 0). Volumes and values keep their ``0``.
    """
    value = krx_int(text)
    return value if value is not None and value > 0 else None


def krx_decimal(text: str) -> Decimal | None:
    """``"43,079.14"`` -> Decimal; ``"-"``, ``""`` or not a finite number -> None."""
    bare = _bare(text)
    if bare is None:
        return None
    try:
        value = Decimal(bare)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def krx_date(text: str) -> date | None:
    """``"2002/10/14"`` (or ``20021014``) -> a date; anything else -> None."""
    digits = text.strip().replace("/", "").replace("-", "")
    if not re.fullmatch(r"\d{8}", digits):
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


_MULTIPLE = re.compile(r"(\d+(?:\.\d+)?)\s*[Xx]")


def tracking_multiple(label: str) -> Decimal | None:
    """``IDX_CALC_INST_NM2`` as a signed multiple: 일반 1, 2X 레버리지 2, 1X 인버스 -1, ...

    Labels seen: ``일반`` (977 of 1,066 in 2026-01), ``2X 레버리지``, ``1X 인버스``,
    ``2X 인버스``; older pages add the number, ``일반 (1)``. An inverse without a number is
    -1. None for a label that says neither, so a new kind is noticed instead of read as 1.
    """
    text = label.strip()
    found = _MULTIPLE.search(text)
    size = Decimal(found.group(1)) if found else None
    if "인버스" in text:
        return -(size or Decimal(1))
    if "레버리지" in text:
        return size
    if text.startswith("일반"):
        return Decimal(1)
    return None
