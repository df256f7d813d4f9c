"""SQLAlchemy models of every table the writer fills; secrets are never stored.

Every committed event leaves at least one append-only row keyed by ``(source, seq)`` (plus
``idx`` when one event yields several), so completeness is a SQL query: per source the distinct
seqs across all tables are exactly 1..max (`observer.db.audit_queries.audit_sources`). Only
``instruments``, ``gaps``, ``master_file_state``, ``instrument_sectors``, ``kis_sector_codes`` and
``host_rosters`` are updated in place, each with an append-only history beside it.
"""

from observer.db.models.archive import DayArchivedRow, PrunedChunk, PruneRequestedRow
from observer.db.models.base import (
    Audited,
    AuditedMany,
    Base,
    BusConflict,
    BusDigest,
    BusOffset,
    ExactDecimal,
    SeqsLostRow,
)
from observer.db.models.etf import (
    Etf,
    EtfDailyRow,
    EtfHoldingRow,
    EtfHoldingsRow,
    EtfListingRow,
    EtfRunRow,
)
from observer.db.models.hosts import HostRosterRow, HostRosterState
from observer.db.models.market import (
    BOOK_DEPTH,
    BOOK_LEVEL_COLUMNS,
    AuctionExpectedRow,
    BarRow,
    BrokerTradeRow,
    Gap,
    GapEvent,
    InvestorEstimateRow,
    InvestorFlowRow,
    MarketStatusRow,
    MinuteBarsRow,
    OrderBookRow,
    PriceSnapshotRow,
    ProgramTradeDailyRow,
    ProgramTradeRow,
    RealtimeRejectedRow,
    SlotDecisionRow,
    SlotOverflowRow,
    TrackACycleRow,
    TradeTickRow,
    ViNoticeRow,
    VolatilityInterruptionRow,
)
from observer.db.models.operations import (
    AlertAckedRow,
    AlertDeliveryRow,
    AlertResolvedRow,
    AlertRow,
    PhaseChangedRow,
    RejectedEvent,
    StreamStateChangedRow,
    TokenRefreshedRow,
    WorkerLifecycleRow,
)
from observer.db.models.reconciliation import MinuteCheckRow, ReconciliationRow
from observer.db.models.reference import (
    EtfDetailRow,
    Instrument,
    ListingChangedRow,
    MasterFileCheckedRow,
    MasterFileReviewRow,
    MasterFileState,
    SectorMetadataRow,
    UniverseMemberRow,
    UniverseSnapshotRow,
)
from observer.db.models.sectors import (
    EnrichmentRunRow,
    InstrumentSector,
    KisSectorCode,
    SectorCodesRow,
)

__all__ = [
    "AUDITED_MODELS",
    "BOOK_DEPTH",
    "BOOK_LEVEL_COLUMNS",
    "AlertAckedRow",
    "AlertDeliveryRow",
    "AlertResolvedRow",
    "AlertRow",
    "AuctionExpectedRow",
    "Audited",
    "AuditedMany",
    "BarRow",
    "Base",
    "BrokerTradeRow",
    "BusConflict",
    "BusDigest",
    "BusOffset",
    "DayArchivedRow",
    "EnrichmentRunRow",
    "Etf",
    "EtfDailyRow",
    "EtfDetailRow",
    "EtfHoldingRow",
    "EtfHoldingsRow",
    "EtfListingRow",
    "EtfRunRow",
    "ExactDecimal",
    "Gap",
    "GapEvent",
    "HostRosterRow",
    "HostRosterState",
    "Instrument",
    "InstrumentSector",
    "InvestorEstimateRow",
    "InvestorFlowRow",
    "KisSectorCode",
    "ListingChangedRow",
    "MarketStatusRow",
    "MasterFileCheckedRow",
    "MasterFileReviewRow",
    "MasterFileState",
    "MinuteBarsRow",
    "MinuteCheckRow",
    "OrderBookRow",
    "PhaseChangedRow",
    "PriceSnapshotRow",
    "ProgramTradeDailyRow",
    "ProgramTradeRow",
    "PruneRequestedRow",
    "PrunedChunk",
    "RealtimeRejectedRow",
    "ReconciliationRow",
    "RejectedEvent",
    "SectorCodesRow",
    "SectorMetadataRow",
    "SeqsLostRow",
    "SlotDecisionRow",
    "SlotOverflowRow",
    "StreamStateChangedRow",
    "TokenRefreshedRow",
    "TrackACycleRow",
    "TradeTickRow",
    "UniverseMemberRow",
    "UniverseSnapshotRow",
    "ViNoticeRow",
    "VolatilityInterruptionRow",
    "WorkerLifecycleRow",
]

AUDITED_MODELS: tuple[type[Audited], ...] = tuple(
    sorted(
        (mapper.class_ for mapper in Base.registry.mappers if issubclass(mapper.class_, Audited)),
        key=lambda model: model.__name__,
    )
)
