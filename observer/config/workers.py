"""The workers' settings tables: master files, universe, Track A and B, gap recovery, token, backup.

Part of ``observer.toml`` (`observer.config.tree.Settings` holds each under its worker's name);
kept apart so that the configuration module stays the process-wide tables and the loading.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from bus.events import GapReason, TradingSession
from observer.cluster.shards import Shard
from observer.market.grid import KRX_TICK_SIZES
from observer.setting_types import (
    ClockTime,
    Percent,
    Positive,
    PositiveFloat,
    Seconds,
    SecondsOrZero,
    Strict,
)

__all__ = [
    "FEED_ROWS",
    "OLD_SWITCHES",
    "BackupSettings",
    "EnrichSettings",
    "EtfSettings",
    "FeedTable",
    "FlowsSettings",
    "GapRecoverySettings",
    "InvestorSettings",
    "MasterFileSettings",
    "ReadinessSettings",
    "RetentionSettings",
    "TokenSettings",
    "TrackASettings",
    "TrackBSettings",
    "TriggerSettings",
    "UniverseSettings",
    "feeds_of_switches",
]


class MasterFileSettings(Strict, frozen=True):
    """The master-file worker's thresholds: what it downloads, warns about or holds for review."""

    growth_alert_pct: PositiveFloat = 20.0  # archive grew more: download, and warn
    shrink_hold_pct: PositiveFloat = 10.0  # archive shrank more: hold for review, critical
    max_new: Annotated[int, Meta(ge=0)] = 100  # more new listings at once: hold for review
    max_removed: Annotated[int, Meta(ge=0)] = 50  # more removed listings at once: hold
    max_shrink_pct: PositiveFloat = 10.0  # fewer records than active listings by more: hold
    quality_alert_pct: Percent = 95.0  # complete % below: warn
    keep_backups: Positive = 7  # per file, and as many quarantined bad downloads
    attempts: Positive = 3  # per HEAD or GET, on transport errors and 5xx
    retry_initial_s: Seconds = 1.0
    failures_critical: Positive = 3  # consecutive failed runs of one file: critical alert
    ack_timeout_s: Seconds = 60.0
    # Whether KIS's master host answers HEAD is UNCONFIRMED: "auto" asks HEAD and downloads
    # when the host refuses it (404/405/501, no Content-Length); "never" always downloads.
    # Without HEAD or validators, a change is told by the archive's sha256.
    head: Literal["auto", "never"] = "auto"


class UniverseSettings(Strict, frozen=True):
    """The daily universe: which stocks Track A covers all day."""

    min_prev_close: Positive = 4_000  # KRW, previous session's close
    exclude_administrative: bool = True  # 관리종목, stocks under administrative supervision
    min_symbols: Positive = 100  # fewer: a warning
    max_failed_pct: Percent = 5.0  # more candidates failed: reuse
    max_not_traded_pct: Percent = 20.0  # more without a previous-session bar: reuse
    # The universe is built at 06:10, Track A runs 09:00-15:30: it borrows Track A's share.
    share_of: str = "track_a"
    requests_per_account: Positive = 4  # concurrent requests, each paced by the account limit


class TrackASettings(Strict, frozen=True):
    """Track A: the whole universe's current prices, every ``interval_min``."""

    interval_min: Annotated[int, Meta(ge=1, le=60)] = 10  # cycles at :00, :10, ... (KST)
    requests_per_account: Positive = 4  # concurrent requests, each paced by the account limit
    closing_cycle: bool = True  # one more cycle at the shutdown time: the closing prices
    # Nextrade's prices of the names it trades (FID NX), in the hours only it trades: its
    # sessions outside KRX's cycles (08:00-08:40, 15:40-19:50), and at its close if
    # closing_cycle. Its cycles ask the universe's members Nextrade trades that day.
    nextrade: bool = True
    # A symbol whose attempts all failed with a retryable error (an outage, a rate refusal) is
    # asked again in passes until the cycle is due, pausing retry_initial_s, doubling up to
    # retry_max_s (clock seconds) between passes.
    retry_failed: bool = True
    retry_initial_s: Seconds = 2.0
    retry_max_s: Seconds = 30.0
    universe_alert_s: Seconds = 60.0  # no universe this long after a cycle was due: alert


