"""The ETF jobs' read queries (a part of `observer.db.queries`): the list, the daily rows.

``etf_daily`` and ``etf_details`` are append-only; the newest row per (symbol, day) wins (a
NAV published late, a revision repaired by the weekly job), so every read here keeps the
newest by ``(produced_ns, seq)``. One exception: a daily row without a final NAV never
replaces one with it (a same-day rerun before the NAV is out, or whose KRX table failed,
would otherwise take the day's NAV away).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from bus.events import EtfDaily, EtfDetail, EtfHolding, EtfHoldings, EtfListing
from observer.db.models import (
    Etf,
    EtfDailyRow,
    EtfDetailRow,
    EtfHoldingRow,
    EtfHoldingsRow,
    Instrument,
)

__all__ = [
    "etf_details_of",
    "etf_history",
    "etf_holdings_of",
    "held_etfs",
    "kis_etf_symbols",
]

_LISTING_FIELDS = tuple(f for f in EtfListing.__struct_fields__ if f in Etf.__table__.columns)
_DAILY_FIELDS = EtfDaily.__struct_fields__
_DETAIL_FIELDS = EtfDetail.__struct_fields__


def held_etfs(conn: Connection) -> dict[str, EtfListing]:
    """The active KRX list as stored (symbol -> listing), what a new list is diffed against."""
    columns = [getattr(Etf, f) for f in _LISTING_FIELDS]
    rows = conn.execute(select(*columns).where(Etf.active.is_(True))).all()
    return {
        row.symbol: EtfListing(change="new", **dict(zip(_LISTING_FIELDS, row, strict=True)))
        for row in rows
    }


def kis_etf_symbols(conn: Connection) -> set[str]:
    """Active ETFs of the KIS masters (group ``EF``), to hold the KRX list against."""
    query = select(Instrument.symbol).where(
        Instrument.security_type == "etf", Instrument.active.is_(True)
    )
    return set(conn.execute(query).scalars())


def _newest(
    rows: Any, struct: type[Any], fields: tuple[str, ...], final: str = ""
) -> dict[tuple[str, date], Any]:
    """Rows ordered oldest first, folded to the newest per (symbol, trade_date).

    ``final``: a boolean field; a row without it never replaces one with it.
    """
    newest: dict[tuple[str, date], Any] = {}
    for row in rows:
        values = dict(zip(fields, row, strict=True))
        key = (values["symbol"], values["trade_date"])
        held = newest.get(key)
        if final and held is not None and getattr(held, final) and not values[final]:
            continue
        newest[key] = msgspec.convert(values, struct, from_attributes=False, strict=False)
    return newest


def etf_history(conn: Connection, since: date, until: date) -> dict[str, dict[date, EtfDaily]]:
    """Each ETF's stored sessions in ``[since, until]`` (symbol -> day -> newest row).

    The newest row with a final NAV, when the day has one (see the module docstring).
    """
    d = EtfDailyRow
    query = (
        select(*(getattr(d, f) for f in _DAILY_FIELDS))
        .where(d.trade_date >= since, d.trade_date <= until)
        .order_by(d.produced_ns, d.seq)
    )
    history: dict[str, dict[date, EtfDaily]] = {}
    for (symbol, day), row in _newest(
        conn.execute(query), EtfDaily, _DAILY_FIELDS, "nav_final"
    ).items():
        history.setdefault(symbol, {})[day] = row
    return history


def etf_details_of(conn: Connection, day: date) -> dict[str, EtfDetail]:
    """The newest `EtfDetail` of each ETF for ``day``."""
    d = EtfDetailRow
    query = (
        select(*(getattr(d, f) for f in _DETAIL_FIELDS))
        .where(d.trade_date == day)
        .order_by(d.produced_ns, d.seq)
    )
    newest = _newest(conn.execute(query), EtfDetail, _DETAIL_FIELDS)
    return {symbol: row for (symbol, _day), row in newest.items()}


def etf_holdings_of(conn: Connection, symbol: str, until: date) -> EtfHoldings | None:
    """``symbol``'s newest constituents on or before ``until`` (None: none stored)."""
    h = EtfHoldingsRow
    head = conn.execute(
        select(h.source, h.seq, h.trade_date, h.reported_count, h.quote_count, h.pages)
        .where(h.symbol == symbol, h.trade_date <= until)
        .order_by(h.trade_date.desc(), h.produced_ns.desc(), h.seq.desc())
        .limit(1)
    ).first()
    if head is None:
        return None
    x = EtfHoldingRow
    lines = conn.execute(
        select(x.code, x.name, x.kind, x.weight_pct, x.value_krw)
        .where(x.source == head.source, x.seq == head.seq)
        .order_by(x.idx)
    )
    return EtfHoldings(
        trade_date=head.trade_date,
        symbol=symbol,
        lines=tuple(
            EtfHolding(
                code=r.code,
                name=r.name,
                kind=r.kind,
                weight_pct=r.weight_pct,
                value_krw=r.value_krw,
            )
            for r in lines
        ),
        reported_count=head.reported_count,
        quote_count=head.quote_count,
        pages=head.pages,
    )
