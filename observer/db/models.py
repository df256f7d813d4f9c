"""SQLAlchemy models of every table the writer fills.

Every committed event leaves at least one append-only row keyed by ``(source, seq)`` (plus
``idx`` when one event yields several rows), so completeness is a SQL query: per source the
distinct seqs across all tables are exactly 1..max (see `observer.db.queries.audit_sources`).
Tables updated in place (``instruments``, ``gaps``, ``master_file_state``) have an append-only
history beside them (``listing_changes``, ``gap_events``, ``master_file_checks``).
``bus_offsets`` holds each source's committed high-water mark. Secrets are never stored.
"""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of this module's import, which is on the writer's path to READY.

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Index,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from bus.codec import DIGEST_BYTES
from bus.envelope import MAX_SOURCE_LENGTH

__all__ = [
    "AUDITED_MODELS",
    "AlertRow",
    "Base",
    "BusOffset",
    "EtfDetailRow",
    "Gap",
    "GapEvent",
    "Instrument",
    "ListingChange",
    "MasterFileCheck",
    "MasterFileReviewRow",
    "MasterFileState",
    "MinuteBar",
    "MinuteBarBatch",
    "OrderBookRow",
    "OverflowEntry",
    "PhaseRow",
    "PriceSnapshotRow",
    "RejectedEvent",
    "SectorMetadataRow",
    "SlotEvent",
    "StreamStateRow",
    "TokenRefresh",
    "TrackACycleRow",
    "TradeTickRow",
    "UniverseMemberRow",
    "UniverseSnapshotRow",
    "WorkerEvent",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, text on SQLite (whose NUMERIC is a float)."""

    impl = Numeric(24, 8)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(24, 8))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class Base(DeclarativeBase):
    """Declarative base with constraint names alembic can rely on."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        int: BigInteger(),
        str: String(200),
        Decimal: ExactDecimal(),
        date: Date(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Audited:
    """Columns of every append-only row: who produced it, its seq, and when."""

    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    produced_ns: Mapped[int]


class AuditedMany(Audited):
    """Append-only rows of events that yield several rows; ``idx`` orders them."""

    idx: Mapped[int] = mapped_column(primary_key=True)


class BusOffset(Base):
    """Per-source high-water mark, committed with the rows it covers."""

    __tablename__ = "bus_offsets"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int]
    updated_ns: Mapped[int]


class BusDigest(Base):
    """Digests of committed envelopes: one row per source and commit, in seq order.

    A resend must be byte-identical to what was committed at its seq; the writer compares
    each repeated envelope with the digest stored here (see `observer.writer.store`).
    """

    __tablename__ = "bus_digests"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    first_seq: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int]
    digests: Mapped[bytes] = mapped_column(LargeBinary)  # DIGEST_BYTES per seq, in seq order


class BusConflict(Base):
    """An envelope whose seq was committed with other content: kept, never dropped."""

    __tablename__ = "bus_conflicts"
    source: Mapped[str] = mapped_column(String(MAX_SOURCE_LENGTH), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_BYTES), primary_key=True)
    committed_digest: Mapped[bytes] = mapped_column(LargeBinary(DIGEST_BYTES))
    received_ns: Mapped[int]
    event_type: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)  # a frame of the one envelope


# ------------------------------------------------------------------ market data


class PriceSnapshotRow(Audited, Base):
    """Track A REST snapshots."""

    __tablename__ = "price_snapshots"
    cycle_id: Mapped[str] = mapped_column(String(20))
    symbol: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(16))
    observed_ns: Mapped[int]
    price: Mapped[int]
    change: Mapped[int]
    change_rate: Mapped[Decimal]
    open: Mapped[int]
    high: Mapped[int]
    low: Mapped[int]
    volume: Mapped[int]
    traded_value: Mapped[int]
    upper_limit: Mapped[int]
    lower_limit: Mapped[int]
    base_price: Mapped[int]
    market_cap: Mapped[int]
    halted: Mapped[bool]

    __table_args__ = (Index(None, "symbol", "observed_ns"), Index(None, "cycle_id"))


class TrackACycleRow(Audited, Base):
    """Track A cycle summaries."""

    __tablename__ = "track_a_cycles"
    cycle_id: Mapped[str] = mapped_column(String(20), index=True)
    trade_date: Mapped[date]
    scheduled_ns: Mapped[int]
    started_ns: Mapped[int]
    finished_ns: Mapped[int]
    universe_size: Mapped[int]
    succeeded: Mapped[int]
    failed: Mapped[int]
    missing: Mapped[list[Any]]
    requested: Mapped[int]
    carried: Mapped[int]
    unfinished: Mapped[int]
    calls: Mapped[int]
    rate_per_s: Mapped[Decimal]
    limit_per_s: Mapped[Decimal]
    overran: Mapped[bool]


class TradeTickRow(Audited, Base):
    """Track B executions (H0STCNT0)."""

    __tablename__ = "trade_ticks"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int]
    received_ns: Mapped[int]
    price: Mapped[int]
    qty: Mapped[int]
    cum_volume: Mapped[int]
    cum_value: Mapped[int]
    change_rate: Mapped[Decimal]
    ask1: Mapped[int]
    bid1: Mapped[int]
    strength: Mapped[Decimal]
    side: Mapped[str] = mapped_column(String(8))
    session: Mapped[str] = mapped_column(String(8))
    halted: Mapped[bool]
    account: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index(None, "symbol", "exchange_ns"),)


