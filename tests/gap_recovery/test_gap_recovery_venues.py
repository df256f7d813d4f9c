"""Gap recovery per venue: a gap in Nextrade's trades is filled from Nextrade's minute bars
(NX), one in KRX's from KRX's (J), each stored as its venue's, neither taking the other's; the
reconciliation's reads of a venue see that venue's trades, recovered bars and gaps alone."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import create_engine
from typer.testing import CliRunner

from bus.events import GapDetected, SlotDecision, TradeTick
from bus.producer import Producer
from harness.sim.config import Faults
from harness.sim.nextrade import venue_trades
from observer.calendar.phases import KST
from observer.db.reconciliation_queries import gaps_of, recovered_bar_minutes, tick_minutes
from tests.gap_recovery.conftest import HALF_TEN, MARKET, Rig
from tests.support import db_rows, wait_until
from workers.gap_recovery.cli import app as gaps_app

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


def test_each_venue_s_watched_minutes_are_reconciled_against_its_own_bars(rig: Rig) -> None:
    """A symbol held on KRX and on Nextrade from 10:04:30 to 10:10:30 (the slot decisions'
    venues): its KRX trades stored whole, its Nextrade trades but 10:07's. `observer
    gap-recovery verify` checks each venue's five minutes against that venue's bars: KRX's all
    complete, Nextrade's 10:07 short and published as a reconciliation gap of Nextrade's."""
    day = HALF_TEN.date()
    symbol = sorted(MARKET.nxt_eligible(day), key=lambda s: -MARKET.close(s, day))[0]
    ten = HALF_TEN - timedelta(minutes=30)

    def at(minutes: int, seconds: int = 0) -> int:
        return int((ten + timedelta(minutes=minutes, seconds=seconds)).timestamp()) * S

    clock = {"ns": at(4, 30)}
    slots = Producer("track_b", rig.writer.ingest, rig.outbox / "b", clock_ns=lambda: clock["ns"])
    with slots:
        for venue in ("KRX", "NXT"):
            for action, when in (("allocate", at(4, 30)), ("release", at(10, 30))):
                clock["ns"] = when
                slots.send(
                    SlotDecision(
                        account="acct1",
                        action=action,
                        symbol=symbol,
                        slot=0,
                        trigger="volume_surge",
                        score=Decimal(10),
                        reason="test",
                        venue=venue,
                    )
                )
        path = MARKET.day_path(symbol, day)
        for minute in range(5, 10):
            index, bar = 60 + minute, ten + timedelta(minutes=minute)
            krx = [(t.second, t.price, t.qty) for t in MARKET.ticks(symbol, day, index)]
            nxt = (
                []
                if minute == 7
                else venue_trades(MARKET, Faults(), symbol, day, 600 + minute, False)
            )
            for venue, trades in (("KRX", krx), ("NXT", nxt)):
                for second, price, qty in trades:
                    stamp = int(bar.timestamp()) * S + int(second) * S
                    slots.send(
                        TradeTick(
                            symbol=symbol,
                            exchange_ns=stamp,
                            received_ns=stamp,
                            price=price,
                            qty=qty,
                            cum_volume=0,
                            cum_value=0,
                            change_rate=Decimal(0),
                            account="acct1",
                            venue=venue,
                        )
                    )
            assert sum(q for _, _, q in krx) == int(path.volume[index])
        assert slots.wait_acked(30)
    env = {**os.environ, "OBSERVER_CLOCK": rig.sim.sim.clock.spec}
    result = CliRunner().invoke(
        gaps_app,
        ["verify", "--date", day.isoformat(), "--json", "--config", str(rig.config)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    verified = json.loads(result.output.strip().splitlines()[-1])
    assert verified["symbols"] == 2 and verified["watched_minutes"] == 10
    assert (verified["complete"], verified["short"], verified["misses"]) == (9, 1, 1)
    checked = db_rows(
        rig.url,
        "select venue, minute_ns, status, gap_id from reconciliation_minutes "
        "order by venue, minute_ns",
    )
    assert [(v, m, st) for v, m, st, _ in checked] == [
        *(("KRX", at(m), "complete") for m in range(5, 10)),
        *(("NXT", at(m), "short" if m == 7 else "complete") for m in range(5, 10)),
    ]
    gap_id = f"reconciliation:{symbol}/NXT:{at(7)}"
    assert [g for *_, g in checked if g] == [gap_id]
    stored = "select venue, start_ns from gaps where reason = 'reconciliation'"
    assert wait_until(lambda: db_rows(rig.url, stored), 30, "the miss stored") == [("NXT", at(7))]