class TriggerSettings(Strict, frozen=True):
    """One trigger of Track B's symbol selection: when it fires, how strong, how long."""

    enabled: bool = True
    threshold: PositiveFloat = 3.0  # the measure at which it fires (a ratio, or trades/s)
    full_at: PositiveFloat = 5.0  # the measure at which its strength reaches 1
    ttl_s: Seconds = 300.0  # it lapses unless renewed within this
    weight: PositiveFloat = 10.0  # priority score = weight x (1 + strength) + cap factor

    def __post_init__(self) -> None:
        if self.full_at < self.threshold:  # strength min(measure / full_at, 1): always 1
            raise ValueError(
                f"a trigger's full_at ({self.full_at:g}) is below its threshold "
                f"({self.threshold:g}): every firing would be at full strength"
            )


def _volume_surge() -> TriggerSettings:
    return TriggerSettings(threshold=3.0, full_at=5.0, ttl_s=300.0, weight=10.0)


def _trade_velocity() -> TriggerSettings:
    return TriggerSettings(threshold=10.0, full_at=20.0, ttl_s=180.0, weight=8.0)


def _volatility_spike() -> TriggerSettings:
    return TriggerSettings(threshold=2.0, full_at=3.0, ttl_s=300.0, weight=6.0)


NameKind = Literal["trades", "book", "status", "program", "auction", "brokers"]
Kinds = tuple[NameKind, ...]
_TRADES: Kinds = ("trades",)
# The parts of the day a [track_b.feeds] row names, in the day's order.
FEED_ROWS = (
    "nxt_pre_market",
    "krx_opening_auction",
    "krx_opening_half_hour",
    "regular",
    "krx_closing_auction",
    "nxt_after_market",
    "krx_after_market",
)
# The rows whose part of the day holds an auction: "auction" means its expected matches there.
_AUCTION_ROWS = ("krx_opening_auction", "krx_closing_auction", "nxt_after_market")


class FeedTable(Strict, frozen=True):
    """What a watched name holds in each part of the day: ``[track_b.feeds]``.

    Each row is the kinds of feed a watched name holds then, on each venue it is registered
    on, in the order they are registered; ``[]``: that part is not followed. Kinds:
    ``trades``, ``book`` (its order book), ``status`` (halts, VIs, session events),
    ``program`` (program trading), ``auction`` (in a row with an auction: the expected
    matches until 10 s before the match, then program trading, whose trades print at it),
    ``brokers`` (the five brokers each side's volume ranks first, and the foreign brokers'
    totals).
    ``nextrade``: where a name Nextrade trades holds Nextrade's feeds, its own ("NXT": each
    trade with its venue), the combined feed in place of KRX's and Nextrade's ("combined":
    one registration, trades without a venue), or nowhere ("off": KRX's alone). Paper
    accounts are offered trades and books alone. Checked when loaded (`__post_init__`): no
    row holds what its part of the day cannot give.
    """

    nextrade: Literal["NXT", "combined", "off"] = "NXT"
    # Nextrade's pre-market (08:00-08:50): its names on Nextrade's feeds alone, placed by
    # triggers on Track A's Nextrade cycles, pins and market caps; released at its end.
    nxt_pre_market: Kinds = _TRADES
    # KRX's opening auction (08:20-09:00; from the pre-market's end when that is followed):
    # no slot is held; the names, pins first then by market cap, hold these on KRX's feeds.
    krx_opening_auction: Kinds = ("auction",)
    # KRX's first half hour (09:00 to full operation at 09:30): still no slot; the same
    # names hold these (both venues'); the triggers wait for the context sync.
    krx_opening_half_hour: Kinds = _TRADES
    # From the context sync (09:30) on: the slots, placed by the triggers.
    regular: Kinds = _TRADES
    # KRX's closing auction (15:20 to its 15:30 match and its minute, 15:31:30) on KRX's and
    # the combined feed; []: KRX's feeds end when Track A's closing phase begins (15:00).
    krx_closing_auction: Kinds = _TRADES
    # Nextrade's names on Nextrade's feed from its after-market's opening auction (15:30,
    # matched at 15:40) to its close (20:00), the slots evaluated on Nextrade's cycles.
    nxt_after_market: Kinds = _TRADES
    # KRX's after-market (16:00-20:00 since 2026-09-14): every name again on KRX's feeds,
    # placed on KRX's snapshots (Nextrade's names keep Nextrade's feeds beside them).
    krx_after_market: Kinds = _TRADES

    def __post_init__(self) -> None:
        rows: dict[str, Kinds] = {name: getattr(self, name) for name in FEED_ROWS}
        for name, kinds in rows.items():
            where = f"track_b.feeds.{name} {list(kinds)}"
            if len(set(kinds)) < len(kinds):
                raise ValueError(f"{where}: a kind twice")
            if "auction" in kinds and name not in _AUCTION_ROWS:
                raise ValueError(f"{where}: no auction then, so no expected matches")
            if name == "krx_opening_auction":
                if {"trades", "program"} & set(kinds):
                    raise ValueError(f"{where}: nothing trades before the opening match")
            elif kinds and kinds[0] != "trades":
                raise ValueError(f"{where}: a name is watched by its trades: trades first")
            if {"auction", "program"} <= set(kinds) and name != "krx_opening_auction":
                raise ValueError(f"{where}: its auction becomes program trading at the match")
        if not self.regular:
            raise ValueError("track_b.feeds.regular []: Track B's day needs its trades")
        # Begun on names already held: within the registrations they hold (41 a session).
        for name in ("krx_closing_auction", "nxt_after_market"):
            if len(rows[name]) > len(self.regular):
                raise ValueError(
                    f"track_b.feeds.{name} {list(rows[name])}: more kinds than regular's "
                    f"{list(self.regular)}, on names that hold those"
                )
        nextrade = ("nxt_pre_market", "nxt_after_market")
        if self.nextrade == "off" and (held := [n for n in nextrade if rows[n]]):
            raise ValueError(
                f"track_b.feeds: {', '.join(held)} on Nextrade's feeds, but nextrade = 'off' "
                "registers none"
            )
        if self.nextrade == "combined" and "auction" in self.nxt_after_market:
            raise ValueError(
                "track_b.feeds.nxt_after_market: Nextrade's expected matches are on its own "
                "feed, not the combined one (nextrade = 'combined')"
            )


