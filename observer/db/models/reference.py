"""Reference data: universes, master files, listings, instruments, ETFs, sectors."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from observer.db.models.base import Audited, AuditedMany, Base


class UniverseSnapshotRow(Audited, Base):
    """Daily universe headers."""

    __tablename__ = "universe_snapshots"
    trade_date: Mapped[date] = mapped_column(index=True)
    based_on: Mapped[date]
    min_prev_close: Mapped[int]
    member_count: Mapped[int]
    excluded: Mapped[int]


class UniverseMemberRow(AuditedMany, Base):
    """Daily universe members, ranked by market cap."""

    __tablename__ = "universe_members"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int]
    prev_close: Mapped[int]
    market_cap: Mapped[int]
    name: Mapped[str]
    avg_volume_20d: Mapped[int]
    atr_14: Mapped[Decimal]
    nxt_eligible: Mapped[bool | None]  # NULL: not known (a paper account, or it failed)
    nxt_halted: Mapped[bool | None]
    # Migration 0035: the market measures the masters listed it under ([] before).
    measures: Mapped[list[Any]] = mapped_column(server_default="[]")

    __table_args__ = (Index(None, "trade_date", "symbol"),)


class MasterFileCheckedRow(Audited, Base):
    """Append-only history of master-file checks."""

    __tablename__ = "master_file_checks"
    market: Mapped[str] = mapped_column(String(16), index=True)
    file_name: Mapped[str] = mapped_column(String(64))
    remote_size: Mapped[int]
    previous_size: Mapped[int]
    changed: Mapped[bool]
    downloaded: Mapped[bool]
    records: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    forced: Mapped[bool]
    error: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    added: Mapped[int]
    modified: Mapped[int]
    removed: Mapped[int]
    complete_pct: Mapped[Decimal | None]
    review_id: Mapped[str] = mapped_column(String(64))
    duration_ms: Mapped[int]


class MasterFileReviewRow(Audited, Base):
    """Append-only history of held master-file changes; the newest row per review is current."""

    __tablename__ = "master_file_reviews"
    review_id: Mapped[str] = mapped_column(String(64), index=True)
    market: Mapped[str] = mapped_column(String(16))
    file_name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    added: Mapped[int]
    modified: Mapped[int]
    removed: Mapped[int]
    records: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))


class MasterFileState(Base):
    """Last known state of each master file (updated in place)."""

    __tablename__ = "master_file_state"
    market: Mapped[str] = mapped_column(String(16), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    records: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    checked_ns: Mapped[int]
    changed_ns: Mapped[int]


class ListingChangedRow(Audited, Base):
    """Append-only history of listings: new, changed, removed."""

    __tablename__ = "listing_changes"
    change: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    name_en: Mapped[str]
    exchange: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(8))
    security_type: Mapped[str] = mapped_column(String(16))
    sector_code: Mapped[str] = mapped_column(String(16))
    changed_fields: Mapped[list[Any]]
    region: Mapped[str] = mapped_column(String(8))
    initial: Mapped[bool]
    # Migration 0014: the domestic masters' 중분류 code and KOSPI 200 sector.
    industry_code: Mapped[str] = mapped_column(String(16), server_default="")
    kospi200_sector: Mapped[str] = mapped_column(String(4), server_default="")
    # Migration 0037: the domestic masters' market measures ([] overseas, and before).
    measures: Mapped[list[Any]] = mapped_column(server_default="[]")

    __table_args__ = (Index(None, "market", "symbol"),)


class Instrument(Base):
    """The symbol master across markets (updated in place; history in listing_changes)."""

    __tablename__ = "instruments"
    market: Mapped[str] = mapped_column(String(16), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str]
    name_en: Mapped[str]
    exchange: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(8))
    security_type: Mapped[str] = mapped_column(String(16))
    sector_code: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool]
    listed_ns: Mapped[int]
    updated_ns: Mapped[int]
    # Migration 0014: the domestic masters' 중분류 code and KOSPI 200 sector ("" overseas).
    industry_code: Mapped[str] = mapped_column(String(16), server_default="")
    kospi200_sector: Mapped[str] = mapped_column(String(4), server_default="")
    # Migration 0037: the domestic masters' market measures ([] overseas, and before).
    measures: Mapped[list[Any]] = mapped_column(server_default="[]")

    __table_args__ = (Index(None, "region", "active"),)


class EtfDetailRow(Audited, Base):
    """Daily ETF facts."""

    __tablename__ = "etf_details"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    price: Mapped[int]
    nav: Mapped[Decimal]
    aum: Mapped[int]
    premium: Mapped[Decimal]
    tracking_20d: Mapped[Decimal | None]
    tracking_60d: Mapped[Decimal | None]
    tracking_120d: Mapped[Decimal | None]
    tracking_250d: Mapped[Decimal | None]
    holdings: Mapped[int]
    high_52w: Mapped[int]
    low_52w: Mapped[int]
    underlying_index: Mapped[str]
    issuer: Mapped[str]
    premium_abs_20d: Mapped[Decimal | None]
    premium_abs_60d: Mapped[Decimal | None]
    premium_abs_120d: Mapped[Decimal | None]
    premium_abs_250d: Mapped[Decimal | None]
    n_20d: Mapped[int] = mapped_column(server_default="0")
    n_60d: Mapped[int] = mapped_column(server_default="0")
    n_120d: Mapped[int] = mapped_column(server_default="0")
    n_250d: Mapped[int] = mapped_column(server_default="0")
    high_52w_date: Mapped[date | None]
    low_52w_date: Mapped[date | None]
    range_52w_basis: Mapped[str] = mapped_column(String(16), server_default="")
    range_52w_close_days: Mapped[int] = mapped_column(server_default="0")
    aum_source: Mapped[str] = mapped_column(String(16), server_default="")
    aum_check_pct: Mapped[Decimal | None]
    market_value: Mapped[int] = mapped_column(server_default="0")

    __table_args__ = (Index(None, "trade_date", "symbol"),)


class SectorMetadataRow(Audited, Base):
    """Sector classifications; the newest row per (region, symbol) is current."""

    __tablename__ = "sector_metadata"
    region: Mapped[str] = mapped_column(String(8))
    symbol: Mapped[str] = mapped_column(String(16))
    kis_sector_code: Mapped[str] = mapped_column(String(16))
    gics_sector: Mapped[str] = mapped_column(String(64))
    gics_industry: Mapped[str] = mapped_column(String(120))
    origin: Mapped[str] = mapped_column(String(32))  # the event's ``source`` field
    confidence: Mapped[Decimal]
    # The enrich job's fields (migration 0012_sectors); "" on earlier rows.
    market: Mapped[str] = mapped_column(String(16), server_default="")
    exchange: Mapped[str] = mapped_column(String(16), server_default="")
    kis_sector_name: Mapped[str] = mapped_column(String(120), server_default="")
    gics_sector_code: Mapped[str] = mapped_column(String(2), server_default="")
    gics_ig_code: Mapped[str] = mapped_column(String(4), server_default="")
    gics_ig: Mapped[str] = mapped_column(String(120), server_default="")
    fallback_sector_key: Mapped[str] = mapped_column(String(64), server_default="")
    fallback_industry_key: Mapped[str] = mapped_column(String(120), server_default="")
    mapping_version: Mapped[str] = mapped_column(String(32), server_default="")

    __table_args__ = (Index(None, "region", "symbol"),)
