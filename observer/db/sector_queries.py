"""The read queries of sector enrichment (`workers.enrich`).

Beside `observer.db.queries`: the overseas stocks of a region with their stored sector,
KIS's code names, the codes seen without a mapping, coverage and the latest runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, select

from observer.db.models import EnrichmentRunRow, Instrument, InstrumentSector, KisSectorCode

__all__ = [
    "Stored",
    "code_counts",
    "code_names",
    "coverage",
    "latest_runs",
    "stocks_with_sectors",
]


@dataclass(frozen=True, slots=True)
class Stored:
    """An overseas stock, and its sector as stored (``origin`` "" when it has none)."""

    market: str
    symbol: str
    exchange: str  # the market code, which is HHDFS76370100's EXCD ("NAS", "HKS", ...)
    region: str
    sector_code: str  # the master file's icod
    origin: str
    gics_sector_code: str
    enriched_ns: int


def stocks_with_sectors(conn: Connection, region: str) -> list[Stored]:
    """Active stocks of ``region`` (ETPs have no sector), with what is stored of each."""
    s = InstrumentSector
    query = (
        select(
            Instrument.market, Instrument.symbol, Instrument.region, Instrument.sector_code,
            func.coalesce(s.origin, ""), func.coalesce(s.gics_sector_code, ""),
            func.coalesce(s.enriched_ns, 0),
        )
        .outerjoin(s, and_(s.market == Instrument.market, s.symbol == Instrument.symbol))
        .where(
            Instrument.region == region, Instrument.active.is_(True),
            Instrument.security_type == "stock",
        )
        .order_by(Instrument.market, Instrument.symbol)
    )  # fmt: skip
    return [
        Stored(market, symbol, market, reg, code, origin, gics, int(ns))
        for market, symbol, reg, code, origin, gics, ns in conn.execute(query)
    ]


def code_names(conn: Connection) -> dict[tuple[str, str], str]:
    """KIS's name of each ``(exchange, icod)`` fetched so far."""
    rows = conn.execute(select(KisSectorCode.exchange, KisSectorCode.icod, KisSectorCode.name))
    return {(exchange, icod): name for exchange, icod, name in rows}


def code_counts(conn: Connection, regions: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """Active stocks per ``(market, icod)`` in ``regions``."""
    query = (
        select(Instrument.market, Instrument.sector_code, func.count())
        .where(
            Instrument.region.in_(regions), Instrument.active.is_(True),
            Instrument.security_type == "stock",
        )
        .group_by(Instrument.market, Instrument.sector_code)
    )  # fmt: skip
    return {(market, code): int(n) for market, code, n in conn.execute(query)}


def coverage(conn: Connection) -> dict[str, dict[str, int]]:
    """Per region, stored sectors by origin (``kis_map``, ``fallback``, ``manual``, ...)."""
    s = InstrumentSector
    query = select(s.region, s.origin, func.count()).group_by(s.region, s.origin)
    found: dict[str, dict[str, int]] = {}
    for region, origin, n in conn.execute(query):
        found.setdefault(region, {})[origin] = int(n)
    return found


def latest_runs(conn: Connection) -> list[dict[str, Any]]:
    """The newest `EnrichmentRun` of each region, as dicts."""
    table = EnrichmentRunRow.__table__
    newest = (
        select(table.c.region, func.max(table.c.produced_ns).label("ns"))
        .group_by(table.c.region)
        .subquery()
    )
    query = (
        select(table)
        .join(newest, and_(table.c.region == newest.c.region, table.c.produced_ns == newest.c.ns))
        .order_by(table.c.region)
    )
    return [
        {k: v for k, v in row._mapping.items() if k not in ("source", "seq")}
        for row in conn.execute(query)
    ]
