"""How each event becomes rows: one handler per event type, pure functions.

Each handler queues its rows in the transaction's `observer.writer.batch.Batch`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any

import msgspec
from sqlalchemy import Table

from bus.codec import UndecodableEvent, encode_frame, frame_header
from bus.envelope import Envelope
from bus.events import (
    Alert,
    AlertAcked,
    AlertDelivery,
    AlertResolved,
    AuctionExpected,
    BrokerTrade,
    DayArchived,
    EnrichmentRun,
    EtfDaily,
    EtfDetail,
    EtfHoldings,
    EtfListing,
    EtfRun,
    Event,
    GapDetected,
    GapStateChanged,
    HostRoster,
    InvestorEstimate,
    InvestorFlow,
    ListingChanged,
    MarketStatus,
    MasterFileChecked,
    MasterFileReview,
    MinuteBars,
    OrderBook,
    PhaseChanged,
    PriceSnapshot,
    ProgramTrade,
    ProgramTradeDaily,
    PruneRequested,
    RealtimeRejected,
    Reconciliation,
    SectorCodes,
    SectorMetadata,
    SeqsLost,
    SlotDecision,
    SlotOverflow,
    StreamStateChanged,
    TokenRefreshed,
    TrackACycle,
    TradeTick,
    UniverseSnapshot,
    ViNotice,
    VolatilityInterruption,
    WorkerLifecycle,
    event_tag,
)
from observer.db import models as m
from observer.writer.batch import Batch, Row
from observer.writer.losses import seqs_lost

__all__ = ["HANDLERS", "reduced_rejected_rows", "rejected_rows", "rows_for"]

_BIGINT = range(-(2**63), 2**63)


Handler = Callable[[Envelope, Batch], None]
_EVENT_TYPE = attrgetter("event.__class__")


def _audit(env: Envelope) -> Row:
    return {"source": env.source, "seq": env.seq, "produced_ns": env.ts}


def _fields(event: Event, **rename: str) -> Row:
    row = {rename.get(k, k): v for k, v in msgspec.structs.asdict(event).items()}
    for key, value in row.items():
        if isinstance(value, tuple):
            row[key] = list(value)
    return row


class _Direct:
    """Handler for events whose fields are the table's columns (``rename`` maps clashes).

    The hot path (ticks): a run of such events becomes rows in one comprehension, values
    straight from ``astuple`` in field order. A derived column is one more name in
    ``columns`` and one more value in `rows`.
    """

    __slots__ = ("columns", "table")

    def __init__(self, model: type[m.Base], event_type: type[Event], **rename: str) -> None:
        self.table: Table = model.__table__  # type: ignore[assignment]
        fields = tuple(rename.get(name, name) for name in event_type.__struct_fields__)
        self.columns = (*fields, "source", "seq", "produced_ns")
        missing = set(self.columns) - set(self.table.c.keys())
        if missing:
            raise TypeError(
                f"{event_type.__name__} fields {missing} are not columns of {self.table}"
            )

    def rows(self, envelopes: Iterable[Envelope]) -> list[tuple[Any, ...]]:
        """The rows of ``envelopes``, in ``columns`` order."""
        astuple = msgspec.structs.astuple
        return [(*astuple(env.event), env.source, env.seq, env.ts) for env in envelopes]

    def __call__(self, env: Envelope, batch: Batch) -> None:
        batch.extend(self.table, self.columns, self.rows((env,)))


class _Book:
    """Books: the event's four level tuples become the columns `m.BOOK_LEVEL_COLUMNS`.

    A level past those sent is NULL; a side of more than `m.BOOK_DEPTH` levels is refused
    (ValueError), never cut.
    """

    __slots__ = ("columns", "fields", "table")

    LEVELS = ("ask_prices", "ask_qtys", "bid_prices", "bid_qtys")  # in the columns' order

    def __init__(self) -> None:
        self.table: Table = m.OrderBookRow.__table__  # type: ignore[assignment]
        self.fields = tuple(f for f in OrderBook.__struct_fields__ if f not in self.LEVELS)
        self.columns = (*self.fields, *m.BOOK_LEVEL_COLUMNS, "source", "seq", "produced_ns")

    def __call__(self, env: Envelope, batch: Batch) -> None:
        book = env.event
        levels: list[int | None] = []
        for name in self.LEVELS:
            side: tuple[int, ...] = getattr(book, name)
            if len(side) > m.BOOK_DEPTH:
                raise ValueError(f"{name} holds {len(side)} levels, more than {m.BOOK_DEPTH}")
            levels += side
            levels += (None,) * (m.BOOK_DEPTH - len(side))
        row = (*(getattr(book, f) for f in self.fields), *levels, env.source, env.seq, env.ts)
        batch.extend(self.table, self.columns, [row])


def _minute_bars(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, MinuteBars)
    header = {
        "symbol": event.symbol,
        "quality": event.quality,
        "gap_id": event.gap_id,
        "venue": event.venue,
    }
    batch.insert(m.MinuteBarsRow, _audit(env) | header | {"bar_count": len(event.bars)})
    base = _audit(env) | header
    for idx, bar in enumerate(event.bars):
        batch.insert(m.BarRow, base | msgspec.structs.asdict(bar) | {"idx": idx})


def _broker_trade(env: Envelope, batch: Batch) -> None:
    """A brokers' trading record: a row per ranked broker, each with the record's totals."""
    event = env.event
    assert isinstance(event, BrokerTrade)
    record = _audit(env) | {
        name: getattr(event, name) for name in BrokerTrade.__struct_fields__ if name != "ranks"
    }
    for idx, rank in enumerate(event.ranks):
        batch.insert(m.BrokerTradeRow, record | msgspec.structs.asdict(rank) | {"idx": idx})


def _reconciliation(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, Reconciliation)
    header = {"trade_date": event.trade_date, "symbol": event.symbol, "venue": event.venue}
    batch.insert(
        m.ReconciliationRow,
        _audit(env)
        | header
        | {
            "minute_count": len(event.minutes),
            "missing_volume": event.missing_volume,
            "misses": event.misses,
            "calls": event.calls,
        },
    )
    base = _audit(env) | header
    for idx, minute in enumerate(event.minutes):
        batch.insert(m.MinuteCheckRow, base | msgspec.structs.asdict(minute) | {"idx": idx})


def _universe(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, UniverseSnapshot)
    batch.insert(
        m.UniverseSnapshotRow,
        _audit(env)
        | {
            "trade_date": event.trade_date,
            "based_on": event.based_on,
            "min_prev_close": event.min_prev_close,
            "member_count": len(event.members),
            "excluded": event.excluded,
        },
    )
    base = _audit(env) | {"trade_date": event.trade_date}
    for idx, member in enumerate(event.members):
        batch.insert(m.UniverseMemberRow, base | msgspec.structs.asdict(member) | {"idx": idx})


def _etf_holdings(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, EtfHoldings)
    key = _audit(env) | {"trade_date": event.trade_date, "symbol": event.symbol}
    batch.insert(
        m.EtfHoldingsRow,
        key
        | {
            "line_count": len(event.lines),
            "reported_count": event.reported_count,
            "quote_count": event.quote_count,
            "pages": event.pages,
        },
    )
    for idx, line in enumerate(event.lines):
        batch.insert(m.EtfHoldingRow, key | msgspec.structs.asdict(line) | {"idx": idx})


def _gap_detected(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, GapDetected)
    batch.insert(
        m.GapEvent,
        _audit(env)
        | {
            "gap_id": event.gap_id,
            "state": "detected",
            "symbol": event.symbol,
            "start_ns": event.start_ns,
            "end_ns": event.end_ns,
            "reason": event.reason,
            "bars": 0,
            "detail": "",
            "venue": event.venue,
            "trading_session": event.trading_session,
        },
    )
    values = _fields(event) | {
        "state": "detected",
        "bars": 0,
        "detail": "",
        "detected_ns": env.ts,
        "updated_ns": env.ts,
    }
    batch.upsert(
        m.Gap, ("gap_id",), values, tuple(k for k in values if k not in ("gap_id", "detected_ns"))
    )


def _gap_state(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, GapStateChanged)
    fields = {"state": event.state, "bars": event.bars, "detail": event.detail}
    recovered = {"trades": event.trades, "trade_volume": event.trade_volume}
    batch.insert(
        m.GapEvent,
        _audit(env)
        | {"gap_id": event.gap_id, "symbol": None, "start_ns": None, "end_ns": None, "reason": None}
        | {"venue": None, "trading_session": None}
        | fields,
    )
    # A state change for a gap never detected still creates it, so nothing is silently dropped.
    values = (
        {
            "gap_id": event.gap_id,
            "symbol": "",
            "account": "",
            "start_ns": 0,
            "end_ns": 0,
            "reason": "unknown",
            "detected_ns": env.ts,
            "updated_ns": env.ts,
        }
        | fields
        | recovered
    )
    updated = ("state", "bars", "detail", "updated_ns", "trades", "trade_volume")
    batch.upsert(m.Gap, ("gap_id",), values, updated)


def _master_file(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, MasterFileChecked)
    batch.insert(m.MasterFileCheckedRow, _audit(env) | _fields(event))
    if event.error or event.action == "hold":
        return  # the file in use did not change
    values = {
        "market": event.market,
        "file_name": event.file_name,
        "size": event.remote_size,
        "records": event.records,
        "sha256": event.sha256,
        "checked_ns": env.ts,
        "changed_ns": env.ts,
    }
    update = ("file_name", "size", "records", "sha256", "checked_ns")
    batch.upsert(
        m.MasterFileState, ("market",), values, (*update, "changed_ns") if event.changed else update
    )


def _listing(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, ListingChanged)
    _listed(env, event, batch, m.ListingChangedRow, m.Instrument, ("market", "symbol"))


def _etf_listing(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, EtfListing)
    _listed(env, event, batch, m.EtfListingRow, m.Etf, ("symbol",))


def _listed(
    env: Envelope,
    event: ListingChanged | EtfListing,
    batch: Batch,
    history: type[m.Base],
    table: type[m.Base],
    keys: tuple[str, ...],
) -> None:
    """A listing change's history row, then the listing in place (a removal deactivates it)."""
    batch.insert(history, _audit(env) | _fields(event))
    values = _fields(event)
    del values["change"], values["changed_fields"], values["initial"]
    values |= {"active": event.change != "removed", "listed_ns": env.ts, "updated_ns": env.ts}
    update = (
        ("active", "updated_ns")
        if event.change == "removed"
        else tuple(k for k in values if k not in (*keys, "listed_ns"))
    )
    batch.upsert(table, keys, values, update)


