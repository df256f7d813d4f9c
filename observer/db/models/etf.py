"""ETF tables: the KRX list in place with its history, daily rows, and job runs."""

# No `from __future__ import annotations` (see observer.db.models.reference).

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from observer.db.models.base import Audited, AuditedMany, Base


class EtfListingRow(Audited, Base):
    """Append-only history of the KRX ETF list: new, changed, removed."""

    __tablename__ = "etf_listing_changes"
    change: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(16))
    isin: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    name_full: Mapped[str]
    name_en: Mapped[str]
    listed_on: Mapped[date | None]
    underlying_index: Mapped[str]
    index_provider: Mapped[str] = mapped_column(String(64))
    multiple: Mapped[Decimal | None]
    multiple_label: Mapped[str] = mapped_column(String(32))
    replication: Mapped[str] = mapped_column(String(32))
    base_market: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(32))
    listed_units: Mapped[int | None]
    manager: Mapped[str] = mapped_column(String(64))
    cu_units: Mapped[int | None]
    fee_pct: Mapped[Decimal | None]
    tax_type: Mapped[str] = mapped_column(String(64))
    changed_fields: Mapped[list[Any]]
    initial: Mapped[bool]
    origin: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index(None, "symbol"),)


class Etf(Base):
    """The current ETF list (updated in place; history in etf_listing_changes)."""

    __tablename__ = "etfs"
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    isin: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    name_full: Mapped[str]
    name_en: Mapped[str]
    listed_on: Mapped[date | None]
    underlying_index: Mapped[str]
    index_provider: Mapped[str] = mapped_column(String(64))
    multiple: Mapped[Decimal | None]
    multiple_label: Mapped[str] = mapped_column(String(32))
    replication: Mapped[str] = mapped_column(String(32))
    base_market: Mapped[str] = mapped_column(String(32))
    asset_class: Mapped[str] = mapped_column(String(32))
    listed_units: Mapped[int | None]
    manager: Mapped[str] = mapped_column(String(64))
    cu_units: Mapped[int | None]
    fee_pct: Mapped[Decimal | None]
    tax_type: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool]
    listed_ns: Mapped[int]
    updated_ns: Mapped[int]


class EtfDailyRow(Audited, Base):
    """One ETF's session; the newest row per (symbol, trade_date) is current."""

    __tablename__ = "etf_daily"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    close: Mapped[int | None]
    open: Mapped[int | None]
    high: Mapped[int | None]
    low: Mapped[int | None]
    volume: Mapped[int | None]
    nav: Mapped[Decimal | None]
    premium_pct: Mapped[Decimal | None]
    premium_calc_pct: Mapped[Decimal | None]
    net_assets_krw: Mapped[int | None]
    listed_units: Mapped[int | None]
    circulating_units: Mapped[int | None]
    holdings: Mapped[int | None]
    tracking_error_rate: Mapped[Decimal | None]
    nav_final: Mapped[bool]
    origin: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index(None, "symbol", "trade_date"), Index(None, "trade_date"))


class EtfHoldingsRow(Audited, Base):
    """One ETF's constituents on one session: the counts (lines in etf_holdings).

    Append-only: the newest set per (symbol, trade_date) is current.
    """

    __tablename__ = "etf_holding_sets"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    line_count: Mapped[int]
    reported_count: Mapped[int | None]
    quote_count: Mapped[int | None]
    pages: Mapped[int]

    __table_args__ = (Index(None, "symbol", "trade_date"),)


class EtfHoldingRow(AuditedMany, Base):
    """One line of a set in etf_holding_sets (same source and seq), ``idx`` in KIS's order."""

    __tablename__ = "etf_holdings"
    trade_date: Mapped[date]
    symbol: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(String(16))
    weight_pct: Mapped[Decimal | None]
    value_krw: Mapped[int | None]

    __table_args__ = (Index(None, "symbol", "trade_date"),)


RUN_REASON_CHARS = 500  # etf_runs.reason: an EtfRun's reason is cut to what it holds


class EtfRunRow(Audited, Base):
    """Append-only history of the ETF jobs' runs."""

    __tablename__ = "etf_runs"
    job: Mapped[str] = mapped_column(String(32))
    trade_date: Mapped[date]
    applied: Mapped[bool]
    reason: Mapped[str] = mapped_column(String(RUN_REASON_CHARS))
    listed: Mapped[int]
    collected: Mapped[int]
    calls: Mapped[int]
    failures: Mapped[int]
    have: Mapped[dict[str, Any]]
    duration_ms: Mapped[int]

    __table_args__ = (Index(None, "job", "trade_date"),)
