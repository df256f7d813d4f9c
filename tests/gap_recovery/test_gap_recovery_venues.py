"""Gap recovery per venue: a gap in Nextrade's trades is filled from Nextrade's minute bars
(NX), one in KRX's from KRX's (J), each stored as its venue's, neither taking the other's; the
reconciliation's reads of a venue see that venue's trades, recovered bars and gaps alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import create_engine

from bus.events import GapDetected, TradeTick
from bus.producer import Producer
from harness.sim.config import Faults
from harness.sim.nextrade import venue_trades
from observer.calendar.phases import KST
from observer.db.reconciliation_queries import gaps_of, recovered_bar_minutes, tick_minutes
from tests.gap_recovery.conftest import HALF_TEN, MARKET, Rig
from tests.support import db_rows, wait_until

S = 1_000_000_000
MINUTE = 60 * S


def test_a_gap_on_each_venue_is_recovered_from_that_venue_s_bars(rig: Rig) -> None:
    day = HALF_TEN.date()
    symbol = sorted(MARKET.nxt_eligible(day), key=lambda s: -MARKET.close(s, day))[0]
    start = HALF_TEN - timedelta(minutes=20)  # 10:10:40 to 10:11:30: two minutes
    start_ns = int((start + timedelta(seconds=40)).timestamp()) * S
    end_ns = start_ns + 50 * S  # queued, not marked (at most `queue_max_s`)
    rig.start()
    gaps = [
        GapDetected(
            gap_id=f"acct1:{symbol}:{venue}",
            symbol=symbol,
            start_ns=start_ns,
            end_ns=end_ns,
            reason="silence",
            account="acct1",
            venue=venue,
            trading_session="regular",
        )
        for venue in ("NXT", "KRX")
    ]
    with Producer(
        "track_b", rig.writer.ingest, rig.outbox / "b", clock_ns=rig.sim.sim.clock.now_ns
    ) as track_b:
        for gap in gaps:
            track_b.send(gap)
        for venue, qty in (("KRX", 3), ("NXT", 5)):  # one trade on each venue in 10:12
            track_b.send(
                TradeTick(
                    symbol=symbol,
                    exchange_ns=start_ns + 100 * S,
                    received_ns=start_ns + 100 * S,
                    price=MARKET.close(symbol, day),
                    qty=qty,
                    cum_volume=qty,
                    cum_value=0,
                    change_rate=Decimal(0),
                    account="acct1",
                    venue=venue,
                    trading_session="regular",
                )
            )
        assert track_b.wait_acked(30)
    states = "select gap_id, state from gaps where state = 'recovered' order by gap_id"
    wait_until(lambda: len(db_rows(rig.url, states)) == 2, 90, "both gaps recovered")

    rows = db_rows(
        rig.url,
        "select venue, trading_session, minute_ns, open, high, low, close, volume "
        "from minute_bars where quality = 'recovered' order by venue, minute_ns",
    )
    minutes = [int((start + timedelta(minutes=m)).timestamp()) * S for m in range(2)]
    nxt = [r[2:] for r in rows if r[0] == "NXT"]
    krx = [r[2:] for r in rows if r[0] == "KRX"]
    expected_nxt = []
    for minute_ns in minutes:
        at = datetime.fromtimestamp(minute_ns / S, KST)
        trades = venue_trades(MARKET, Faults(), symbol, day, at.hour * 60 + at.minute, False)
        prices = [p for _, p, _ in trades]
        volume = sum(q for _, _, q in trades)
        expected_nxt.append((minute_ns, prices[0], max(prices), min(prices), prices[-1], volume))
    assert nxt == expected_nxt
    path = MARKET.day_path(symbol, day)
    first = (start.hour - 9) * 60 + start.minute
    assert krx == [
        (
            m,
            int(path.open[i]),
            int(path.high[i]),
            int(path.low[i]),
            int(path.close[i]),
            int(path.volume[i]),
        )
        for m, i in zip(minutes, range(first, first + 2), strict=True)
    ]
    assert {(r[0], r[1]) for r in rows} == {("NXT", "regular"), ("KRX", "regular")}
    assert nxt != krx  # two venues' trades, not one venue's bars twice

    engine = create_engine(rig.url)
    lo, hi = minutes[0], minutes[-1] + 2 * MINUTE
    with engine.connect() as conn:
        for venue, qty in (("KRX", 3), ("NXT", 5)):
            assert tick_minutes(conn, symbol, lo, hi, venue) == {minutes[-1] + MINUTE: (qty, 1)}
            assert recovered_bar_minutes(conn, symbol, lo, hi, venue) == set(minutes)
            found = gaps_of(conn, symbol, lo, hi, venue)
            assert [g for g, *_ in found] == [f"acct1:{symbol}:{venue}"]
    engine.dispose()