_sector_history = _Direct(m.SectorMetadataRow, SectorMetadata, source="origin")


def _sector(env: Envelope, batch: Batch) -> None:
    """The history row, then the instrument's current sector in place (enrich job's events)."""
    _sector_history(env, batch)
    event = env.event
    assert isinstance(event, SectorMetadata)
    if not event.market:
        return  # an event of the earlier shape: history only
    values = _fields(event, source="origin")
    del values["gics_industry"]
    values["enriched_ns"] = env.ts
    update = tuple(k for k in values if k not in ("market", "symbol"))
    batch.upsert(m.InstrumentSector, ("market", "symbol"), values, update)


def _sector_codes(env: Envelope, batch: Batch) -> None:
    """The catalog's history row, then each code's name in place."""
    event = env.event
    assert isinstance(event, SectorCodes)
    codes = [[icod, name] for icod, name in sorted(event.codes.items())]
    batch.insert(
        m.SectorCodesRow,
        _audit(env) | {"exchange": event.exchange, "code_count": len(codes), "codes": codes},
    )
    for icod, name in event.codes.items():
        values = {"exchange": event.exchange, "icod": icod, "name": name, "updated_ns": env.ts}
        batch.upsert(m.KisSectorCode, ("exchange", "icod"), values, ("name", "updated_ns"))


