"""The read queries of sector enrichment (`workers.enrich`).

Beside `observer.db.queries`: the stocks of a region with their stored sector, KIS's code
names, the codes seen without a mapping, coverage (now or at a past run's end), the runs
(the latest, or a day's) and the sectors a run changed (from the ``sector_metadata``
history).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, and_, func, or_, select

from observer.db.models import (
    EnrichmentRunRow,
    Instrument,
    InstrumentSector,
    KisSectorCode,
    SectorMetadataRow,
)
from observer.reference.sector_map import normalise_icod

__all__ = [
    "SectorChange",
    "Stored",
    "changes",
    "code_counts",
    "code_names",
    "coverage",
    "coverage_at",
    "latest_runs",
    "previous_run_ns",
    "region_coverage",
    "runs_between",
    "stocks_with_sectors",
]


@dataclass(frozen=True, slots=True)
class Stored:
    """A stock, and its sector as stored (``origin`` "" when it has none).

    The fields after ``kospi200_sector`` are the stored classification itself: a run that
    finds nothing better records its check by publishing it again (`workers.enrich.run`).
    """

    market: str
    symbol: str
    exchange: str  # the market code: HHDFS76370100's EXCD ("NAS", "HKS", ...) or "KOSPI"
    region: str
    sector_code: str  # the master file's icod (KR: the 대분류 code)
    origin: str
    gics_sector_code: str
    enriched_ns: int
    industry_code: str = ""  # KR: the 중분류 code
    kospi200_sector: str = ""  # KR: the KOSPI 200 sector code of a member
    gics_ig_code: str = ""
    confidence: Decimal = Decimal(0)
    kis_sector_name: str = ""
    fallback_sector_key: str = ""
    fallback_industry_key: str = ""
    mapping_version: str = ""  # the map's version when it was classified (or last checked)


def stocks_with_sectors(conn: Connection, region: str) -> list[Stored]:
    """Active stocks of ``region`` (ETPs have no sector), with what is stored of each."""
    s = InstrumentSector
    query = (
        select(
            Instrument.market,
            Instrument.symbol,
            Instrument.region,
            Instrument.sector_code,
            func.coalesce(s.origin, ""),
            func.coalesce(s.gics_sector_code, ""),
            func.coalesce(s.enriched_ns, 0),
            Instrument.industry_code,
            Instrument.kospi200_sector,
            func.coalesce(s.gics_ig_code, ""),
            func.coalesce(s.confidence, 0),
            func.coalesce(s.kis_sector_name, ""),
            func.coalesce(s.fallback_sector_key, ""),
            func.coalesce(s.fallback_industry_key, ""),
            func.coalesce(s.mapping_version, ""),
        )
        .outerjoin(s, and_(s.market == Instrument.market, s.symbol == Instrument.symbol))
        .where(
            Instrument.region == region,
            Instrument.active.is_(True),
            Instrument.security_type == "stock",
        )
        .order_by(Instrument.market, Instrument.symbol)
    )
    found = []
    for row in conn.execute(query):
        market, symbol, reg, code, origin, gics, ns, industry, k200, ig, confidence, *rest = row
        found.append(
            Stored(
                market,
                symbol,
                market,
                reg,
                code,
                origin,
                gics,
                int(ns),
                industry,
                k200,
                ig,
                Decimal(str(confidence)),
                *rest,
            )
        )
    return found


def code_names(conn: Connection) -> dict[tuple[str, str], str]:
    """KIS's name of each ``(exchange, icod)`` fetched so far."""
    rows = conn.execute(select(KisSectorCode.exchange, KisSectorCode.icod, KisSectorCode.name))
    return {(exchange, icod): name for exchange, icod, name in rows}


