"""Sector enrichment: each instrument's sector in place, KIS's code catalogs, the job's runs.

``instrument_sectors`` is kept in place (the newest classification of each instrument);
its append-only history is ``sector_metadata`` (one row per `SectorMetadata` event). It is
apart from ``instruments`` so that the master-file diff never sees enrichment.
``kis_sector_codes`` holds HHDFS76370100's catalogs in place, ``sector_code_lists`` their
history; ``enrichment_runs`` one row per region per run.
"""

# No `from __future__ import annotations` (see observer.db.models.reference).

from decimal import Decimal
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from observer.db.models.base import Audited, Base


class InstrumentSector(Base):
    """The current sector of one instrument (history in sector_metadata)."""

    __tablename__ = "instrument_sectors"
    market: Mapped[str] = mapped_column(String(16), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    region: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str] = mapped_column(String(16))
    kis_sector_code: Mapped[str] = mapped_column(String(16))
    kis_sector_name: Mapped[str] = mapped_column(String(120))
    gics_sector_code: Mapped[str] = mapped_column(String(2))
    gics_sector: Mapped[str] = mapped_column(String(64))
    gics_ig_code: Mapped[str] = mapped_column(String(4))
    gics_ig: Mapped[str] = mapped_column(String(120))
    origin: Mapped[str] = mapped_column(String(32))  # kis_map, kis_detail, fallback, ...
    confidence: Mapped[Decimal]
    fallback_sector_key: Mapped[str] = mapped_column(String(64))
    fallback_industry_key: Mapped[str] = mapped_column(String(120))
    mapping_version: Mapped[str] = mapped_column(String(32))
    enriched_ns: Mapped[int]

    __table_args__ = (Index(None, "region", "gics_sector_code"),)


class KisSectorCode(Base):
    """One industry code of an overseas exchange and its KIS name (history: sector_code_lists)."""

    __tablename__ = "kis_sector_codes"
    exchange: Mapped[str] = mapped_column(String(16), primary_key=True)
    icod: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    updated_ns: Mapped[int]


class SectorCodesRow(Audited, Base):
    """Append-only history of HHDFS76370100's catalogs, one row per exchange per fetch."""

    __tablename__ = "sector_code_lists"
    exchange: Mapped[str] = mapped_column(String(16))
    code_count: Mapped[int]
    codes: Mapped[list[Any]]


class EnrichmentRunRow(Audited, Base):
    """One region of one enrichment run."""

    __tablename__ = "enrichment_runs"
    region: Mapped[str] = mapped_column(String(8))
    mode: Mapped[str] = mapped_column(String(16))
    total: Mapped[int]
    fresh_skipped: Mapped[int]
    manual: Mapped[int]
    kis_mapped: Mapped[int]
    fallback_ok: Mapped[int]
    fallback_failed: Mapped[int]
    unresolved: Mapped[int]
    deferred: Mapped[int]
    changed: Mapped[int]
    retries: Mapped[int]
    breaker_opens: Mapped[int]
    calls: Mapped[int]
    duration_ms: Mapped[int]
    mapping_version: Mapped[str] = mapped_column(String(32))
    # Migration 0013: the KIS per-symbol tier and the HHDFS76370000 cross-check.
    kis_detail: Mapped[int] = mapped_column(server_default="0")
    kis_info: Mapped[int] = mapped_column(server_default="0")
    kis_calls: Mapped[int] = mapped_column(server_default="0")
    cross_compared: Mapped[int] = mapped_column(server_default="0")
    cross_disagreeing: Mapped[int] = mapped_column(server_default="0")
    cross_disagreements: Mapped[list[Any]] = mapped_column(server_default="[]")

    __table_args__ = (Index(None, "region"),)
