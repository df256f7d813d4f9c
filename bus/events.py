"""The closed, tagged union of every event on the bus, and the rules that keep the wire stable.

Every event is a frozen Struct declaring ``kw_only`` itself (msgspec does not inherit it) with an
explicit ``tag``, never reused, so renaming a class never changes the wire. New fields get
defaults, old ones keep their types, and no ``forbid_unknown_fields`` (an older reader skips a
newer field). Prices and volumes are ``int`` or ``Decimal`` (rates, overseas prices), never
float; instants are UTC nanoseconds (``*_ns``); trading days are ``datetime.date`` in KST.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal, get_args

import msgspec

__all__ = [
    "EVENTS_LOST",
    "EVENT_TYPES",
    "Alert",
    "AlertAcked",
    "AlertDelivery",
    "AlertResolved",
    "AuctionExpected",
    "Bar",
    "BrokerRank",
    "BrokerTrade",
    "DayArchived",
    "EnrichmentRun",
    "EtfDaily",
    "EtfDetail",
    "EtfHolding",
    "EtfHoldings",
    "EtfListing",
    "EtfRun",
    "Event",
    "GapDetected",
    "GapReason",
    "GapState",
    "GapStateChanged",
    "HoldingKind",
    "HostRoster",
    "InvestorEstimate",
    "InvestorFlow",
    "ListingChanged",
    "MarketStatus",
    "MasterFileChecked",
    "MasterFileReview",
    "MinuteBars",
    "MinuteCheck",
    "MinuteStatus",
    "OrderBook",
    "PhaseChanged",
    "PriceSnapshot",
    "ProgramTrade",
    "ProgramTradeDaily",
    "PruneRequested",
    "RealtimeRejected",
    "Reconciliation",
    "RosterAccount",
    "SectorCodes",
    "SectorMetadata",
    "SeqsLost",
    "Severity",
    "SlotDecision",
    "SlotOverflow",
    "SlotTrigger",
    "StreamStateChanged",
    "TokenRefreshed",
    "TrackACycle",
    "TradeTick",
    "TradingSession",
    "UniverseMember",
    "UniverseSnapshot",
    "Venue",
    "ViNotice",
    "VolatilityInterruption",
    "WorkerLifecycle",
    "event_tag",
]


# Where a record traded: KRX, Nextrade, or KIS's combined (통합) feed, which names neither.
Venue = Literal["KRX", "NXT", "combined"]
# Which of its venue's sessions a record falls in, by the venue's configured hours
# (observer.calendar.venues); "" where it falls in none (a venue's dead hours).
TradingSession = Literal[
    "",
    "pre_market",
    "opening_auction",
    "regular",
    "closing_auction",
    "after_market",
    "off_hours_close",  # KRX 시간외 종가
    "off_hours_auction",  # KRX 시간외 단일가
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Base of all bus events; the subclass's ``tag`` names it on the wire."""


# --------------------------------------------------------------------------- market data


class PriceSnapshot(_Event, tag="price_snapshot", frozen=True, kw_only=True):
    """Track A: one REST current-price snapshot (FHKST01010100) of one symbol in one cycle."""

    cycle_id: str  # "YYYYMMDD-HHMM" (KST) of the scheduled cycle start
    symbol: str
    market: str  # "KOSPI" | "KOSDAQ" | "KONEX"
    observed_ns: int  # when the REST answer was received (UTC ns)
    price: int  # stck_prpr
    change: int  # prdy_vrss, signed
    change_rate: Decimal  # prdy_ctrt, percent
    open: int
    high: int
    low: int
    volume: int  # acml_vol, shares since the open
    traded_value: int  # acml_tr_pbmn, KRW since the open
    upper_limit: int = 0
    lower_limit: int = 0
    base_price: int = 0  # stck_sdpr (previous close for ordinary days)
    market_cap: int = 0  # KRW; 0 when unknown
    halted: bool = False
    venue: Venue = "KRX"  # the market it asked for (FID_COND_MRKT_DIV_CODE J: KRX)
    trading_session: TradingSession = ""  # the venue's session at observed_ns


class TrackACycle(_Event, tag="track_a_cycle", frozen=True, kw_only=True):
    """Track A: the summary of one 10-minute snapshot cycle over the universe.

    KRX's cycles ask every member; Nextrade's (``venue`` "NXT") the members it trades.

    ``universe_size == carried + succeeded + failed + unfinished``; ``missing`` lists the
    symbols of the last two, which have no snapshot in this cycle.
    """

    cycle_id: str
    trade_date: date
    scheduled_ns: int
    started_ns: int
    finished_ns: int
    universe_size: int
    succeeded: int
    failed: int  # symbols whose every attempt failed
    missing: tuple[str, ...] = ()  # symbols without a snapshot in this cycle
    requested: int = 0  # symbols this run asked for (the universe minus ``carried``)
    carried: int = 0  # symbols stored by an earlier run of the same cycle (a restart)
    unfinished: int = 0  # symbols not reached when the next cycle was due
    calls: int = 0  # REST calls made, retries included
    rate_per_s: Decimal = Decimal(0)  # calls per second achieved
    limit_per_s: Decimal = Decimal(0)  # the REST rate this process may use
    overran: bool = False  # the cycle was cut off at the next cycle's start
    venue: Venue = "KRX"  # whose prices: KRX's (FID J), or Nextrade's of its names (NX)


class TradeTick(_Event, tag="trade_tick", frozen=True, kw_only=True):
    """Track B: one execution from the H0STCNT0 real-time stream."""

    symbol: str
    exchange_ns: int  # BSOP_DATE + STCK_CNTG_HOUR (KST) as UTC ns
    received_ns: int
    price: int
    qty: int  # CNTG_VOL
    cum_volume: int  # ACML_VOL
    cum_value: int  # ACML_TR_PBMN
    change_rate: Decimal  # PRDY_CTRT
    ask1: int = 0
    bid1: int = 0
    strength: Decimal = Decimal(0)  # CTTR, 체결강도
    side: str = ""  # CCLD_DVSN as sent (code values unconfirmed)
    session: str = ""  # NEW_MKOP_CLS_CODE
    halted: bool = False
    account: str = ""  # the account whose WebSocket delivered it
    # MARKET_CLS_CODE as sent (1 pre, 2 regular, 3 after, 5 closing); None: a layout without it
    market_session: str | None = None
    venue: Venue = "KRX"  # its TR's: H0STCNT0 KRX, H0NXCNT0 NXT, H0UNCNT0 combined
    trading_session: TradingSession = ""  # the venue's session at exchange_ns