class OrderBookRow(Audited, Base):
    """Track B ten-level books (H0STASP0); levels as JSON arrays, best first."""

    __tablename__ = "order_books"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int]
    received_ns: Mapped[int]
    ask_prices: Mapped[list[Any]]
    ask_qtys: Mapped[list[Any]]
    bid_prices: Mapped[list[Any]]
    bid_qtys: Mapped[list[Any]]
    total_ask_qty: Mapped[int]
    total_bid_qty: Mapped[int]
    expected_price: Mapped[int]
    expected_qty: Mapped[int]
    account: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index(None, "symbol", "exchange_ns"),)


class MinuteBarBatch(Audited, Base):
    """One row per minute-bar event, even an empty recovery, so every seq is accounted for."""

    __tablename__ = "minute_bar_batches"
    symbol: Mapped[str] = mapped_column(String(16))
    quality: Mapped[str] = mapped_column(String(16))
    gap_id: Mapped[str] = mapped_column(String(64), index=True)
    bar_count: Mapped[int]


class MinuteBar(AuditedMany, Base):
    """Minute bars, live or recovered; the best row per (symbol, minute) is chosen on read."""

    __tablename__ = "minute_bars"
    symbol: Mapped[str] = mapped_column(String(16))
    minute_ns: Mapped[int]
    open: Mapped[int]
    high: Mapped[int]
    low: Mapped[int]
    close: Mapped[int]
    volume: Mapped[int]
    value: Mapped[int]
    quality: Mapped[str] = mapped_column(String(16))  # "live" | "recovered"
    gap_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index(None, "symbol", "minute_ns"),)


# ------------------------------------------------------------------ gaps and slots


class Gap(Base):
    """Current state of each gap (updated in place; history in ``gap_events``)."""

    __tablename__ = "gaps"
    gap_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16), index=True)
    account: Mapped[str] = mapped_column(String(64))
    start_ns: Mapped[int]
    end_ns: Mapped[int]
    reason: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    bars: Mapped[int]
    detail: Mapped[str] = mapped_column(String(500))
    detected_ns: Mapped[int]
    updated_ns: Mapped[int]


class GapEvent(Audited, Base):
    """Append-only history of gaps: detection rows carry the span, later rows the state."""

    __tablename__ = "gap_events"
    gap_id: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str | None] = mapped_column(String(16))
    start_ns: Mapped[int | None]
    end_ns: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(64))
    bars: Mapped[int]
    detail: Mapped[str] = mapped_column(String(500))


class SlotEvent(Audited, Base):
    """Track B slot decisions with their scores and reasons."""

    __tablename__ = "slot_events"
    account: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str] = mapped_column(String(16), index=True)
    slot: Mapped[int]
    trigger: Mapped[str] = mapped_column(String(32))
    score: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(String(200))
    replaced_symbol: Mapped[str] = mapped_column(String(16))
    expires_ns: Mapped[int]


class OverflowEntry(Audited, Base):
    """The overflow ledger: triggered symbols that found no slot."""

    __tablename__ = "overflow_ledger"
    symbol: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    score: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(String(200))
    lowest_held_score: Mapped[Decimal]
    strength: Mapped[Decimal]
    measure: Mapped[Decimal]
    market_cap: Mapped[int]


# ------------------------------------------------------------------ reference data


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

    __table_args__ = (Index(None, "trade_date", "symbol"),)


class MasterFileCheck(Audited, Base):
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


class ListingChange(Audited, Base):
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

    __table_args__ = (Index(None, "region", "symbol"),)


# ------------------------------------------------------------------ operations


class PhaseRow(Audited, Base):
    """Operation phases entered."""

    __tablename__ = "phases"
    phase: Mapped[str] = mapped_column(String(32))
    trade_date: Mapped[date]
    scheduled_ns: Mapped[int]


class TokenRefresh(Audited, Base):
    """Token and approval-key issuances (no secret is ever stored)."""

    __tablename__ = "token_refreshes"
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    issued_ns: Mapped[int]
    expires_ns: Mapped[int]


class AlertRow(Audited, Base):
    """Alerts raised by any process."""

    __tablename__ = "alerts"
    severity: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64), index=True)
    message: Mapped[str] = mapped_column(String(2000))
    context: Mapped[dict[str, Any]]


class StreamStateRow(Audited, Base):
    """Real-time session states per account (disconnects bound the gaps)."""

    __tablename__ = "stream_states"
    account: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    registrations: Mapped[int]


class WorkerEvent(Audited, Base):
    """Process lifecycle recorded by the supervisor."""

    __tablename__ = "worker_events"
    worker: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int]
    exit_code: Mapped[int | None]
    detail: Mapped[str] = mapped_column(String(500))


class RejectedEvent(Audited, Base):
    """Events the database refused for their content, kept whole (a frame of one envelope)."""

    __tablename__ = "rejected_events"
    event_type: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)


AUDITED_MODELS: tuple[type[Audited], ...] = tuple(
    sorted(
        (mapper.class_ for mapper in Base.registry.mappers if issubclass(mapper.class_, Audited)),
        key=lambda model: model.__name__,
    )
)
