"""Market data (snapshots, cycles, ticks, books, bars), gaps and slots."""

# No `from __future__ import annotations`: SQLAlchemy would evaluate every Mapped[...] string
# again, a fifth of the models' import, which is on the writer's path to READY.

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Index,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from observer.db.models.base import Audited, AuditedMany, Base


def by_trading_day(*key: str) -> tuple[PrimaryKeyConstraint, dict[str, str]]:
    """A primary key ending in the row's time column, the table ranged by it on PostgreSQL.

    PostgreSQL partitions these tables by KST trading day on their UTC-ns time column (the
    bounds are KST midnights, `observer.writer.partitions`), and a partitioned table's
    primary key must hold the partition key: hence ``(source, seq, <time>)``. The writer's
    marks, not this key, make every seq land once. SQLite keeps the ``(source, seq)`` key
    its tables were created with (migration 0013 leaves SQLite alone).
    """
    time_column = key[-1]
    return PrimaryKeyConstraint(*key), {"postgresql_partition_by": f"RANGE ({time_column})"}


class PriceSnapshotRow(Audited, Base):
    """Track A REST snapshots."""

    __tablename__ = "price_snapshots"
    cycle_id: Mapped[str] = mapped_column(String(20))
    symbol: Mapped[str] = mapped_column(String(16))
    market: Mapped[str] = mapped_column(String(16))
    observed_ns: Mapped[int] = mapped_column(primary_key=True)
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
    # Where it traded, and in which of that venue's sessions (NULL: stored before sessions
    # were recorded; "": in none of them). Rows stored before venues were are KRX's.
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        Index(None, "symbol", "observed_ns"),
        Index(None, "cycle_id"),
        *by_trading_day("source", "seq", "observed_ns"),
    )


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
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")  # whose prices


class TradeTickRow(Audited, Base):
    """Track B executions (H0STCNT0)."""

    __tablename__ = "trade_ticks"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int] = mapped_column(primary_key=True)
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
    market_session: Mapped[str | None] = mapped_column(String(8))  # MARKET_CLS_CODE, if sent
    # Where it traded, and in which of that venue's sessions (NULL: stored before sessions
    # were recorded; "": in none of them). Rows stored before venues were are KRX's.
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        Index(None, "symbol", "exchange_ns"),
        *by_trading_day("source", "seq", "exchange_ns"),
    )


BOOK_DEPTH = 10  # levels per side of a book, as KIS sends them
# A book's levels as columns, in this order: ``ask_price_1`` (the best ask) to ``_10``, then
# ``ask_qty_1..10``, ``bid_price_1..10``, ``bid_qty_1..10``; NULL past the levels sent.
BOOK_LEVEL_COLUMNS = tuple(
    f"{side}_{level}"
    for side in ("ask_price", "ask_qty", "bid_price", "bid_qty")
    for level in range(1, BOOK_DEPTH + 1)
)