def code_counts(conn: Connection, regions: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """Active stocks per ``(market, icod)`` in ``regions``, the codes normalised.

    A master may hold a code narrower than the catalog's 4 characters (``"330"``): it is the
    same code as ``"0330"`` (`normalise_icod`), counted once and named by the catalog.
    """
    query = (
        select(Instrument.market, Instrument.sector_code, func.count())
        .where(
            Instrument.region.in_(regions),
            Instrument.active.is_(True),
            Instrument.security_type == "stock",
        )
        .group_by(Instrument.market, Instrument.sector_code)
    )
    found: dict[tuple[str, str], int] = {}
    for market, code, n in conn.execute(query):
        key = (market, _icod(code))
        found[key] = found.get(key, 0) + int(n)
    return found


def _icod(code: str) -> str:
    try:
        return normalise_icod(code)
    except ValueError:
        return code  # not a KIS code (blank): as it is


def coverage(conn: Connection) -> dict[str, dict[str, int]]:
    """Per region, stored sectors by origin (``kis_map``, ``fallback``, ``manual``, ...).

    Only those of active stocks, the stocks `region_coverage` divides by: a delisted
    stock's sector stays stored but covers nothing.
    """
    s, i = InstrumentSector, Instrument
    query = (
        select(i.region, s.origin, func.count())
        .select_from(s)
        .join(i, and_(i.market == s.market, i.symbol == s.symbol))
        .where(i.active.is_(True), i.security_type == "stock")
        .group_by(i.region, s.origin)
    )
    found: dict[str, dict[str, int]] = {}
    for region, origin, n in conn.execute(query):
        found.setdefault(region, {})[origin] = int(n)
    return found


def region_coverage(conn: Connection) -> dict[str, dict[str, Any]]:
    """Per region: active stocks, those classified (any origin but ``unresolved``), the share.

    Regions with stocks or stored sectors; ``by_origin`` is `coverage`'s count per origin.
    """
    query = (
        select(Instrument.region, func.count())
        .where(Instrument.active.is_(True), Instrument.security_type == "stock")
        .group_by(Instrument.region)
    )
    stocks = {region: int(n) for region, n in conn.execute(query)}
    origins = coverage(conn)
    found: dict[str, dict[str, Any]] = {}
    for region in sorted(stocks.keys() | origins.keys()):
        by_origin = origins.get(region, {})
        classified = sum(n for origin, n in by_origin.items() if origin != "unresolved")
        total = stocks.get(region, 0)
        found[region] = {
            "stocks": total,
            "classified": classified,
            "coverage_pct": round(100 * classified / total, 1) if total else 0.0,
            "by_origin": by_origin,
        }
    return found


def runs_between(conn: Connection, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Every `EnrichmentRun` stored in ``[start_ns, end_ns)``, oldest first, as dicts."""
    table = EnrichmentRunRow.__table__
    query = (
        select(table)
        .where(table.c.produced_ns >= start_ns, table.c.produced_ns < end_ns)
        .order_by(table.c.produced_ns, table.c.region)
    )
    return _run_dicts(conn.execute(query))


def latest_runs(
    conn: Connection, start_ns: int = 0, end_ns: int = 2**63 - 1
) -> list[dict[str, Any]]:
    """The newest `EnrichmentRun` of each region stored in ``[start_ns, end_ns)``, as dicts."""
    table = EnrichmentRunRow.__table__
    newest = (
        select(table.c.region, func.max(table.c.produced_ns).label("ns"))
        .where(table.c.produced_ns >= start_ns, table.c.produced_ns < end_ns)
        .group_by(table.c.region)
        .subquery()
    )
    query = (
        select(table)
        .join(newest, and_(table.c.region == newest.c.region, table.c.produced_ns == newest.c.ns))
        .order_by(table.c.region)
    )
    return _run_dicts(conn.execute(query))


def previous_run_ns(conn: Connection, region: str, before_ns: int) -> int:
    """When the newest `EnrichmentRun` of ``region`` before ``before_ns`` was stored (0: none)."""
    table = EnrichmentRunRow.__table__
    query = select(func.max(table.c.produced_ns)).where(
        table.c.region == region, table.c.produced_ns < before_ns
    )
    return int(conn.execute(query).scalar() or 0)


def _run_dicts(rows: Iterable[Row[Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row._mapping.items() if k not in ("source", "seq")} for row in rows]


def coverage_at(conn: Connection, until_ns: int) -> dict[str, dict[str, int]]:
    """`coverage` as it stood at ``until_ns``: each symbol's newest history row by then.

    Only stocks listed then: active now, or delisted since (a removal deactivates an
    instrument and stamps its ``updated_ns``).
    """
    h, i = SectorMetadataRow, Instrument
    ranked = (
        select(
            h.market,
            h.symbol,
            h.origin,
            func.row_number()
            .over(partition_by=(h.market, h.symbol), order_by=(h.produced_ns.desc(), h.seq.desc()))
            .label("rank"),
        )
        .where(h.market != "", h.produced_ns <= until_ns)
        .subquery()
    )
    query = (
        select(i.region, ranked.c.origin, func.count())
        .select_from(ranked)
        .join(i, and_(i.market == ranked.c.market, i.symbol == ranked.c.symbol))
        .where(
            ranked.c.rank == 1,
            i.security_type == "stock",
            or_(i.active.is_(True), i.updated_ns > until_ns),
        )
        .group_by(i.region, ranked.c.origin)
    )
    found: dict[str, dict[str, int]] = {}
    for region, origin, n in conn.execute(query):
        found.setdefault(region, {})[origin] = int(n)
    return found


@dataclass(frozen=True, slots=True)
class SectorChange:
    """A symbol whose GICS sector a run changed."""

    market: str
    symbol: str
    old_code: str
    old_sector: str
    new_code: str
    new_sector: str
    origin: str  # where the new one came from: kis_map, kis_detail, fallback, manual
    produced_ns: int


def changes(conn: Connection, region: str, start_ns: int, end_ns: int) -> list[SectorChange]:
    """Symbols of ``region`` whose sector changed by a classification in ``[start_ns, end_ns]``.

    Each classification is compared with the symbol's previous one in the history (a first
    classification is not a change; "no sector" is never stored over a good one).
    """
    h = SectorMetadataRow
    order = (h.produced_ns, h.seq)
    history = (
        select(
            h.market,
            h.symbol,
            h.gics_sector_code,
            h.gics_sector,
            h.origin,
            h.produced_ns,
            func.lag(h.gics_sector_code)
            .over(partition_by=(h.market, h.symbol), order_by=order)
            .label("old_code"),
            func.lag(h.gics_sector)
            .over(partition_by=(h.market, h.symbol), order_by=order)
            .label("old_sector"),
        )
        .where(h.region == region, h.market != "", h.produced_ns <= end_ns)
        .subquery()
    )
    c = history.c
    query = (
        select(
            c.market,
            c.symbol,
            c.old_code,
            c.old_sector,
            c.gics_sector_code,
            c.gics_sector,
            c.origin,
            c.produced_ns,
        )
        .where(
            c.produced_ns >= start_ns,
            c.old_code.is_not(None),
            c.old_code != "",
            c.gics_sector_code != "",
            c.old_code != c.gics_sector_code,
        )
        .order_by(c.market, c.symbol)
    )
    return [SectorChange(*row) for row in conn.execute(query)]