class OrderBook(_Event, tag="order_book", frozen=True, kw_only=True):
    """Track B: one ten-level order book from the H0STASP0 real-time stream."""

    symbol: str
    exchange_ns: int
    received_ns: int
    ask_prices: tuple[int, ...]
    ask_qtys: tuple[int, ...]
    bid_prices: tuple[int, ...]
    bid_qtys: tuple[int, ...]
    total_ask_qty: int
    total_bid_qty: int
    expected_price: int = 0  # ANTC_CNPR during auctions
    expected_qty: int = 0
    account: str = ""
    # The mid-point and the session, in layouts that carry them (None: absent, or sent empty).
    mid_price: Decimal | None = None  # MID_PRC; a decimal: a mid-point may fall between ticks
    mid_qty: int | None = None  # MIDP_TOTAL_RSQN
    mid_side: str | None = None  # MIDP_CLS_CODE as sent
    market_session: str | None = None  # MARKET_CLS_CODE as sent
    venue: Venue = "KRX"  # its TR's: H0STASP0 KRX, H0NXASP0 NXT, H0UNASP0 combined
    trading_session: TradingSession = ""  # the venue's session at exchange_ns


class MarketStatus(_Event, tag="market_status", frozen=True, kw_only=True):
    """Track B: one market-operation record of a watched symbol (H0STMKO0, Nextrade's H0NXMKO0).

    KIS sends one at the symbol's session events, at a VI's start and end, and at a halt. The
    record has no time of its own: ``received_ns`` stamps it. The codes are as sent (their
    tables in docs/kis.md); ``halt_reason`` is "" where KIS sends ``(null)``.
    """

    symbol: str
    received_ns: int
    halted: bool  # TRHT_YN
    halt_reason: str  # TR_SUSP_REAS_CNTT
    operation: str  # MKOP_CLS_CODE: 112 the open, 164 a market halt, 174 a circuit breaker...
    expected_operation: str  # ANTC_MKOP_CLS_CODE: 311 the opening auction's expected prices
    extension: str  # MRKT_TRTM_CLS_CODE: an auction extended at the exchange's discretion
    allocation: str  # DIVI_APP_CLS_CODE
    status: str  # ISCD_STAT_CLS_CODE: 58 halted, 51 administrative issue...
    vi: str  # VI_CLS_CODE: "Y" while a volatility interruption applies
    overtime_vi: str  # OVTM_VI_CLS_CODE
    exchange: str | None = None  # EXCH_CLS_CODE, where the layout has it
    account: str = ""
    venue: Venue = "KRX"  # its TR's
    trading_session: TradingSession = ""  # the venue's session at received_ns


class ProgramTrade(_Event, tag="program_trade", frozen=True, kw_only=True):
    """Track B: a watched symbol's program trading so far today (H0STPGM0, H0NXPGM0, H0UNPGM0).

    Quantities and values are the day's so far as KIS reports them (net: bought less sold);
    the residuals are of the book's program orders at ``exchange_ns``.
    """

    symbol: str
    exchange_ns: int  # STCK_CNTG_HOUR on the KST day of receipt
    received_ns: int
    sell_qty: int  # SELN_CNQN
    sell_value: int  # SELN_TR_PBMN
    buy_qty: int  # SHNU_CNQN
    buy_value: int  # SHNU_TR_PBMN
    net_qty: int  # NTBY_CNQN
    net_value: int  # NTBY_TR_PBMN
    ask_residual: int  # SELN_RSQN
    bid_residual: int  # SHNU_RSQN
    net_residual: int  # WHOL_NTBY_QTY
    account: str = ""
    venue: Venue = "KRX"  # its TR's
    trading_session: TradingSession = ""