# Track B's switches before [track_b.feeds], and their defaults then.
OLD_SWITCHES: dict[str, object] = {
    "trades": "venues",
    "books": False,
    "market_status": False,
    "program_trading": False,
    "nxt_pre_market": True,
    "opening_auction": True,
    "opening_half_hour": True,
    "closing_auction": True,
    "nxt_after_market_auction": True,
    "krx_to_close": True,
    "nxt_after_market": True,
    "krx_after_market": True,
}


# What a name held beside its trades, by the switch that said so.
_BESIDE = {"book": "books", "status": "market_status", "program": "program_trading"}


def feeds_of_switches(old: dict[str, object]) -> dict[str, object]:
    """The ``[track_b.feeds]`` rows that do what the switches ``old`` did (the rest default).

    What a watched name held beside its trades (``books``, ``market_status``,
    ``program_trading``) it held in every followed part but KRX's opening auction and first
    half hour; ``closing_auction`` and ``nxt_after_market_auction`` put expected matches in
    place of program trading in those auctions (with ``program_trading``; Nextrade's on its
    own feed alone).
    """
    if bad := [key for key, value in old.items() if key != "trades" and type(value) is not bool]:
        raise ValueError(f"track_b.{bad[0]} {old[bad[0]]!r}: expected true or false")
    on = {**OLD_SWITCHES, **old}
    nextrade = {"krx": "off", "venues": "NXT", "combined": "combined"}.get(str(on["trades"]))
    if nextrade is None:
        raise ValueError(f"track_b.trades {on['trades']!r}: expected krx, venues or combined")
    extra = [k for k, switch in _BESIDE.items() if on[switch]]
    regular = ["trades", *extra]

    def auction(flag: bool) -> list[str]:
        return [("auction" if k == "program" and flag else k) for k in regular]

    nxt = nextrade != "off"
    return {
        "nextrade": nextrade,
        "nxt_pre_market": regular if nxt and on["nxt_pre_market"] else [],
        "krx_opening_auction": ["auction"] if on["opening_auction"] else [],
        "krx_opening_half_hour": ["trades"] if on["opening_half_hour"] else [],
        "regular": regular,
        "krx_closing_auction": auction(bool(on["closing_auction"])) if on["krx_to_close"] else [],
        "nxt_after_market": (
            auction(bool(on["nxt_after_market_auction"]) and nextrade == "NXT")
            if nxt and on["nxt_after_market"]
            else []
        ),
        "krx_after_market": regular if on["krx_after_market"] else [],
    }