def _prune_requested(env: Envelope, batch: Batch) -> None:
    event = env.event
    assert isinstance(event, PruneRequested)
    batch.insert(m.PruneRequestedRow, _audit(env) | _fields(event, table="table_name"))
    batch.requests.append(event)  # the writer prunes once this is committed


def _host_roster(env: Envelope, batch: Batch) -> None:
    """The history row, then the latest roster of the publishing supervisor in place."""
    event = env.event
    assert isinstance(event, HostRoster)
    values = {
        "host": event.host,
        "role": event.role,
        "whole_market": list(event.whole_market),
        "accounts": [[a.alias, a.fingerprint] for a in event.accounts],
        "track_b_shard": event.track_b_shard,
    }
    batch.insert(m.HostRosterRow, _audit(env) | values)
    latest = values | {"source": env.source, "seq": env.seq, "published_ns": env.ts}
    batch.upsert(m.HostRosterState, ("source",), latest, tuple(k for k in latest if k != "source"))


HANDLERS: dict[type[Event], Handler] = {
    PriceSnapshot: _Direct(m.PriceSnapshotRow, PriceSnapshot),
    TrackACycle: _Direct(m.TrackACycleRow, TrackACycle),
    TradeTick: _Direct(m.TradeTickRow, TradeTick),
    OrderBook: _Book(),
    RealtimeRejected: _Direct(m.RealtimeRejectedRow, RealtimeRejected),
    MinuteBars: _minute_bars,
    GapDetected: _gap_detected,
    GapStateChanged: _gap_state,
    SlotDecision: _Direct(m.SlotDecisionRow, SlotDecision),
    SlotOverflow: _Direct(m.SlotOverflowRow, SlotOverflow),
    SeqsLost: seqs_lost,
    UniverseSnapshot: _universe,
    MasterFileChecked: _master_file,
    MasterFileReview: _Direct(m.MasterFileReviewRow, MasterFileReview),
    ListingChanged: _listing,
    EtfDetail: _Direct(m.EtfDetailRow, EtfDetail),
    EtfListing: _etf_listing,
    EtfDaily: _Direct(m.EtfDailyRow, EtfDaily),
    EtfRun: _Direct(m.EtfRunRow, EtfRun),
    SectorMetadata: _sector,
    SectorCodes: _sector_codes,
    EnrichmentRun: _Direct(m.EnrichmentRunRow, EnrichmentRun),
    PhaseChanged: _Direct(m.PhaseChangedRow, PhaseChanged),
    TokenRefreshed: _Direct(m.TokenRefreshedRow, TokenRefreshed),
    Alert: _Direct(m.AlertRow, Alert),
    StreamStateChanged: _Direct(m.StreamStateChangedRow, StreamStateChanged),
    WorkerLifecycle: _Direct(m.WorkerLifecycleRow, WorkerLifecycle),
    Reconciliation: _reconciliation,
    AlertResolved: _Direct(m.AlertResolvedRow, AlertResolved),
    AlertAcked: _Direct(m.AlertAckedRow, AlertAcked),
    AlertDelivery: _Direct(m.AlertDeliveryRow, AlertDelivery),
    DayArchived: _Direct(m.DayArchivedRow, DayArchived, table="table_name"),
    PruneRequested: _prune_requested,
    EtfHoldings: _etf_holdings,
    HostRoster: _host_roster,
    MarketStatus: _Direct(m.MarketStatusRow, MarketStatus),
    InvestorEstimate: _Direct(m.InvestorEstimateRow, InvestorEstimate),
    ProgramTrade: _Direct(m.ProgramTradeRow, ProgramTrade),
    BrokerTrade: _broker_trade,
    AuctionExpected: _Direct(m.AuctionExpectedRow, AuctionExpected),
    InvestorFlow: _Direct(m.InvestorFlowRow, InvestorFlow),
    ProgramTradeDaily: _Direct(m.ProgramTradeDailyRow, ProgramTradeDaily),
    VolatilityInterruption: _Direct(m.VolatilityInterruptionRow, VolatilityInterruption),
    ViNotice: _Direct(m.ViNoticeRow, ViNotice),
}