class OrderBookRow(Audited, Base):
    """Track B ten-level books (H0STASP0): one integer column per level and side, best first.

    Each level is a column (`BOOK_LEVEL_COLUMNS`), so that a spread or a depth is a plain
    SQL or Arrow expression; the bus carries them as four tuples (`bus.events.OrderBook`).
    """

    __tablename__ = "order_books"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int] = mapped_column(primary_key=True)
    received_ns: Mapped[int]
    ask_price_1: Mapped[int | None]
    ask_price_2: Mapped[int | None]
    ask_price_3: Mapped[int | None]
    ask_price_4: Mapped[int | None]
    ask_price_5: Mapped[int | None]
    ask_price_6: Mapped[int | None]
    ask_price_7: Mapped[int | None]
    ask_price_8: Mapped[int | None]
    ask_price_9: Mapped[int | None]
    ask_price_10: Mapped[int | None]
    ask_qty_1: Mapped[int | None]
    ask_qty_2: Mapped[int | None]
    ask_qty_3: Mapped[int | None]
    ask_qty_4: Mapped[int | None]
    ask_qty_5: Mapped[int | None]
    ask_qty_6: Mapped[int | None]
    ask_qty_7: Mapped[int | None]
    ask_qty_8: Mapped[int | None]
    ask_qty_9: Mapped[int | None]
    ask_qty_10: Mapped[int | None]
    bid_price_1: Mapped[int | None]
    bid_price_2: Mapped[int | None]
    bid_price_3: Mapped[int | None]
    bid_price_4: Mapped[int | None]
    bid_price_5: Mapped[int | None]
    bid_price_6: Mapped[int | None]
    bid_price_7: Mapped[int | None]
    bid_price_8: Mapped[int | None]
    bid_price_9: Mapped[int | None]
    bid_price_10: Mapped[int | None]
    bid_qty_1: Mapped[int | None]
    bid_qty_2: Mapped[int | None]
    bid_qty_3: Mapped[int | None]
    bid_qty_4: Mapped[int | None]
    bid_qty_5: Mapped[int | None]
    bid_qty_6: Mapped[int | None]
    bid_qty_7: Mapped[int | None]
    bid_qty_8: Mapped[int | None]
    bid_qty_9: Mapped[int | None]
    bid_qty_10: Mapped[int | None]
    total_ask_qty: Mapped[int]
    total_bid_qty: Mapped[int]
    expected_price: Mapped[int]
    expected_qty: Mapped[int]
    account: Mapped[str] = mapped_column(String(64))
    # The mid-point and session of layouts that carry them; NULL for those that do not.
    mid_price: Mapped[Decimal | None]
    mid_qty: Mapped[int | None]
    mid_side: Mapped[str | None] = mapped_column(String(8))
    market_session: Mapped[str | None] = mapped_column(String(8))
    # Where it traded, and in which of that venue's sessions (NULL: stored before sessions
    # were recorded; "": in none of them). Rows stored before venues were are KRX's.
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        # The top of the book in the symbol's index: a spread, a mid or an imbalance over a
        # day reads the index alone, not the 40 level columns of every row (the day's mean
        # spread of every symbol, 300,000 books on SQLite: 682 ms, 39 ms so); 1.5 % more
        # time to write, 5 % more bytes.
        Index(
            "ix_order_books_top",  # the convention's name is past PostgreSQL's 63 characters
            "symbol",
            "exchange_ns",
            "ask_price_1",
            "bid_price_1",
            "ask_qty_1",
            "bid_qty_1",
        ),
        *by_trading_day("source", "seq", "exchange_ns"),
    )


class MarketStatusRow(Audited, Base):
    """Track B's market-operation records (H0STMKO0, H0NXMKO0): halts, VIs, session events."""

    __tablename__ = "market_status"
    symbol: Mapped[str] = mapped_column(String(16))
    received_ns: Mapped[int]
    halted: Mapped[bool]
    halt_reason: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(8))
    expected_operation: Mapped[str] = mapped_column(String(8))
    extension: Mapped[str] = mapped_column(String(8))
    allocation: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    vi: Mapped[str] = mapped_column(String(8))
    overtime_vi: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str | None] = mapped_column(String(8))
    account: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "symbol", "received_ns"),)


class ProgramTradeRow(Audited, Base):
    """Track B's program-trading records (H0STPGM0, H0NXPGM0, H0UNPGM0): the day's so far."""

    __tablename__ = "program_trades"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int]
    received_ns: Mapped[int]
    sell_qty: Mapped[int]
    sell_value: Mapped[int]
    buy_qty: Mapped[int]
    buy_value: Mapped[int]
    net_qty: Mapped[int]
    net_value: Mapped[int]
    ask_residual: Mapped[int]
    bid_residual: Mapped[int]
    net_residual: Mapped[int]
    account: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "symbol", "exchange_ns"),)