class TrackBSettings(Strict, frozen=True):
    """Track B's symbol selection (triggers, priority score) and its real-time slots."""

    volume_surge: TriggerSettings = msgspec.field(default_factory=_volume_surge)
    trade_velocity: TriggerSettings = msgspec.field(default_factory=_trade_velocity)
    volatility_spike: TriggerSettings = msgspec.field(default_factory=_volatility_spike)
    manual_weight: PositiveFloat = 5.0  # pins: strength 1, no expiry, never replaced
    velocity_window_s: Seconds = 10.0  # trades/s over this many seconds of ticks
    # Cumulative share of a day's volume traded by each time (KST), for "volume so far
    # against the 20-day average for the same elapsed part of the session"; linear between.
    # Its first point is KRX's open (late days shift it), its last the close.
    volume_profile: tuple[tuple[ClockTime, Annotated[float, Meta(ge=0, le=1)]], ...] = (
        ("09:00", 0.0),
        ("09:30", 0.16),
        ("10:00", 0.25),
        ("11:00", 0.38),
        ("12:00", 0.48),
        ("13:00", 0.57),
        ("14:00", 0.68),
        ("15:00", 0.82),
        ("15:20", 0.91),
        ("15:30", 1.0),
    )
    # What a watched name holds in each part of the day: the table [track_b.feeds].
    feeds: FeedTable = FeedTable()
    # Each trade's cumulative volume (ACML_VOL) against the previous trade's and its own
    # quantity, per symbol and feed from its registration: more is a volume_chain gap at
    # once, measured in shares. False: silent losses are left to the day's reconciliation.
    volume_chain: bool = True
    # Cumulative share of the 20-day average volume (KRX's) that Nextrade trades by each
    # time (KST), from its open, for volume surges on Nextrade's snapshots; linear between.
    # Estimated (UNCONFIRMED per name): Nextrade carried about 30 % of the market's value in
    # mid-2025, about half of KRX's on the names it trades, 39 % of it outside KRX's hours.
    nextrade_volume_profile: tuple[tuple[ClockTime, Annotated[float, Meta(ge=0, le=1)]], ...] = (
        ("08:00", 0.0),
        ("08:50", 0.05),
        ("09:00", 0.05),
        ("15:20", 0.35),
        ("15:30", 0.35),
        ("20:00", 0.5),
    )
    # The whole market's volatility interruptions as they start and end, on one registration
    # of the first account under the business date: "krx" (H0STVIC0) or "combined"
    # (H0UNVIC0, both venues', each naming its own). KIS's workbook (its 2026-09 export alone)
    # describes that key but shows a symbol in its example: `observer kis check` registers
    # both and says which KIS answers. Paper accounts are offered none.
    vi_feed: Literal["off", "krx", "combined"] = "off"
    replacement_threshold: Annotated[float, Meta(ge=1.0, le=1e6)] = 1.2
    min_hold_s: SecondsOrZero = 60.0  # a new holding is not replaced sooner
    overflow_alert_pct: tuple[Percent, Percent, Percent] = (5.0, 10.0, 20.0)  # log, warn, critical
    evaluate_s: Seconds = 5.0  # how often slots are re-evaluated
    # ... in Nextrade's pre- and after-market, whose trades are thin and whose triggers come
    # with Track A's cycles (a halt, a refusal or a lock wakes an evaluation at once)
    nextrade_evaluate_s: Seconds = 30.0
    sync_lead_s: Seconds = 10.0  # context sync this long before full operation (09:29:50)
    silence_expected_s: Seconds = 0.5  # a liquid stock trades twice a second ...
    silence_tolerance_s: SecondsOrZero = 0.2  # ... and 20 % beyond
    # ... where the expected interval is at least this many times the symbol's own (its
    # ticks over the last silence_window_s; 0: the fixed expected interval alone)
    silence_cadence_factor: Annotated[float, Meta(ge=0, le=1e6)] = 10.0
    silence_window_s: Seconds = 60.0
    # The sessions in which a silence is a gap: Nextrade's pre- and after-market trade a name a
    # few times a minute, where a pause is their nature; their minutes are reconciled with the
    # exchange's bars all the same.
    silence_sessions: tuple[TradingSession, ...] = ("regular",)
    unhealthy_after_s: Seconds = 30.0  # a session down this long: fail over
    # A registration KIS refuses: the symbol is released and barred. Transient codes (OPSP0007
    # and any code not listed below) for refusal_retry_s, doubling per refusal of the symbol
    # up to refusal_retry_max_s; these codes for the rest of the day (OPSP0008, a session KIS
    # counts full, closes the slot instead).
    refusal_retry_s: Seconds = 30.0
    refusal_retry_max_s: Seconds = 600.0
    refusal_permanent_codes: tuple[str, ...] = ("OPSP8991", "OPSP8992", "OPSP8993")
    refused_error_share: Annotated[float, Meta(gt=0, le=1)] = 0.25  # of slots: alert as error
    limit_lock_s: SecondsOrZero = 30.0  # trades at a price limit this long: limit-locked
    # The pre-market pre-connect (seed: 08:03): every account's session opens this long after
    # warmup starts, with no registrations, and is kept until it streams at full operation.
    preconnect_after_s: SecondsOrZero = 780.0
    # A session that still answers (PINGPONG, control messages) but has delivered no data
    # this long, with registrations held in continuous trading of the `silence_sessions`, is
    # stuck: it restarts once (planned: no budget) with a warning alert, resolved when data
    # flows again. 0: off. In the thinner sessions (the pre- and after-markets, where a few
    # names may print nothing for minutes) after stale_after_thin_s; 0: not judged there.
    stale_after_s: SecondsOrZero = 120.0
    stale_after_thin_s: SecondsOrZero = 600.0
    # A feed whose trades arrive this long after their exchange time stamp (KIS stamps to
    # the second), in continuous trading: a warning alert, resolved once the lag is back
    # within half of it. 0: off.
    lag_alert_s: SecondsOrZero = 10.0
    # Several collectors hosts: this host's part of the symbols, "k/n" (observer.cluster.shards):
    # the symbols whose CRC-32 mod n is k - 1; "k,j/n" takes several, for a host with more
    # of the accounts. Each host takes other ks of the same n and needs a [supervisor]
    # host name. "1/1": every symbol.
    shard: str = "1/1"
    # What Track B stores (observer.kis.record_checks): a record of a symbol its session did not
    # ask for, a trade at a price or quantity of 0 or less, outside the day's limits (Track
    # A's snapshots), or stamped outside exchange_hours (KST) is refused, kept as a rejected
    # record. Both venues trade 08:00-20:00 since 2026-09-14 ([venues]); KRX's 07:00-08:00
    # pre-market is postponed (to the end of 2027, reported): the wider by default.
    exchange_hours: tuple[ClockTime, ClockTime] = ("07:00", "20:00")
    # The tick grid, as [from_price, tick] pairs ascending from 0, that classifies the
    # universe's stocks' trade prices (their limits known from Track A): on it, a mid-point
    # (between two ticks, within the quoted spread) or neither. Never a refusal: both venues
    # trade mid-point orders off the grid. KRX's table for KOSPI and KOSDAQ stocks since
    # 2023 by default; empty: every price counted on the grid.
    tick_sizes: tuple[tuple[Annotated[int, Meta(ge=0)], Positive], ...] = KRX_TICK_SIZES

    def __post_init__(self) -> None:
        Shard.parse(self.shard)  # "k/n" or "k,j/n", 1 <= k <= n <= 64
        if self.exchange_hours[0] >= self.exchange_hours[1]:
            raise ValueError(f"track_b.exchange_hours {self.exchange_hours}: open before close")
        starts = [start for start, _ in self.tick_sizes]
        if starts and (starts[0] != 0 or starts != sorted(set(starts))):
            raise ValueError(
                f"track_b.tick_sizes: [from_price, tick] pairs ascending from 0, not {starts}"
            )
        for name in ("volume_profile", "nextrade_volume_profile"):
            _check_profile(name, getattr(self, name))


