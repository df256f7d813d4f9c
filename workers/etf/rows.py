"""ETF daily rows from each source, as pure functions: KIS's quote, KIS's NAV series, KRX's table.

A NAV of ``0``, ``""`` or ``-`` is *missing* (not published yet, ref-KRX §1.4), never 0: the
row then has no NAV, no premium and no net assets, and ``nav_final=False`` so that a later
row (the repair, a rerun) replaces it. KIS's ``etf_ntas_ttam`` unit is UNCONFIRMED (the
simulator answers 억 KRW): it is multiplied by ``[etf] net_assets_unit_krw``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import msgspec

from bus.events import EtfDaily
from observer.kis.schemas import DailyBarRow, EtfNavDailyRow, EtfPriceOutput
from observer.krx.schemas import KrxEtfDailyRow, krx_decimal, krx_int, krx_price
from workers.etf.metrics import premium_pct

__all__ = [
    "from_krx",
    "from_price",
    "from_series",
    "kis_decimal",
    "kis_int",
    "kis_signed_int",
    "merged",
    "repaired",
    "replaces",
    "with_bars",
]

_MAX_INT = 2**63 - 1  # BIGINT columns


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


def from_krx(day: date, row: KrxEtfDailyRow) -> EtfDaily:
    """One MDCSTAT04301 row (net assets in KRW; ``0`` before KRX publishes them).

    Prices of ``0`` (the open, high and low of a day without trades) are missing, as
    KIS's are (`kis_int`); a volume of ``0`` is a volume.
    """
    close, nav = krx_price(row.TDD_CLSPRC), krx_decimal(row.NAV)
    nav = nav if nav is not None and nav > 0 else None
    net_assets = krx_int(row.INVSTASST_NETASST_TOTAMT)
    return EtfDaily(
        trade_date=day,
        symbol=row.ISU_SRT_CD.strip(),
        close=close,
        open=krx_price(row.TDD_OPNPRC),
        high=krx_price(row.TDD_HGPRC),
        low=krx_price(row.TDD_LWPRC),
        volume=krx_int(row.ACC_TRDVOL),
        nav=nav,
        premium_calc_pct=premium_pct(close, nav),
        net_assets_krw=net_assets if net_assets and nav is not None else None,
        listed_units=krx_int(row.LIST_SHRS),
        nav_final=nav is not None,
        origin="krx",
    )


def merged(kis: EtfDaily, krx: EtfDaily | None) -> EtfDaily:
    """KIS's row with what it lacks taken from KRX's (the same session's, same close)."""
    if (
        krx is None
        or krx.close is None
        or (krx.trade_date, krx.close) != (kis.trade_date, kis.close)
    ):
        return kis
    fill = {
        name: getattr(krx, name)
        for name in ("open", "high", "low", "volume", "nav", "net_assets_krw", "listed_units")
        if getattr(kis, name) is None and getattr(krx, name) is not None
    }
    if (fill.get("nav") or kis.nav) is None:
        fill.pop("net_assets_krw", None)  # net assets without a NAV are not published yet
    if not fill:
        return kis
    row = msgspec.structs.replace(kis, **fill)
    if "nav" in fill:
        row = msgspec.structs.replace(
            row, premium_calc_pct=premium_pct(row.close, row.nav), nav_final=True
        )
    return row


def repaired(stored: EtfDaily | None, fresh: EtfDaily) -> EtfDaily:
    """The stored row with the fresh NAV, premium and net assets (keeping what only KIS has).

    A stored close other than the fresh one (a row stored mid-session, a corrected print)
    takes the fresh close, open, high, low and volume as well: the stored ones, and KIS's
    premium against that close, are another moment's. Of the same close, a high, low or
    open the stored row lacks (a series row's) is taken from the fresh one.
    """
    if stored is None:
        return fresh
    if fresh.close is not None and fresh.close != stored.close:
        stored = msgspec.structs.replace(
            stored,
            close=fresh.close,
            open=fresh.open,
            high=fresh.high,
            low=fresh.low,
            volume=fresh.volume,
            premium_pct=None,
        )
    return msgspec.structs.replace(
        stored,
        open=stored.open if stored.open is not None else fresh.open,
        high=stored.high if stored.high is not None else fresh.high,
        low=stored.low if stored.low is not None else fresh.low,
        nav=fresh.nav,
        premium_calc_pct=fresh.premium_calc_pct,
        premium_pct=stored.premium_pct if fresh.premium_pct is None else fresh.premium_pct,
        net_assets_krw=fresh.net_assets_krw or stored.net_assets_krw,
        nav_final=True,
        origin=fresh.origin,
    )


def replaces(fresh: EtfDaily, stored: EtfDaily | None) -> bool:
    """Whether ``fresh`` may replace ``stored``, the same day's row: never a final NAV by none.

    The rule `observer.db.etf_queries.etf_history` reads the rows by; a run does not send
    a row the read would pass over (a same-day rerun before the NAV is out, or whose KRX
    table failed).
    """
    return stored is None or fresh.nav_final or not stored.nav_final


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