def rejected_rows(env: Envelope, reason: str) -> Batch:
    """The audit row of an event the database refused: its envelope kept whole."""
    tag, envelope = _as_received(env)
    batch = Batch()
    batch.insert(
        m.RejectedEvent,
        _audit(env) | {"event_type": tag, "reason": reason[:500], "envelope": envelope},
    )
    return batch


def _as_received(env: Envelope) -> tuple[str, bytes]:
    """The event's tag and a frame of the envelope: its exact bytes if it did not decode."""
    event: object = env.event
    if isinstance(event, UndecodableEvent):
        return event.wire_tag, frame_header(1) + event.part
    return event_tag(env.event), encode_frame([env])


def reduced_rejected_rows(env: Envelope, reason: str, failure: str) -> Batch:
    """The audit row of a refused event whose whole record was refused too.

    Only what every database holds is kept: the source and seq (the codec admits only
    identities a database can hold), the envelope as bytes, and ASCII text without NUL; a
    ``ts`` beyond BIGINT becomes 0 (it is still in the envelope).
    """
    text = f"{reason} (record reduced: {failure})".replace("\x00", "\\x00")
    tag, envelope = _as_received(env)
    batch = Batch()
    batch.insert(
        m.RejectedEvent,
        {
            "source": env.source,
            "seq": env.seq,
            "produced_ns": env.ts if env.ts in _BIGINT else 0,
            "event_type": tag,
            "reason": text.encode("ascii", "backslashreplace").decode("ascii")[:500],
            "envelope": envelope,
        },
    )
    return batch


def rows_for(envelopes: list[Envelope]) -> Batch:
    """Build the rows of a batch of accepted envelopes, in order."""
    batch = Batch()
    # Runs of one event type (a frame of ticks, mostly): a direct type's run is built at
    # once; the others go one by one, so upserts keep their seq order.
    for kind, run in itertools.groupby(envelopes, key=_EVENT_TYPE):
        handler = HANDLERS[kind]
        if isinstance(handler, _Direct):
            batch.extend(handler.table, handler.columns, handler.rows(run))
        else:
            for env in run:
                handler(env, batch)
    return batch