def _check_profile(name: str, profile: tuple[tuple[str, float], ...]) -> None:
    """A cumulative profile: two points at least, times ascending, shares never falling."""
    times, shares = [at for at, _ in profile], [share for _, share in profile]
    if (
        len(profile) < 2
        or times != sorted(set(times))
        or shares != sorted(shares)
        or shares[-1] <= 0
    ):
        raise ValueError(
            f"track_b.{name}: [time, cumulative share] pairs, two at least, times ascending, "
            f"shares never falling and the last above 0, not {list(profile)}"
        )


class GapRecoverySettings(Strict, frozen=True):
    """The gap-recovery worker: which gaps are recovered, in what order, and how."""

    immediate_max_s: Seconds = 5.0  # gaps up to this long are recovered first (HIGH)
    queue_max_s: Seconds = 60.0  # up to this long: queued (MEDIUM); longer: see long_gaps
    # Longer gaps: "backfill", their minute bars all the same, after the shorter ones (LOW):
    # a gap of any length is a call per 30 minutes of bars, and nothing else gives them back;
    # "marker", recorded alone (but for backfill_reasons').
    long_gaps: Literal["marker", "backfill"] = "backfill"
    # With long_gaps = "marker", gaps of these reasons are backfilled however long: a restart
    # of Track B (a crash), a slot released while the feed ran behind and a refused trade
    # record (a trade known lost) have no other way back.
    backfill_reasons: tuple[GapReason, ...] = ("process_restart", "delivery_lag", "dropped_record")
    settle_s: SecondsOrZero = 1.0  # after a minute closes, before asking its bar
    requests_per_account: Positive = 2  # recoveries in flight per account
    # A gap is unrecoverable after max_attempts answers that were not its bars (none at all,
    # a garbled row of its minutes, an error code), or after failing for retry_window_s,
    # whichever comes first. KIS refusing calls (EGW00201, 5xx, no answer) and a token not
    # there yet are no attempts: they only wait, on the backoff.
    max_attempts: Positive = 5
    retry_window_s: Seconds = 600.0
    backoff_initial_s: Seconds = 1.0  # then doubling, up to backoff_max_s
    backoff_max_s: Seconds = 30.0
    sweep_s: Seconds = 30.0  # re-read pending gaps from the database this often
    # An unrecoverable gap is tried again (one try) this long after its last failure, for as
    # long as it began within retake_days days (0: never): KIS serves past days' minute bars
    # for a year, so an outage's gaps come back once it is over.
    retake_s: Seconds = 900.0
    retake_days: Annotated[int, Meta(ge=0, le=365)] = 7
    # The day's reconciliation with the exchange's minute bars (workers/gap_recovery/verify.py):
    verify: bool = True  # run it on session days, once Track B's stream has ended
    verify_delay_s: SecondsOrZero = 60.0  # after a venue's stream ends (its close), before it
    # A minute is compared only if its slot was held this long before and after it: the
    # registration's round trip, and the release published after the unregistration.
    verify_edge_s: SecondsOrZero = 2.0
    verify_attempts: Positive = 3  # runs for symbols whose bars could not be had, then alert
    # The minute a bar's stck_cntg_hour (FHKST03010200/230) names: "start", the minute it
    # opens (09:00 covers 09:00:00-09:00:59), or "end", the minute it closes (09:01 covers
    # the same). UNCONFIRMED at KIS; the reconciliation detects a label off by one minute.
    bar_label: Literal["start", "end"] = "start"
    # A gap the volume chain measured (a silent loss, an outage) is recovered with the
    # exchange's own trades (FHPST01060000, paged back), the minute bars only where they do
    # not close the chain; a gap whose trades take (or, by its first page's shares, would
    # take) more than trade_calls_max calls gets bars (said in its detail). False: bars for
    # every gap.
    trades: bool = True
    trade_calls_max: Positive = 10
    # This many of a venue's volume-chain gaps in a row whose trades did not close their
    # chain (the call limit aside) warn gap_trades_not_closing: KIS's answer changed.
    trade_misses_alert: Positive = 5

    def __post_init__(self) -> None:
        if self.immediate_max_s > self.queue_max_s:
            raise ValueError("gap_recovery.immediate_max_s must not exceed queue_max_s")


