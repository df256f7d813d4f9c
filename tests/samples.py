"""One realistic instance of every event type, and the rows each must leave."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from bus.events import (
    Alert,
    AlertAcked,
    AlertDelivery,
    AlertResolved,
    Bar,
    EtfDetail,
    Event,
    GapDetected,
    GapStateChanged,
    ListingChanged,
    MasterFileChecked,
    MasterFileReview,
    MinuteBars,
    OrderBook,
    PhaseChanged,
    PriceSnapshot,
    SectorMetadata,
    SlotDecision,
    SlotOverflow,
    StreamStateChanged,
    TokenRefreshed,
    TrackACycle,
    TradeTick,
    UniverseMember,
    UniverseSnapshot,
    WorkerLifecycle,
)

T0 = 1_795_000_000_000_000_000  # a UTC instant in ns
MINUTE = 60 * 10**9

SAMPLES: list[Event] = [
    PriceSnapshot(
        cycle_id="20261120-0910", symbol="005930", market="KOSPI", observed_ns=T0, price=73100,
        change=-400, change_rate=Decimal("-0.54"), open=73500, high=73800, low=72900,
        volume=8_123_456, traded_value=594_000_000_000, upper_limit=95500, lower_limit=51500,
        base_price=73500, market_cap=436_000_000_000_000,
    ),
    TrackACycle(
        cycle_id="20261120-0910", trade_date=date(2026, 11, 20), scheduled_ns=T0,
        started_ns=T0, finished_ns=T0 + 95 * 10**9, universe_size=1042, succeeded=1041,
        failed=1, missing=("900110",), requested=1042, calls=1044,
        rate_per_s=Decimal("10.99"), limit_per_s=Decimal("11"),
    ),
    TradeTick(
        symbol="005930", exchange_ns=T0, received_ns=T0 + 3_000_000, price=73100, qty=12,
        cum_volume=8_123_468, cum_value=594_001_000_000, change_rate=Decimal("-0.54"),
        ask1=73200, bid1=73100, strength=Decimal("98.73"), side="5", session="2",
        account="acct1",
    ),
    OrderBook(
        symbol="005930", exchange_ns=T0, received_ns=T0 + 1, ask_prices=(73200, 73300),
        ask_qtys=(1500, 900), bid_prices=(73100, 73000), bid_qtys=(2100, 3000),
        total_ask_qty=2400, total_bid_qty=5100, account="acct1",
    ),
    MinuteBars(
        symbol="005930", quality="recovered", gap_id="gap-1",
        bars=(
            Bar(minute_ns=T0, open=73000, high=73200, low=72900, close=73100, volume=5000),
            Bar(minute_ns=T0 + MINUTE, open=73100, high=73100, low=73000, close=73000,
                volume=4200),
        ),
    ),
    MinuteBars(symbol="000660", quality="recovered", gap_id="gap-2", bars=()),
    GapDetected(
        gap_id="gap-1", symbol="005930", start_ns=T0, end_ns=T0 + 2 * MINUTE,
        reason="disconnect", account="acct1",
    ),
    GapStateChanged(gap_id="gap-1", state="recovering"),
    GapStateChanged(gap_id="gap-1", state="recovered", bars=2),
    SlotDecision(
        account="acct1", action="replace", symbol="035420", slot=7, trigger="volume_surge",
        score=Decimal("21.84"), reason="higher priority trigger", replaced_symbol="051910",
        expires_ns=T0 + 300 * 10**9,
    ),
    SlotOverflow(
        symbol="207940", trigger="trade_velocity", score=Decimal("9.2"),
        reason="no slot above replace threshold", lowest_held_score=Decimal("11.5"),
    ),
    UniverseSnapshot(
        trade_date=date(2026, 11, 20), based_on=date(2026, 11, 19), min_prev_close=4000,
        members=(
            UniverseMember(symbol="005930", market="KOSPI", rank=1, prev_close=73500,
                           market_cap=436_000_000_000_000),
            UniverseMember(symbol="000660", market="KOSPI", rank=2, prev_close=181000,
                           market_cap=131_000_000_000_000),
            UniverseMember(symbol="247540", market="KOSDAQ", rank=3, prev_close=251000,
                           market_cap=49_000_000_000_000),
        ),
        excluded=812,
    ),
    MasterFileChecked(
        market="nasdaq", file_name="nasmst.cod.zip", remote_size=1_204_331,
        previous_size=1_200_115, changed=True, downloaded=True, records=3813,
        sha256="ab" * 32,
    ),
    ListingChanged(change="new", market="nasdaq", symbol="NEWCO", name="뉴코",
                   name_en="NewCo Inc", exchange="NASD", currency="USD", security_type="2"),
    ListingChanged(change="removed", market="nasdaq", symbol="NEWCO", name="뉴코"),
    MasterFileReview(review_id="nas-20261121T060000", market="NAS", file_name="nasmst.cod.zip",
                     state="held", reason="120 new listings (more than 100)", added=120,
                     records=3933, sha256="cd" * 32),
    EtfDetail(
        trade_date=date(2026, 11, 20), symbol="069500", name="KODEX 200", price=35250,
        nav=Decimal("35261.42"), aum=6_200_000_000_000, premium=Decimal("-0.0324"),
        tracking_20d=Decimal("0.021"), holdings=201, high_52w=38000, low_52w=29000,
        underlying_index="KOSPI 200", issuer="삼성자산운용",
    ),
    SectorMetadata(region="US", symbol="AAPL", kis_sector_code="0103",
                   gics_sector="Information Technology", source="kis_map"),
    PhaseChanged(phase="full_operation", trade_date=date(2026, 11, 20), scheduled_ns=T0),
    TokenRefreshed(account="acct1", kind="access_token", reason="premarket", issued_ns=T0,
                   expires_ns=T0 + 86_400 * 10**9),
    Alert(severity="warning", code="MASTER_SIZE_JUMP", message="nasmst grew 21%",
          context={"market": "nasdaq"}),
    StreamStateChanged(account="acct1", state="disconnected", reason="closed (1006)",
                       registrations=41),
    WorkerLifecycle(worker="track_a", action="exited", pid=4242, exit_code=-9,
                    detail="killed"),
    AlertResolved(code="program_fatal", severity="critical", subject="track_a",
                  message="track_a is running again"),
    AlertAcked(alert_source="supervisor", alert_seq=7, by="ops", note="on it"),
    AlertDelivery(channel="ops", kind="alert", outcome="failed", attempt=2,
                  code="MASTER_SIZE_JUMP", severity="warning", alerts=("master_file:3",),
                  title="[WARNING] MASTER_SIZE_JUMP", error="connection refused"),
]  # fmt: skip

# Rows per table that SAMPLES leave in a fresh database.
EXPECTED_ROWS = {
    "price_snapshots": 1,
    "track_a_cycles": 1,
    "trade_ticks": 1,
    "order_books": 1,
    "minute_bar_batches": 2,
    "minute_bars": 2,
    "gap_events": 3,
    "gaps": 1,
    "slot_events": 1,
    "overflow_ledger": 1,
    "universe_snapshots": 1,
    "universe_members": 3,
    "master_file_checks": 1,
    "master_file_state": 1,
    "master_file_reviews": 1,
    "listing_changes": 2,
    "instruments": 1,
    "etf_details": 1,
    "sector_metadata": 1,
    "phases": 1,
    "token_refreshes": 1,
    "alerts": 1,
    "stream_states": 1,
    "worker_events": 1,
    "alert_resolutions": 1,
    "alert_acks": 1,
    "alert_deliveries": 1,
    "bus_offsets": 1,
    "bus_digests": 1,  # one commit of one source
    "bus_conflicts": 0,
    "rejected_events": 0,
}