class BrokerTradeRow(AuditedMany, Base):
    """Track B's brokers' trading records (H0STMBC0, H0NXMBC0, H0UNMBC0): one row a rank.

    Each record's ranked brokers (the sellers', then the buyers', ``idx`` in that order), each
    row holding the record's foreign brokers' totals too; a record with no broker ranked yet
    leaves no row.
    """

    __tablename__ = "broker_trades"
    symbol: Mapped[str] = mapped_column(String(16))
    received_ns: Mapped[int]
    side: Mapped[str] = mapped_column(String(8))  # "sell" | "buy"
    rank: Mapped[int]
    broker: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int]
    qty_change: Mapped[int]
    share_pct: Mapped[Decimal]
    foreign_broker: Mapped[bool]
    foreign_sell_qty: Mapped[int]
    foreign_buy_qty: Mapped[int]
    foreign_sell_change: Mapped[int]
    foreign_buy_change: Mapped[int]
    foreign_net_qty: Mapped[int]
    foreign_sell_share_pct: Mapped[Decimal]
    foreign_buy_share_pct: Mapped[Decimal]
    account: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "symbol", "received_ns"),)


class AuctionExpectedRow(Audited, Base):
    """Track B's auction expected matches (H0STANC0, H0NXANC0, H0UNANC0), as sent."""

    __tablename__ = "auction_expected"
    symbol: Mapped[str] = mapped_column(String(16))
    exchange_ns: Mapped[int]
    received_ns: Mapped[int]
    price: Mapped[int]
    change: Mapped[int]
    volume: Mapped[int]
    cumulative_volume: Mapped[int]
    ask_price: Mapped[int]
    bid_price: Mapped[int]
    ask_qty: Mapped[int]
    bid_qty: Mapped[int]
    total_ask_qty: Mapped[int]
    total_bid_qty: Mapped[int]
    hour_class: Mapped[str] = mapped_column(String(8))
    halted: Mapped[bool]
    account: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "symbol", "exchange_ns"),)


class ViNoticeRow(Audited, Base):
    """Track B's volatility interruptions as KIS sent them (H0STVIC0, H0NXVIC0, H0UNVIC0)."""

    __tablename__ = "vi_notices"
    symbol: Mapped[str] = mapped_column(String(16))
    trade_date: Mapped[date]
    received_ns: Mapped[int]
    applies: Mapped[bool]
    started_ns: Mapped[int]
    ended_ns: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))
    market_class: Mapped[str] = mapped_column(String(8))
    price: Mapped[int]
    static_base: Mapped[int]
    static_move_pct: Mapped[Decimal]
    dynamic_base: Mapped[int]
    dynamic_move_pct: Mapped[Decimal]
    count: Mapped[int]
    etp: Mapped[bool]
    exchange: Mapped[str | None] = mapped_column(String(8))
    account: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (Index(None, "symbol", "received_ns"),)


class InvestorFlowRow(Audited, Base):
    """The flows job's final net buying by investor group: a stock, day and venue."""

    __tablename__ = "investor_flows"
    symbol: Mapped[str] = mapped_column(String(16))
    trade_date: Mapped[date]
    venue: Mapped[str] = mapped_column(String(8))
    individual_qty: Mapped[int]
    foreign_qty: Mapped[int]
    institution_qty: Mapped[int]
    other_corp_qty: Mapped[int]
    individual_value: Mapped[int]
    foreign_value: Mapped[int]
    institution_value: Mapped[int]
    other_corp_value: Mapped[int]
    volume: Mapped[int]
    fetched_ns: Mapped[int]

    __table_args__ = (Index(None, "trade_date", "symbol", "venue"),)


class ProgramTradeDailyRow(Audited, Base):
    """The flows job's program trading of a stock on a day and venue."""

    __tablename__ = "program_trades_daily"
    symbol: Mapped[str] = mapped_column(String(16))
    trade_date: Mapped[date]
    venue: Mapped[str] = mapped_column(String(8))
    sell_qty: Mapped[int]
    buy_qty: Mapped[int]
    net_qty: Mapped[int]
    sell_value: Mapped[int]
    buy_value: Mapped[int]
    net_value: Mapped[int]
    fetched_ns: Mapped[int]

    __table_args__ = (Index(None, "trade_date", "symbol", "venue"),)