class TokenSettings(Strict, frozen=True):
    """The token job: the one issuer of every account's token and approval key."""

    retries: Annotated[int, Meta(ge=0, le=10)] = 3  # after the first try; then critical
    retry_initial_s: Seconds = 2.0  # doubling, with full jitter (clock seconds)
    retry_max_s: Seconds = 30.0


class ReadinessSettings(Strict, frozen=True):
    """The pre-market health check (``observer readiness``, the ``readiness`` job at 08:10)."""

    probe_symbol: str = "005930"  # the current price asked to prove the token and REST host
    retries: Annotated[int, Meta(ge=0, le=10)] = 3  # after the first check; then critical
    retry_initial_s: Seconds = 10.0  # doubling, with full jitter (clock seconds)
    retry_max_s: Seconds = 60.0
    ws_timeout_s: Seconds = 10.0  # its own WebSocket probe's answer (when Track B is not up)
    recheck_s: Seconds = 300.0  # accounts not ready are checked again this often, until idle


class BackupSettings(Strict, frozen=True):
    """``observer db backup`` and the scheduled backup job."""

    dir: str = ""  # where backups go; empty: <data_dir>/backups
    keep: Annotated[int, Meta(ge=1, le=1000)] = 7  # newest verified backups kept
    # Folders under data_dir copied beside the database (missing ones are skipped).
    files: tuple[str, ...] = ("universe", "masters/current", "captures")