class BrokerRank(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One broker (an exchange member) among the five a side's volume ranks first today."""

    side: Literal["sell", "buy"]
    rank: int  # 1 the largest
    broker: str  # SELN_MBCR_NOn / SHNU_MBCR_NOn: its exchange member number
    name: str  # SELN2_MBCR_NAMEn / BYOV_MBCR_NAMEn
    name_en: str  # SELN2_MBCR_ENG_NAMEn / BYOV_MBCR_ENG_NAMEn
    qty: int  # TOTAL_SELN_QTYn / TOTAL_SHNU_QTYn: the day's so far
    qty_change: int  # SELN_QTY_ICDCn / SHNU_QTY_ICDCn: since the broker's last record
    share_pct: Decimal  # SELN_MBCR_RLIMn / SHNU_MBCR_RLIMn: of the day's volume
    foreign_broker: bool  # SELN_MBCR_GLOB_YN_n / SHNU_MBCR_GLOB_YN_n: a foreign broker


class BrokerTrade(_Event, tag="broker_trade", frozen=True, kw_only=True):
    """Track B: a watched symbol's brokers' trading so far today (H0STMBC0, H0NXMBC0, H0UNMBC0).

    The five brokers each side's volume ranks first (``ranks``: the sellers' then the
    buyers', by rank; a rank KIS sends empty is left out) and the foreign brokers' totals.
    The record has no time of its own: ``received_ns`` stamps it.
    """

    symbol: str
    received_ns: int
    ranks: tuple[BrokerRank, ...]
    foreign_sell_qty: int  # GLOB_TOTAL_SELN_QTY
    foreign_buy_qty: int  # GLOB_TOTAL_SHNU_QTY
    foreign_sell_change: int  # GLOB_TOTAL_SELN_QTY_ICDC
    foreign_buy_change: int  # GLOB_TOTAL_SHNU_QTY_ICDC
    foreign_net_qty: int  # GLOB_NTBY_QTY: bought less sold
    foreign_sell_share_pct: Decimal  # GLOB_SELN_RLIM
    foreign_buy_share_pct: Decimal  # GLOB_SHNU_RLIM
    account: str = ""
    venue: Venue = "KRX"  # its TR's
    trading_session: TradingSession = ""  # the venue's session at received_ns


class InvestorFlow(_Event, tag="investor_flow", frozen=True, kw_only=True):
    """The flows job: one stock's final net buying by investor group on a day and venue.

    FHPTJ04160001 after the venue's close; quantities in shares, values in millions of KRW
    as KIS sends them.
    """

    symbol: str
    trade_date: date
    venue: Venue  # KRX or NXT: the market asked (J, NX)
    individual_qty: int  # prsn_ntby_qty
    foreign_qty: int  # frgn_ntby_qty
    institution_qty: int  # orgn_ntby_qty
    other_corp_qty: int  # etc_corp_ntby_vol
    individual_value: int  # prsn_ntby_tr_pbmn, KRW millions
    foreign_value: int
    institution_value: int
    other_corp_value: int
    volume: int  # acml_vol: the day's on the venue
    fetched_ns: int


class ProgramTradeDaily(_Event, tag="program_trade_daily", frozen=True, kw_only=True):
    """The flows job: one stock's program trading on a day and venue (FHPPG04650201)."""

    symbol: str
    trade_date: date
    venue: Venue
    sell_qty: int  # whol_smtn_seln_vol
    buy_qty: int  # whol_smtn_shnu_vol
    net_qty: int  # whol_smtn_ntby_qty
    sell_value: int  # whol_smtn_seln_tr_pbmn, as KIS sends it (KRW, UNCONFIRMED)
    buy_value: int
    net_value: int
    fetched_ns: int


class VolatilityInterruption(_Event, tag="volatility_interruption", frozen=True, kw_only=True):
    """The flows job: one volatility interruption (VI) of a stock on a day (FHPST01390000).

    KIS's list names no venue (KRX's; whether Nextrade's are in it is UNCONFIRMED).
    """

    symbol: str
    trade_date: date
    started_ns: int  # cntg_vi_hour on the day (KST)
    ended_ns: int  # vi_cncl_hour on the day; 0: not lifted when asked
    kind: str  # vi_kind_code: 1 static, 2 dynamic, 3 both
    price: int  # vi_prc: the price that set it off
    static_base: int  # vi_stnd_prc
    static_move_pct: Decimal  # vi_dprt
    dynamic_base: int  # vi_dmc_stnd_prc
    dynamic_move_pct: Decimal  # vi_dmc_dprt
    count: int  # vi_count: the symbol's VIs of the day so far
    fetched_ns: int


class ViNotice(_Event, tag="vi_notice", frozen=True, kw_only=True):
    """Track B: a volatility interruption starting or lifted (H0STVIC0, H0NXVIC0, H0UNVIC0).

    As KIS sends it the moment it happens, for the whole market when registered under the
    business date (`[track_b] vi_feed`). The combined feed's name their venue in
    ``exchange`` (1 KRX, 2 NXT); KRX's and Nextrade's are their TR's ``venue``.
    """

    symbol: str
    trade_date: date  # BSOP_DATE
    received_ns: int
    applies: bool  # VI_CLS_CODE "Y": in force; "N": lifted
    started_ns: int  # CNTG_VI_HOUR on the day (KST); 0 if sent empty
    ended_ns: int  # VI_CNCL_HOUR on the day; 0 while in force
    kind: str  # VI_KIND_CODE: 1 static, 2 dynamic, 3 both
    market_class: str  # MRKT_DIV_CLS_CODE, as sent
    price: int  # VI_PRC: the price that set it off
    static_base: int  # VI_STND_PRC
    static_move_pct: Decimal  # VI_DPRT
    dynamic_base: int  # VI_DMC_STND_PRC
    dynamic_move_pct: Decimal  # VI_DMC_DPRT
    count: int  # VI_COUNT: the symbol's VIs of the day so far
    etp: bool  # ETP_YN
    exchange: str | None = None  # EXCH_CLS_CODE, the combined feed's alone
    account: str = ""
    venue: Venue = "KRX"  # its TR's
    trading_session: TradingSession = ""  # the venue's session at received_ns


class AuctionExpected(_Event, tag="auction_expected", frozen=True, kw_only=True):
    """Track B: an auction's expected match for a symbol (H0STANC0, H0NXANC0, H0UNANC0).

    KIS documents these records by H0STCNT0's field names alone; its example (the opening
    auction, ``hour_class`` B) carries the expected price in STCK_PRPR and volumes in
    CNTG_VOL and ACML_VOL. The fields are kept as sent, under those names' meanings; the
    path of expected prices is what no later request can give.
    """

    symbol: str
    exchange_ns: int  # STCK_CNTG_HOUR on the KST day of receipt
    received_ns: int
    price: int  # STCK_PRPR: the expected match price
    change: int  # PRDY_VRSS, signed: against the previous close
    volume: int  # CNTG_VOL
    cumulative_volume: int  # ACML_VOL
    ask_price: int  # ASKP1
    bid_price: int  # BIDP1
    ask_qty: int  # ASKP_RSQN1
    bid_qty: int  # BIDP_RSQN1
    total_ask_qty: int  # TOTAL_ASKP_RSQN
    total_bid_qty: int  # TOTAL_BIDP_RSQN
    # HOUR_CLS_CODE: B before the open, A after the close, C a VI's or after 09:00, D the
    # after-hours single price
    hour_class: str
    halted: bool  # TRHT_YN
    account: str = ""
    venue: Venue = "KRX"  # its TR's
    trading_session: TradingSession = ""


class InvestorEstimate(_Event, tag="investor_estimate", frozen=True, kw_only=True):
    """The investor job: one stock's estimated net buying at one of the day's postings.

    KIS's staff post foreigners' and institutions' net buying so far in the day (shares,
    HHPTJ04160200) at 09:30 (foreigners), 10:00 (institutions), 11:20, 13:20 and 14:30
    (both); KIS answers today's alone.
    """

    symbol: str
    trade_date: date
    posting: int  # bsop_hour_gb: 1 09:30, 2 10:00, 3 11:20, 4 13:20, 5 14:30
    foreign_qty: int
    institution_qty: int
    total_qty: int
    fetched_ns: int


class RealtimeRejected(_Event, tag="realtime_rejected", frozen=True, kw_only=True):
    """Track B: a real-time record or frame refused, never stored as data: why, and its text.

    ``kind`` names the check it failed (``unregistered``, ``price_not_positive``,
    ``outside_limits``, ``malformed_frame``, ...); ``symbol`` and ``tr_id`` are as sent, ""
    where none reads. ``text`` is the frame's text cut to ``TEXT_LENGTH`` characters
    (``length``: the whole frame's, in bytes); every text is cut to its column when the
    event is made (and when decoded), NULs written out, so that the writer refuses none.
    """

    TEXT_LENGTH = 4096  # a real frame of ten trades is about 2,500 characters
    _COLUMNS = (("account", 64), ("kind", 32), ("symbol", 16), ("tr_id", 16), ("reason", 200))

    account: str
    kind: str
    symbol: str
    tr_id: str
    reason: str
    received_ns: int
    exchange_ns: int = 0  # the record's stamp (UTC ns) where it read
    text: str = ""
    length: int = 0

    def __post_init__(self) -> None:
        for name, size in (*RealtimeRejected._COLUMNS, ("text", RealtimeRejected.TEXT_LENGTH)):
            value: str = getattr(self, name)
            kept = _cut(value, size)
            if kept is not value:
                msgspec.structs.force_setattr(self, name, kept)


class Bar(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One one-minute OHLCV bar; ``minute_ns`` is the bar's opening instant (UTC ns)."""

    minute_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    value: int = 0
    trading_session: TradingSession = ""  # its venue's session at minute_ns


class MinuteBars(_Event, tag="minute_bars", frozen=True, kw_only=True):
    """Minute bars of one symbol: built live from ticks, or recovered over REST for a gap."""

    symbol: str
    quality: Literal["live", "recovered"]
    bars: tuple[Bar, ...]
    gap_id: str = ""  # set when recovered for a gap
    venue: Venue = "KRX"  # whose bars these are (FID_COND_MRKT_DIV_CODE J KRX, NX NXT, UN combined)


# --------------------------------------------------------------------------- gaps

GapState = Literal["detected", "recovering", "recovered", "unrecoverable", "marker_only"]
# Why a gap opened: the connection dropped, a symbol fell silent in session, a planned
# restart on a renewed approval key (Track B's gap detector, workers/track_b/gaps.py),
# Track B itself restarted (a crash) while the symbol held a slot, or the day's
# reconciliation found a minute short that no gap explained (a detection miss,
# workers/gap_recovery/verify.py), or a symbol left its slot while the feed ran behind
# (the trades it was still owed are never sent), or a trade record of it was refused by the
# decoder (a value no column can hold: the trade is lost all the same).
GapReason = Literal[
    "disconnect",
    "silence",
    "token_refresh",
    "process_restart",
    "reconciliation",
    "delivery_lag",
    "dropped_record",
    "volume_chain",  # a trade's cumulative volume beyond the previous trade's and its own
]


class GapDetected(_Event, tag="gap_detected", frozen=True, kw_only=True):
    """A span of real-time data that may be missing for one symbol."""

    gap_id: str
    symbol: str
    start_ns: int
    end_ns: int
    reason: GapReason
    account: str = ""
    venue: Venue = "KRX"  # the feed's (H0STCNT0: KRX)
    trading_session: TradingSession = ""  # its venue's session at start_ns
    # A volume-chain gap's shares missing, and the cumulative volumes around them (ACML_VOL
    # of the trade before, and of the one after less its own quantity); None: another kind
    missing_volume: int | None = None
    cum_before: int | None = None
    cum_after: int | None = None


class GapStateChanged(_Event, tag="gap_state_changed", frozen=True, kw_only=True):
    """A gap moved to a new state; ``bars`` counts the minute bars recovered so far.

    ``trades`` the exchange's trades recovered (published as `TradeTick` by gap recovery),
    and ``trade_volume`` the shares they closed of a volume-chain gap's ``missing_volume``.
    """

    gap_id: str
    state: GapState
    bars: int = 0
    detail: str = ""
    trades: int = 0
    trade_volume: int = 0


# A watched minute against the exchange's bar: the stream's volume equals the bar's
# (``complete``), falls short with no recovered bar (``short``), falls short and gap recovery
# has stored the bar (``recovered``), or exceeds it (``excess``: trades stored twice, or
# stamped into the wrong minute).
# "shifted": complete against the bar of the next (or previous) minute, KIS's bar label
# differing from [gap_recovery] bar_label by a minute.
MinuteStatus = Literal["complete", "short", "recovered", "excess", "shifted"]


class MinuteCheck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One watched minute of one symbol, the stream's trades against the exchange's bar."""

    minute_ns: int  # the minute's opening instant (UTC ns)
    status: MinuteStatus
    stored_volume: int  # the stream's trades stamped in the minute, summed
    bar_volume: int  # the bar's cntg_vol (0: KIS has no bar, no trade)
    stored_trades: int = 0  # KIS's bars carry no number of trades: for the record only
    gap_id: str = ""  # a short minute: the recorded gap that explains it, if any
    trading_session: TradingSession = ""  # its venue's session at minute_ns


class Reconciliation(_Event, tag="reconciliation", frozen=True, kw_only=True):
    """A symbol's watched minutes of a day compared with the exchange's final minute bars.

    ``misses`` counts the short minutes that no recorded gap explained: each was published
    as a ``reconciliation`` gap for gap recovery to fill. ``calls`` is what the bars cost.
    """

    trade_date: date
    symbol: str
    minutes: tuple[MinuteCheck, ...]
    missing_volume: int = 0  # the short minutes' shortfall, summed
    misses: int = 0
    calls: int = 0  # REST calls made for the bars, retries included
    venue: Venue = "KRX"  # the venue whose trades and bars were compared


# --------------------------------------------------------------------------- slots

# What put a symbol forward for a slot: a fired trigger (workers/track_b/triggers.py), an
# operator's pin ("manual"), the opening's snapshots at a restart ("context_sync"), or the
# default fill by market cap before any trigger fires ("market_cap").
SlotTrigger = Literal[
    "volume_surge", "trade_velocity", "volatility_spike", "manual", "context_sync", "market_cap"
]


class SlotDecision(_Event, tag="slot_decision", frozen=True, kw_only=True):
    """Track B slot manager: one allocation, replacement, release or expiry."""

    account: str
    action: Literal["allocate", "replace", "release", "expire"]
    symbol: str
    slot: int  # 0-based registration index within the account's session
    trigger: SlotTrigger
    score: Decimal
    reason: str
    replaced_symbol: str = ""
    expires_ns: int = 0
    venue: Venue = "KRX"  # the feed the registration is on (H0STCNT0: KRX)
    trading_session: TradingSession = ""  # its venue's session when decided


class SlotOverflow(_Event, tag="slot_overflow", frozen=True, kw_only=True):
    """A triggered symbol that found no slot: what fired, how strongly, what held the slots."""

    symbol: str
    trigger: SlotTrigger
    score: Decimal
    reason: str
    lowest_held_score: Decimal = Decimal(0)
    strength: Decimal = Decimal(0)  # the trigger's, 0..1
    measure: Decimal = Decimal(0)  # what fired it: a volume or range ratio, or trades/s
    market_cap: int = 0  # KRW; 0 when unknown


# --------------------------------------------------------------------------- reference data


class UniverseMember(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One member of the daily universe, ranked by market capitalisation (1 = largest)."""

    symbol: str
    market: str
    rank: int
    prev_close: int
    market_cap: int
    name: str = ""
    avg_volume_20d: int = 0  # shares, mean of the last 20 sessions
    atr_14: Decimal = Decimal(0)  # KRW, mean true range of the last 14 sessions
    # Nextrade's standing as KIS answered it that morning (CTPF1002R); None: not known (a paper
    # account cannot ask, or the call failed twice). KIS keeps no history: this is the record.
    nxt_eligible: bool | None = None  # Nextrade trades it
    nxt_halted: bool | None = None  # Nextrade has halted it
    # The market measures the master files list it under that morning (투자경고: "warning",
    # ...; `observer.market.after_markets.MEASURES`): what its after-markets trade depends on.
    measures: tuple[str, ...] = ()


class UniverseSnapshot(_Event, tag="universe_snapshot", frozen=True, kw_only=True):
    """The daily universe: previous close >= the threshold, not suspended, by market cap."""

    trade_date: date
    based_on: date  # the session whose close was used
    min_prev_close: int
    members: tuple[UniverseMember, ...]
    excluded: int = 0


class MasterFileChecked(_Event, tag="master_file_checked", frozen=True, kw_only=True):
    """One check of a KIS master file: sizes compared, and what a download found."""

    market: str  # the file's market code: "KOSPI", "KOSDAQ", "KONEX", "NAS", "NYS", ...
    file_name: str
    remote_size: int
    previous_size: int
    changed: bool
    downloaded: bool
    records: int = 0
    sha256: str = ""  # of the archive now current (empty when none is)
    forced: bool = False
    error: str = ""
    action: str = ""  # "skip" | "download" | "hold" | "approve" | "restore" | "resync"
    reason: str = ""  # why (the decision table's row, in words)
    added: int = 0  # listings new in this file (applied, or held for review)
    modified: int = 0
    removed: int = 0
    complete_pct: Decimal | None = None  # rows with every field, in percent
    review_id: str = ""  # set when the changes were held for review
    duration_ms: int = 0


class MasterFileReview(_Event, tag="master_file_review", frozen=True, kw_only=True):
    """A master-file change held for an operator, and what the operator decided."""

    review_id: str
    market: str
    file_name: str
    state: Literal["held", "approved", "rejected", "superseded"]
    reason: str
    added: int = 0
    modified: int = 0
    removed: int = 0
    records: int = 0
    sha256: str = ""


class ListingChanged(_Event, tag="listing_changed", frozen=True, kw_only=True):
    """A symbol appeared in, changed in, or left a master file."""

    change: Literal["new", "changed", "removed"]
    market: str
    symbol: str
    name: str
    name_en: str = ""
    exchange: str = ""
    currency: str = ""
    security_type: str = ""
    sector_code: str = ""
    changed_fields: tuple[str, ...] = ()
    region: str = ""  # "KR", "US", "CN", "HK", "JP", "VN"
    initial: bool = False  # part of the first load of its market, not a detected change
    industry_code: str = ""  # domestic: the KRX 중분류 (mid industry) code
    kospi200_sector: str = ""  # domestic KOSPI 200 members: their KOSPI 200 sector code
    # domestic: the market measures it is under (투자경고 "warning", 관리종목 "administrative",
    # ...: `observer.market.after_markets.MEASURES`), sorted
    measures: tuple[str, ...] = ()


class EtfDetail(_Event, tag="etf_detail", frozen=True, kw_only=True):
    """Daily ETF facts: AUM, NAV, premium/discount windows, holdings, 52-week range.

    The ``tracking_*`` fields are the signed **premium/discount** means over that many
    sessions (not tracking error, which is ``EtfDaily.tracking_error_rate``); the
    ``premium_abs_*`` fields are the means of its absolute value, ``n_*`` the sessions
    counted. A window is None below 80 % coverage.
    """

    trade_date: date
    symbol: str
    name: str
    price: int
    nav: Decimal
    aum: int  # KRW
    premium: Decimal  # (price - nav) / nav, percent, for the day
    tracking_20d: Decimal | None = None
    tracking_60d: Decimal | None = None
    tracking_120d: Decimal | None = None
    tracking_250d: Decimal | None = None
    holdings: int = 0
    high_52w: int = 0
    low_52w: int = 0
    underlying_index: str = ""
    issuer: str = ""
    premium_abs_20d: Decimal | None = None
    premium_abs_60d: Decimal | None = None
    premium_abs_120d: Decimal | None = None
    premium_abs_250d: Decimal | None = None
    n_20d: int = 0
    n_60d: int = 0
    n_120d: int = 0
    n_250d: int = 0
    high_52w_date: date | None = None
    low_52w_date: date | None = None
    range_52w_basis: str = ""  # "high_low" (daily highs and lows) or "close" (see below)
    range_52w_close_days: int = 0  # sessions of the 52 weeks whose close stood in for high/low
    aum_source: str = ""  # "kis" (etf_ntas_ttam), "krx" (net assets), "units_x_nav"
    aum_check_pct: Decimal | None = None  # aum against listed units x NAV, percent off
    market_value: int = 0  # listed units x price: market capitalisation, not net assets


class EtfListing(_Event, tag="etf_listing", frozen=True, kw_only=True):
    """An ETF appeared in, changed in, or left the KRX ETF list (MDCSTAT04601)."""

    change: Literal["new", "changed", "removed"]
    symbol: str  # ISU_SRT_CD, alphanumeric
    isin: str = ""
    name: str = ""  # ISU_ABBRV
    name_full: str = ""  # ISU_NM
    name_en: str = ""
    listed_on: date | None = None
    underlying_index: str = ""
    index_provider: str = ""
    multiple: Decimal | None = None  # +1, +2, -1, -2; None: a label not understood
    multiple_label: str = ""  # IDX_CALC_INST_NM2 as KRX writes it
    replication: str = ""
    base_market: str = ""
    asset_class: str = ""
    listed_units: int | None = None
    manager: str = ""  # COM_ABBRV, the asset manager
    cu_units: int | None = None
    fee_pct: Decimal | None = None  # total fee, percent a year
    tax_type: str = ""
    changed_fields: tuple[str, ...] = ()
    initial: bool = False  # part of the first load, not a detected change
    origin: str = "krx"  # "krx" | "kis_master"


class EtfDaily(_Event, tag="etf_daily", frozen=True, kw_only=True):
    """One ETF's session: price, NAV, premium, net assets and units.

    Append-only: the newest row per (symbol, trade_date) wins, so a NAV published late
    replaces a provisional row. Missing figures are None, never 0.
    """

    trade_date: date
    symbol: str
    close: int | None = None
    open: int | None = None
    high: int | None = None
    low: int | None = None
    volume: int | None = None
    nav: Decimal | None = None
    premium_pct: Decimal | None = None  # KIS dprt (괴리율), percent
    premium_calc_pct: Decimal | None = None  # (close - nav) / nav x 100
    net_assets_krw: int | None = None
    listed_units: int | None = None
    circulating_units: int | None = None
    holdings: int | None = None
    tracking_error_rate: Decimal | None = None  # KIS trc_errt
    nav_final: bool = True  # False: the NAV was not published yet
    origin: str = "kis"  # "kis" (FHPST02400000), "kis_series" (FHPST02440200), "krx"


HoldingKind = Literal["stock", "cash", "futures", "other"]


class EtfHolding(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One line of an ETF's constituents (FHKST121600C0 ``output2``)."""

    code: str  # stck_shrn_iscd: a 6-character stock code, or a 12-character line code
    name: str = ""
    kind: HoldingKind = "other"
    weight_pct: Decimal | None = None  # etf_cnfg_issu_rlim; negative for a short line
    value_krw: int | None = None  # etf_vltn_amt: the line's value within the ETF


class EtfHoldings(_Event, tag="etf_holdings", frozen=True, kw_only=True):
    """An ETF's constituents on one session, every line (cash and futures included).

    Append-only: the newest set per (symbol, trade_date) wins. ``reported_count`` is the
    count the same call's ``output1`` gives, ``quote_count`` FHPST02400000's for the day
    (None: not known); cash and futures lines are counted by both.
    """

    trade_date: date
    symbol: str
    lines: tuple[EtfHolding, ...]
    reported_count: int | None = None
    quote_count: int | None = None
    pages: int = 1  # FHKST121600C0 answers it took (continued with tr_cont)


class EtfRun(_Event, tag="etf_run", frozen=True, kw_only=True):
    """One run of an ETF job: what it asked, what it got, what it applied."""

    job: str  # "etf_list" | "etf_daily" | "etf_backfill" | "etf_holdings"
    trade_date: date
    applied: bool  # False: the answer was refused and yesterday's data kept
    reason: str = ""
    listed: int = 0  # ETFs in the list (the answer's, or the one kept)
    collected: int = 0  # ETFs with a row for trade_date
    calls: int = 0
    failures: int = 0
    have: dict[str, int] = {}  # field -> ETFs whose row has it (of ``listed``): coverage
    duration_ms: int = 0


class SectorMetadata(_Event, tag="sector_metadata", frozen=True, kw_only=True):
    """Sector classification of one symbol: KIS sector code mapped to GICS, or a fallback."""

    region: str  # "KR", "US", "CN", "HK", "JP", "VN"
    symbol: str
    kis_sector_code: str
    gics_sector: str
    gics_industry: str = ""
    # "kis_map" | "kis_detail" | "kis_info" | "fallback" | "manual" | "unresolved"
    source: str = "kis_map"
    confidence: Decimal = Decimal(1)
    # Added for the enrich job (gics_sector above holds the sector's name):
    market: str = ""  # the instruments key: "NAS", "HKS", ...
    exchange: str = ""  # HHDFS76370100's EXCD
    kis_sector_name: str = ""
    gics_sector_code: str = ""  # "45"; "" when unresolved
    gics_ig_code: str = ""  # "4530" when known
    gics_ig: str = ""
    fallback_sector_key: str = ""  # the fallback source's keys, as it spells them
    fallback_industry_key: str = ""
    mapping_version: str = ""  # config/sector_map.toml's mapping_version


class SectorCodes(_Event, tag="sector_codes", frozen=True, kw_only=True):
    """HHDFS76370100's industry catalog of one overseas exchange: icod -> KIS name.

    Codes are normalised to the master file's 4 characters ("010" -> "0010").
    """

    exchange: str
    codes: dict[str, str] = {}


class EnrichmentRun(_Event, tag="enrichment_run", frozen=True, kw_only=True):
    """One region of one ``observer enrich run``: how its symbols were classified."""

    region: str
    mode: str  # "incremental" | "force"
    total: int = 0  # stocks of the region (ETPs are not enriched)
    fresh_skipped: int = 0  # classified recently enough (incremental)
    manual: int = 0
    kis_mapped: int = 0
    fallback_ok: int = 0
    fallback_failed: int = 0  # errors after retries: the symbol keeps what it had
    unresolved: int = 0  # no code mapping, no profile (or no fallback suffix)
    deferred: int = 0  # left for the next run (breaker open, or stopped)
    changed: int = 0  # symbols whose GICS sector differs from the one stored
    retries: int = 0
    breaker_opens: int = 0
    calls: int = 0  # fallback requests made
    duration_ms: int = 0
    mapping_version: str = ""
    kis_detail: int = 0  # classified by HHDFS76200200's sector name
    kis_info: int = 0  # classified by CTPF1702R's prdt_clsf_cd/name
    kis_calls: int = 0  # per-symbol KIS lookups and cross-check calls of the run
    cross_compared: int = 0  # stocks of the region the HHDFS76370000 cross-check compared
    cross_disagreeing: int = 0
    cross_disagreements: tuple[str, ...] = ()  # "NAS:XYZ 0330 -> 0260", at most 200


# --------------------------------------------------------------------------- operations


class PhaseChanged(_Event, tag="phase_changed", frozen=True, kw_only=True):
    """The operation timeline entered a phase (names are the scheduler's, e.g. "track_a")."""

    phase: str
    trade_date: date
    scheduled_ns: int


class TokenRefreshed(_Event, tag="token_refreshed", frozen=True, kw_only=True):
    """A token or approval key was issued; never carries the secret itself."""

    account: str  # the account's alias, not its number
    kind: Literal["access_token", "approval_key"]
    reason: str  # "scheduled" | "proactive" | "premarket" | "emergency"
    issued_ns: int
    expires_ns: int


Severity = Literal["info", "warning", "error", "critical"]


class Alert(_Event, tag="alert", frozen=True, kw_only=True):
    """Something an operator should see; ``code`` is stable, ``message`` is for humans.

    ``(code, subject)`` names the condition (``subject``: the program, account, ... it is
    about; empty for a condition of the whole system): an `AlertResolved` with the same pair
    says it is over. An alert's identity, for acks and deliveries, is its envelope's
    ``source:seq``.
    """

    # The columns' sizes (`observer.db.models.operations`): an alert is cut to them when it
    # is made (and when decoded, for an older producer), never refused by the writer. A
    # producer may put a whole exception's text in ``message``, or a peer's bytes.
    CODE_LENGTH = 64
    MESSAGE_LENGTH = 2000
    SUBJECT_LENGTH = 200
    CONTEXT_ENTRIES = 32  # and a note of how many more were left out
    CONTEXT_KEY_LENGTH = 64
    CONTEXT_VALUE_LENGTH = 500

    severity: Severity
    code: str
    message: str
    context: dict[str, str] = {}
    subject: str = ""

    def __post_init__(self) -> None:
        Alert._cut_to_columns(self)
        if (bounded := _bounded(self.context)) != self.context:  # alerts are few: cheap
            msgspec.structs.force_setattr(self, "context", bounded)

    @staticmethod
    def _cut_to_columns(event: Alert | AlertResolved) -> None:
        """Cut ``code``, ``subject`` and ``message`` to their lengths, ending in "…".

        A NUL (which PostgreSQL text cannot hold: the writer would refuse the alert) is
        written out first, as the four characters backslash, x, 0, 0.
        """
        for name, length in (
            ("code", Alert.CODE_LENGTH),
            ("subject", Alert.SUBJECT_LENGTH),
            ("message", Alert.MESSAGE_LENGTH),
        ):
            value: str = getattr(event, name)
            kept = _cut(value, length)
            if kept is not value:
                msgspec.structs.force_setattr(event, name, kept)


def _cut(text: str, length: int) -> str:
    """``text`` without NULs, cut to ``length`` ending in "…"; ``text`` itself if it fits."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if len(text) <= length else text[: length - 1] + "…"


def _bounded(context: dict[str, str]) -> dict[str, str]:
    """An alert's context as the writer can store it: bounded entries, no NUL."""
    items = list(context.items())
    kept = {
        _cut(k, Alert.CONTEXT_KEY_LENGTH): _cut(v, Alert.CONTEXT_VALUE_LENGTH)
        for k, v in items[: Alert.CONTEXT_ENTRIES]
    }
    if len(items) > Alert.CONTEXT_ENTRIES:
        kept["…"] = f"{len(items) - Alert.CONTEXT_ENTRIES} more entries left out"
    return kept


class AlertResolved(_Event, tag="alert_resolved", frozen=True, kw_only=True):
    """The condition of earlier alerts with this ``code`` and ``subject`` is over."""

    code: str
    severity: Severity  # of the alerts it resolves: a resolution is routed like them
    message: str
    subject: str = ""

    def __post_init__(self) -> None:
        Alert._cut_to_columns(self)  # the same columns' sizes


class AlertAcked(_Event, tag="alert_acked", frozen=True, kw_only=True):
    """An operator acknowledged an alert (``source:seq``): it is no longer open."""

    alert_source: str
    alert_seq: int
    by: str = ""  # the operator's login name
    note: str = ""


class AlertDelivery(_Event, tag="alert_delivery", frozen=True, kw_only=True):
    """One attempt to deliver one message to one alert channel, and its outcome.

    A message stands for one alert, a group of identical ones, a reminder of an open
    critical one, or a resolution; ``alerts`` lists the ``source:seq`` of every alert (or
    resolution) it covers. ``channel`` is the channel's name, never its URL.
    """

    channel: str
    kind: Literal["alert", "reminder", "resolved"]
    outcome: Literal["sent", "failed"]
    attempt: int  # 1 for the first try of this message on this channel
    code: str
    severity: Severity
    alerts: tuple[str, ...]
    subject: str = ""
    title: str = ""
    error: str = ""  # why it failed, masked


class StreamStateChanged(_Event, tag="stream_state_changed", frozen=True, kw_only=True):
    """An account's real-time WebSocket session changed state (gaps start and end here)."""

    account: str
    # "down": out of its hourly reconnect budget, waiting for it to reopen (no session).
    state: Literal["connecting", "connected", "disconnected", "refused", "stopped", "down"]
    reason: str = ""
    registrations: int = 0  # held when the state changed


class WorkerLifecycle(_Event, tag="worker_lifecycle", frozen=True, kw_only=True):
    """The supervisor started, stopped, restarted or parked a worker process."""

    worker: str
    action: Literal["spawned", "ready", "exited", "restarting", "parked", "stopped"]
    pid: int = 0
    exit_code: int | None = None
    detail: str = ""


class RosterAccount(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One KIS account a host uses: its alias and a fingerprint of its app key."""

    alias: str
    # A short personalised hash of the app key (`observer.cluster.rosters.fingerprint`): equal
    # on two hosts when they use the same key; the key itself is never on the bus.
    fingerprint: str


class HostRoster(_Event, tag="host_roster", frozen=True, kw_only=True):
    """What one host's supervisor runs: published at its start and again each day.

    The store host compares the rosters of the last 36 hours (`observer.cluster.rosters`): a
    whole-market program enabled on two hosts, or one account on two, is a critical alert.
    """

    host: str  # ``[supervisor] host``; empty on a host without a name
    role: str  # "all" | "store" | "collectors"
    whole_market: tuple[str, ...] = ()  # its enabled programs that snapshot the whole market
    accounts: tuple[RosterAccount, ...] = ()
    track_b_shard: str = ""  # its ``[track_b] shard`` when it runs Track B ("1,2/3")


# --------------------------------------------------------------------------- the bus itself


class SeqsLost(_Event, tag="seqs_lost", frozen=True, kw_only=True):
    """A producer's word that its source's seqs ``first_seq..last_seq`` exist nowhere.

    Sent in the envelope of seq ``last_seq`` when the writer asks for ``first_seq`` and the
    producer's outbox no longer holds it: the writer had acknowledged those events (so the
    outbox let them go) and its database lost them since (restored from a backup; a power
    cut under ``[bus] fsync = false``). The writer takes the envelope in place of those
    seqs, keeps the loss (``bus_losses``, `observer audit`) and raises a critical alert;
    the source goes on from ``last_seq + 1`` instead of asking for them for ever.
    """

    first_seq: int
    last_seq: int
    acknowledged: int  # the highest seq the outbox had recorded the writer acknowledging


EVENTS_LOST = "bus_events_lost"  # the writer's critical alert for a committed `SeqsLost`


# --------------------------------------------------------------------------- retention


class DayArchived(_Event, tag="day_archived", frozen=True, kw_only=True):
    """One table's rows of one trading day were written to Parquet files and verified.

    The newest record of a (``table``, ``trade_date``) is the one ``observer archive verify``
    checks the files against, and the one pruning requires.
    """

    table: str
    trade_date: date
    # under the archive folder: <table>/date=YYYY-MM-DD/{symbol}.parquet, the files of a part
    # (`observer.db.archive_layout`), or a single file (YYYY/MM/DD/<table>.parquet, before)
    path: str
    rows: int
    bytes: int  # of the files
    sha256: str  # hex: of a part's files' names and sha256s (`part_digest`), of a file's bytes
    raw_bytes: int = 0  # the same rows uncompressed (Arrow buffers): bytes / raw_bytes = ratio
    elapsed_ms: int = 0  # reading the rows, writing and verifying the file


class PruneRequested(_Event, tag="prune_requested", frozen=True, kw_only=True):
    """Retention asks the writer to delete one table's rows of one archived trading day.

    The writer deletes them in bounded chunks between its batches, and only if the day's
    newest archive file has exactly ``rows`` and ``sha256`` and the day still holds exactly
    the rows of all its files (the day's own and any of rows committed after it was pruned,
    ``<table>.late-N.parquet``; those already pruned counted): a day that changed since it
    was archived is refused with a ``prune_refused`` alert.
    """

    table: str
    trade_date: date
    rows: int
    sha256: str


Event = (
    PriceSnapshot
    | TrackACycle
    | TradeTick
    | OrderBook
    | RealtimeRejected
    | MinuteBars
    | GapDetected
    | GapStateChanged
    | SlotDecision
    | SlotOverflow
    | UniverseSnapshot
    | MasterFileChecked
    | MasterFileReview
    | ListingChanged
    | EtfDetail
    | EtfListing
    | EtfDaily
    | EtfRun
    | SectorMetadata
    | SectorCodes
    | EnrichmentRun
    | PhaseChanged
    | TokenRefreshed
    | Alert
    | StreamStateChanged
    | WorkerLifecycle
    | Reconciliation
    | AlertResolved
    | AlertAcked
    | AlertDelivery
    | DayArchived
    | PruneRequested
    | EtfHoldings
    | HostRoster
    | SeqsLost
    | MarketStatus
    | ProgramTrade
    | BrokerTrade
    | InvestorEstimate
    | AuctionExpected
    | InvestorFlow
    | ProgramTradeDaily
    | VolatilityInterruption
    | ViNotice
)

# The union's members in its order, for registries and tests: one list, not two.
EVENT_TYPES: tuple[type[_Event], ...] = get_args(Event)


def event_tag(event: Event) -> str:
    """Return the wire tag of an event (``"trade_tick"``, ...)."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]
