"""KIS's ETF answers as events: the quote and NAV series (`EtfDaily`), the constituents.

FHPST02400000 (the quote after the close is the session's row), FHPST02440200 (the NAV
series: no high, low or net assets), FHKST03010100 (the daily chart, filling a row's high and
low) and FHKST121600C0 (the constituents, `EtfHoldings`). A NAV of ``0``, ``""`` or ``-`` is
*missing* (not published yet, ref-KRX §1.4), never 0: the row then has no NAV, no premium and
no net assets, and ``nav_final=False`` so that a later row replaces it. KIS's
``etf_ntas_ttam`` unit is UNCONFIRMED (the simulator answers 억 KRW): it is multiplied by
``[etf] net_assets_unit_krw``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import msgspec

from bus.events import EtfDaily, EtfHolding, EtfHoldings, HoldingKind
from observer.kis.schemas import (
    DailyBarRow,
    EtfComponentRow,
    EtfComponentSummary,
    EtfNavDailyRow,
    EtfPriceOutput,
)
from observer.market.etf import premium_pct

__all__ = [
    "from_price",
    "from_series",
    "holdings_of",
    "kind_of",
    "kis_decimal",
    "kis_int",
    "kis_signed_int",
    "with_bars",
]

_MAX_INT = 2**63 - 1  # BIGINT columns
_CASH_PREFIXES = ("KRD", "CASH")  # KRX's PDF: KRD010010001 KRW deposit, CASH00000001 creation


def kis_int(text: str) -> int | None:
    """A KIS number string as an int; ``0``, empty, ``-`` or absurd values are None."""
    try:
        value = int(text.strip().replace(",", ""))
    except ValueError:
        return None
    return value if 0 < value <= _MAX_INT else None


def kis_signed_int(text: str) -> int | None:
    """A KIS signed number string (a short line's negative value); 0 is 0.

    Only empty, ``-``, unreadable or absurd values are None.
    """
    try:
        value = int(text.strip().replace(",", ""))
    except ValueError:
        return None
    return value if abs(value) <= _MAX_INT else None


def kis_decimal(text: str, *, zero_missing: bool = True) -> Decimal | None:
    """A KIS decimal string; empty, ``-``, not finite (and ``0`` when ``zero_missing``) is None."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value) >= 10**12 or (zero_missing and value == 0):
        return None
    return value


def _nav(text: str) -> Decimal | None:
    """A NAV: missing unless a positive number."""
    nav = kis_decimal(text)
    return nav if nav is not None and nav > 0 else None


def from_price(
    symbol: str, day: date, out: EtfPriceOutput, unit_krw: int, origin: str = "kis"
) -> EtfDaily:
    """FHPST02400000's answer as ``day``'s row (the quote after the close is the session's)."""
    close = kis_int(out.stck_prpr)
    nav = _nav(out.nav)
    ntas = kis_int(out.etf_ntas_ttam)
    net_assets = ntas * unit_krw if ntas is not None and ntas * unit_krw <= _MAX_INT else None
    return EtfDaily(
        trade_date=day,
        symbol=symbol,
        close=close,
        open=kis_int(out.stck_oprc),
        high=kis_int(out.stck_hgpr),
        low=kis_int(out.stck_lwpr),
        volume=_volume(out.acml_vol),
        nav=nav,
        premium_pct=kis_decimal(out.dprt, zero_missing=False) if nav is not None else None,
        premium_calc_pct=premium_pct(close, nav),
        net_assets_krw=net_assets if nav is not None else None,
        listed_units=kis_int(out.lstn_stcn),
        circulating_units=kis_int(out.etf_crcl_stcn),
        holdings=kis_int(out.etf_cnfg_issu_cnt),
        tracking_error_rate=kis_decimal(out.trc_errt, zero_missing=False),
        nav_final=nav is not None,
        origin=origin,
    )


def from_series(symbol: str, row: EtfNavDailyRow) -> EtfDaily | None:
    """One FHPST02440200 row (no high, low or net assets); None for an unreadable date."""
    try:
        day = datetime.strptime(row.stck_bsop_date, "%Y%m%d").date()
    except ValueError:
        return None
    close, nav = kis_int(row.stck_clpr), _nav(row.nav)
    return EtfDaily(
        trade_date=day,
        symbol=symbol,
        close=close,
        volume=_volume(row.acml_vol),
        nav=nav,
        premium_pct=kis_decimal(row.dprt, zero_missing=False) if nav is not None else None,
        premium_calc_pct=premium_pct(close, nav),
        nav_final=nav is not None,
        origin="kis_series",
    )


def with_bars(rows: Mapping[date, EtfDaily], bars: Iterable[DailyBarRow]) -> dict[date, EtfDaily]:
    """The rows that lacked a high or low, with the daily chart's (FHKST03010100) filled in.

    Only a bar of the same close is taken (a chart of another day, or a revised price, is
    not mixed into a row); what the row already has is kept.
    """
    changed = {}
    for bar in bars:
        try:
            day = datetime.strptime(bar.stck_bsop_date, "%Y%m%d").date()
        except ValueError:
            continue
        row = rows.get(day)
        if row is None or (row.high is not None and row.low is not None):
            continue
        high, low = kis_int(bar.stck_hgpr), kis_int(bar.stck_lwpr)
        if high is None or low is None or row.close != kis_int(bar.stck_clpr):
            continue
        changed[day] = msgspec.structs.replace(
            row, open=row.open or kis_int(bar.stck_oprc), high=high, low=low
        )
    return changed


def _volume(text: str) -> int | None:
    try:
        value = int(text.strip().replace(",", ""))
    except ValueError:
        return None
    return value if 0 <= value <= _MAX_INT else None


def kind_of(code: str) -> HoldingKind:
    """A line's kind from its code (ref-KRX §1.5): cash, futures (``KR4...``), stock, other.

    Six-character codes are listed issues (stocks, ETFs); of twelve-character ones ``KR7``
    is a listed issue's ISIN and ``KR4`` a derivative's.
    """
    code = code.strip()
    if code.startswith(_CASH_PREFIXES):
        return "cash"
    if len(code) == 12 and code.startswith("KR4"):
        return "futures"
    if (len(code) == 6 and code.isalnum()) or (len(code) == 12 and code.startswith("KR7")):
        return "stock"
    return "other"


def _line(row: EtfComponentRow) -> EtfHolding:
    code = row.stck_shrn_iscd.strip()
    return EtfHolding(
        code=code,
        name=row.hts_kor_isnm.strip(),
        kind=kind_of(code),
        weight_pct=kis_decimal(row.etf_cnfg_issu_rlim, zero_missing=False),
        value_krw=kis_signed_int(row.etf_vltn_amt),  # negative: a short (inverse) line
    )


def holdings_of(
    symbol: str,
    day: date,
    summary: EtfComponentSummary,
    rows: Sequence[EtfComponentRow],
    quote: EtfDaily | None,
) -> EtfHoldings:
    """One ETF's answer as its `EtfHoldings` (``quote``: the day's stored row, if any)."""
    return EtfHoldings(
        trade_date=day,
        symbol=symbol,
        lines=tuple(_line(r) for r in rows if r.stck_shrn_iscd.strip()),
        reported_count=kis_int(summary.etf_cnfg_issu_cnt),
        quote_count=quote.holdings if quote is not None else None,
        pages=1,
    )