Days = Annotated[int, Meta(ge=0, le=36_500)]


class RetentionSettings(Strict, frozen=True):
    """Day archives (Parquet, kept forever) and the days each table's rows stay in the database.

    A table's days older than its retention are archived (unless a verified archive exists)
    and then pruned by the writer; 0 keeps the rows in the database forever.
    """

    dir: str = ""  # where archives go; empty: <data_dir>/archive
    trade_ticks: Days = 30
    order_books: Days = 30
    price_snapshots: Days = 0
    minute_bars: Days = 0
    chunk_rows: Annotated[int, Meta(ge=100, le=1_000_000)] = 1_000  # deleted per transaction
    read_rows: Annotated[int, Meta(ge=1_000, le=1_000_000)] = 50_000  # per Parquet row group
    # PostgreSQL: the day partitions the writer keeps created after today (a day without
    # one still lands, in the default partition, and is moved into its own later).
    partition_days_ahead: Annotated[int, Meta(ge=1, le=366)] = 7

    def days(self, table: str) -> int:
        """The days ``table``'s rows stay in the database (0: forever)."""
        days: int = getattr(self, table)
        return days


class EnrichSettings(Strict, frozen=True):
    """The ``enrich`` job: stocks' GICS sectors (docs/ARCHITECTURE.md, enrichment).

    ``fallback_url`` is the base URL of a quoteSummary-shaped source; "" turns the fallback
    off (symbols without a KIS mapping stay unresolved) unless ``fallback`` is "yfinance".
    Its limits are per host and shared by every region: a source like Yahoo limits per IP
    (1/s: the seed's figure).
    """

    regions: tuple[Literal["US", "CN", "HK", "JP", "VN", "KR"], ...] = (
        "US",
        "CN",
        "HK",
        "JP",
        "VN",
        "KR",
    )
    sector_map: str = ""  # "": config/sector_map.toml of this checkout
    kis_codes: bool = True  # fetch HHDFS76370100's catalogs (real accounts only; 9 calls)
    # Per symbol whose code is missing or unmapped, before the fallback (real accounts only,
    # one call each at the jobs' KIS share): HHDFS76200200's sector name (``e_icod``), and
    # CTPF1702R's ``prdt_clsf_cd/name``, off because its meaning is UNCONFIRMED.
    kis_detail: bool = True
    kis_search_info: bool = False
    # HHDFS76370000 (the stocks KIS lists per industry code) against the masters' codes:
    # "sample" asks cross_check_codes codes per exchange (rotating by day), "full" every one.
    cross_check: Literal["off", "sample", "full"] = "sample"
    cross_check_codes: Annotated[int, Meta(ge=1, le=1000)] = 5
    cross_check_alert_pct: Percent = 5.0  # disagreeing share of the stocks compared: a warning
    # "quote_summary": httpx against fallback_url ("" turns the fallback off); "yfinance":
    # the yfinance library, an optional extra (pip install "observer[enrich]").
    fallback: Literal["quote_summary", "yfinance"] = "quote_summary"
    fallback_url: str = ""
    fallback_rate_per_s: PositiveFloat = 1.0
    fallback_timeout_s: Seconds = 10.0
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 3
    retry_delay_s: Seconds = 5.0  # 5 -> 10 -> 20 s, jittered, capped at 4x
    breaker_threshold: Positive = 5  # failed symbols in a row open the breaker
    breaker_open_s: Seconds = 300.0
    cache_size: Positive = 20_000
    cache_ttl_s: Seconds = 86_400.0
    max_age_days: Annotated[int, Meta(ge=1, le=365)] = 30  # --incremental re-checks older rows
    batch_size: Annotated[int, Meta(ge=1, le=10_000)] = 100  # symbols between checkpoints
    max_workers: Annotated[int, Meta(ge=1, le=10)] = 5  # regions at once
    # The supervisor's alerts: no run of any region for this long, a region's coverage below.
    stale_after_h: PositiveFloat = 48.0
    min_coverage_pct: Percent = 80.0