class VolatilityInterruptionRow(Audited, Base):
    """The flows job's volatility interruptions: one of a stock on a day, as KIS lists it."""

    __tablename__ = "volatility_interruptions"
    symbol: Mapped[str] = mapped_column(String(16))
    trade_date: Mapped[date]
    started_ns: Mapped[int]
    ended_ns: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))
    price: Mapped[int]
    static_base: Mapped[int]
    static_move_pct: Mapped[Decimal]
    dynamic_base: Mapped[int]
    dynamic_move_pct: Mapped[Decimal]
    count: Mapped[int]
    fetched_ns: Mapped[int]

    __table_args__ = (Index(None, "trade_date", "symbol"),)


class InvestorEstimateRow(Audited, Base):
    """The investor job's intraday estimates: a stock's net buying at one posting of a day."""

    __tablename__ = "investor_estimates"
    symbol: Mapped[str] = mapped_column(String(16))
    trade_date: Mapped[date]
    posting: Mapped[int]
    foreign_qty: Mapped[int]
    institution_qty: Mapped[int]
    total_qty: Mapped[int]
    fetched_ns: Mapped[int]

    __table_args__ = (Index(None, "trade_date", "symbol", "posting"),)


class RealtimeRejectedRow(Audited, Base):
    """Track B's refused real-time records and frames: why, and the frame's text (4 KB at most).

    Bounded by the producer (`workers.track_b.rejections`): a few kept whole per account,
    kind and symbol a day, the rest only counted.
    """

    __tablename__ = "realtime_rejections"
    account: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(16))
    tr_id: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    received_ns: Mapped[int] = mapped_column(index=True)
    exchange_ns: Mapped[int]
    text: Mapped[str] = mapped_column(String(4096))
    length: Mapped[int]


class MinuteBarsRow(Audited, Base):
    """One row per minute-bar event, even an empty recovery, so every seq is accounted for."""

    __tablename__ = "minute_bar_batches"
    symbol: Mapped[str] = mapped_column(String(16))
    quality: Mapped[str] = mapped_column(String(16))
    gap_id: Mapped[str] = mapped_column(String(64), index=True)
    bar_count: Mapped[int]
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")


class BarRow(AuditedMany, Base):
    """Minute bars, live or recovered; the best row per (symbol, minute) is chosen on read."""

    __tablename__ = "minute_bars"
    symbol: Mapped[str] = mapped_column(String(16))
    minute_ns: Mapped[int] = mapped_column(primary_key=True)
    open: Mapped[int]
    high: Mapped[int]
    low: Mapped[int]
    close: Mapped[int]
    volume: Mapped[int]
    value: Mapped[int]
    quality: Mapped[str] = mapped_column(String(16))  # "live" | "recovered"
    gap_id: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        Index(None, "symbol", "minute_ns"),
        *by_trading_day("source", "seq", "idx", "minute_ns"),
    )


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
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))
    # A volume-chain gap's shares missing and the cumulative volumes around them; NULL else
    missing_volume: Mapped[int | None]
    cum_before: Mapped[int | None]
    cum_after: Mapped[int | None]
    # The exchange's trades gap recovery stored for it, and the shares they closed
    trades: Mapped[int] = mapped_column(server_default="0")
    trade_volume: Mapped[int] = mapped_column(server_default="0")


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
    # Detection rows: the gap's venue and its session at the start; state rows: NULL.
    venue: Mapped[str | None] = mapped_column(String(8))
    trading_session: Mapped[str | None] = mapped_column(String(24))


class SlotDecisionRow(Audited, Base):
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
    venue: Mapped[str] = mapped_column(String(8), server_default="KRX")
    trading_session: Mapped[str | None] = mapped_column(String(24))

    # Gap recovery's sweep reads the day's holdings (`watched_since`) every 30 s
    __table_args__ = (Index(None, "produced_ns"),)


class SlotOverflowRow(Audited, Base):
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
