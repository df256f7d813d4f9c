"""ETF daily rows: KRX's table as rows, and the rules that merge and repair a day's row.

KIS's quote and NAV series are read in `observer.kis.etf`. A NAV of ``0`` is *missing* (not
published yet, ref-KRX §1.4), never 0: the row then has no NAV, no premium and no net assets,
and ``nav_final=False`` so that a later row (the repair, a rerun) replaces it.
"""

from __future__ import annotations

from datetime import date

import msgspec

from bus.events import EtfDaily
from observer.krx.schemas import KrxEtfDailyRow, krx_decimal, krx_int, krx_price
from observer.market.etf import premium_pct

__all__ = ["from_krx", "merged", "repaired", "replaces"]


def from_krx(day: date, row: KrxEtfDailyRow) -> EtfDaily:
    """One MDCSTAT04301 row (net assets in KRW; ``0`` before KRX publishes them).

    Prices of ``0`` (the open, high and low of a day without trades) are missing, as
    KIS's are (`observer.kis.etf.kis_int`); a volume of ``0`` is a volume.
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