class InvestorSettings(Strict, frozen=True):
    """The ``investor`` job: the universe's intraday investor estimates after each posting."""

    share_of: str = "jobs"  # whose REST share it asks at
    requests_per_account: Positive = 4  # concurrent requests, each paced by the account limit
    # A posting that no member's answer holds this long after its time is missed: a warning
    # (KIS: "사정에 따라 변동될 수 있음", its staff may post late).
    grace_min: Annotated[float, Meta(ge=0, le=300)] = 30.0
    # Members whose call failed in a run: a warning; more than this share (or every one):
    # an error, and the run exits 1.
    max_failed_pct: Percent = 5.0


class FlowsSettings(Strict, frozen=True):
    """The ``flows`` job: the universe's final investor flows and program trading per venue."""

    share_of: str = "jobs"  # whose REST share it asks at
    requests_per_account: Positive = 4  # concurrent requests, each paced by the account limit
    # When a venue's day is final at KIS (KST). KRX's after its after-market's 20:00 close
    # since 2026-09-14: its daily row grows with the after-market's trades until then (a
    # row read at 18:10 was seen partial); FHPTJ04160001's "15:40부터 조회가능" was the day's
    # end before it. Nextrade's after its 20:00 close (UNCONFIRMED). A late day moves
    # neither. A past day is final on both.
    krx_from: ClockTime = "20:05"
    nxt_from: ClockTime = "20:05"
    # A day's VIs (FHPST01390000, KRX's) once KRX's day is over (its after-market to 20:00).
    vi_from: ClockTime = "20:05"
    # FHPTJ04160001's FID_ETC_CLS_CODE: "1" in KIS's workbook, blank in its samples.
    investor_etc_cls_code: Literal["", "1"] = ""
    # Members failing or without the day's row in a run: a warning; more than this share
    # (or none answering): an error, and the run exits 1.
    max_failed_pct: Percent = 5.0


class EtfSettings(Strict, frozen=True):
    """The ETF jobs: the KRX list, the daily collection after the close, the weekly repair."""

    # The jobs' REST share: after KRX's close Track A asks Nextrade's prices to 20:00, so
    # borrowing its share would double it (EGW00201 refusals for both).
    share_of: str = "jobs"
    requests_per_account: Positive = 4  # concurrent requests, each paced by the account limit
    min_list_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.9  # smaller list or table: failed
    backfill_sessions: Annotated[int, Meta(ge=1, le=1000)] = 250  # backfilled if < 80 % stored
    repair_sessions: Annotated[int, Meta(ge=1, le=250)] = 20  # the weekly repair's span
    krx_table: bool = True  # merge MDCSTAT04301 (one call: every ETF's NAV and net assets)
    # etf_ntas_ttam's unit is UNCONFIRMED (ref-KIS §4.5); the simulator answers in 억 KRW.
    net_assets_unit_krw: Positive = 100_000_000
    max_failed_pct: Percent = 5.0  # more ETFs failing in a run: an error alert
    stale_at: ClockTime = "17:00"  # KST: a session's rows due by then
    min_coverage_pct: Percent = 95.0  # of active ETFs with the day's row; per field, a warning
    mismatch_pct: Percent = 1.0  # the KRX list against the KIS masters' ETFs
    premium_alert_pct: PositiveFloat = 5.0  # |premium| above: a warning per ETF
    aum_jump_pct: PositiveFloat = 50.0  # net assets moving more in a session: a warning
    aum_check_pct: PositiveFloat = 2.0  # net assets against units x NAV: flagged beyond
