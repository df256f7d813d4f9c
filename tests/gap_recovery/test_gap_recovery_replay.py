"""Gap recovery's minute bars and trades in the journal, replayed into the rows the live run
stored.

A live run against the simulator journals every page of every gap's call with what the call
asked for (`GapAsk`, `TradesAsk`); the day replayed from the journal into a scratch database
holds the same recovered bars and trades, row for row: the same gaps, minutes, prices,
volumes and sessions, each minute and trade once however many gaps overlap it, a 45-minute
gap's two pages read as one call. A recovered trade's ``received_ns`` is the answer's receipt,
as the journal stamped it (the worker's stamp comes a moment after).
"""

from __future__ import annotations

import signal
import sqlite3
from datetime import datetime
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from bus.events import GapDetected
from bus.producer import Producer
from harness.sim.tape import prints_before
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.cli.main import app
from observer.config.load import load_settings
from observer.kis.bars import GapAsk
from observer.kis.journal import read_file
from observer.kis.journal_replay import capture_journal
from observer.kis.time_trades import TradesAsk
from observer.writer.replay import replay_into_db
from tests.gap_recovery.conftest import HALF_TEN, MARKET, STOCKS, Rig
from tests.gap_recovery.test_gap_recovery import MINUTE, TEN_NS, S, _final_states, _gaps
from tests.support import SimThread, db_rows

BARS = (
    "select symbol, venue, minute_ns, open, high, low, close, volume, gap_id, trading_session "
    "from minute_bars where quality = 'recovered' order by symbol, venue, minute_ns"
)
TRADES = (
    "select symbol, venue, exchange_ns, price, qty, cum_volume, ask1, bid1, change_rate, "
    "strength, account, trading_session, received_ns from trade_ticks "
    "where source = 'gap_recovery' order by symbol, venue, cum_volume"
)
MIDNIGHT_NS = int(datetime.combine(HALF_TEN.date(), datetime.min.time(), KST).timestamp()) * S


def _chain_gaps(sim: SimThread) -> list[GapDetected]:
    """Volume-chain gaps of KRX's record before 10:10: two trades missed of one stock, one of
    each of two more, as Track B's chain measures them."""
    gaps = []
    for n, (symbol, missed) in enumerate(zip(STOCKS[4:7], (2, 1, 1), strict=True)):
        config, faults = sim.sim.config, sim.sim.faults
        prints = prints_before(
            MARKET, faults, config, "J", symbol, HALF_TEN.date(), 36_600 - n * 100, 37_800, 10
        )
        before, after = prints[-2 - missed], prints[-1]
        gaps.append(
            GapDetected(
                gap_id=f"acct1:chain:{symbol}",
                symbol=symbol,
                start_ns=MIDNIGHT_NS + before.stamp * S,
                end_ns=MIDNIGHT_NS + after.stamp * S,
                reason="volume_chain",
                account="acct1",
                missing_volume=after.volume - after.qty - before.volume,
                cum_before=before.volume,
                cum_after=after.volume - after.qty,
            )
        )
    return gaps


def test_a_days_recovered_bars_and_trades_replay_from_the_journal_into_the_rows_stored(
    rig: Rig, tmp_path: Path
) -> None:
    """Twelve silences and disconnects (some overlapping), one 45-minute disconnect and three
    volume-chain gaps, through a 5xx burst: the replay publishes what the live run published,
    and nothing of the calls that failed."""
    url, writer, sim = rig.url, rig.writer, rig.sim
    long_gap = GapDetected(
        gap_id="acct1:long",
        symbol=STOCKS[3],
        start_ns=TEN_NS - 20 * MINUTE + 10 * S,
        end_ns=TEN_NS + 25 * MINUTE,
        reason="disconnect",
        account="acct1",
    )
    chains = _chain_gaps(sim)
    gaps = [*_gaps(10), long_gap, *chains]
    sim.sim.faults.http_5xx = 3
    with Producer("track_b", writer.ingest, rig.outbox, clock_ns=sim.sim.clock.now_ns) as p:
        for gap in gaps:
            p.send(gap)
        assert p.wait_acked(30)
    rig.start()
    assert _final_states(url, len(gaps)) == {"recovered": len(gaps)}
    assert rig.proc is not None
    rig.proc.send_signal(signal.SIGTERM)
    assert rig.proc.wait(30) == 0
    assert sim.sim.faults.http_5xx == 0  # the burst was met
    live_bars, live_trades = db_rows(url, BARS), db_rows(url, TRADES)
    # The long gap's 46 minutes but those a shorter gap of its symbol recovered first
    assert len({row[8] for row in live_bars}) >= 8
    assert sum(r[8] == "acct1:long" for r in live_bars) > 30
    # Each chain closed by the exchange's trades: 2 + 1 + 1 of them
    closed = db_rows(url, "select count(*) from gaps where trades > 0")
    assert closed == [(len(chains),)] and len(live_trades) == 4

    journal = tmp_path / "data" / "journal"
    records = [r for f in sorted(journal.rglob("gap_recovery.*.kisj.zst")) for r in read_file(f)]
    long_pages = [a for r in records if (a := GapAsk.of(r.context)) and a.gap_id == "acct1:long"]
    assert len({a.ask for a in long_pages}) == 1 and len(long_pages) == 2  # one call, 2 pages
    trade_asks = [a for r in records if (a := TradesAsk.of(r.context))]
    assert {a.gap_id for a in trade_asks} == {g.gap_id for g in chains}

    settings = load_settings(rig.config)
    venues = venues_from(settings.venues, timeline_from(settings.phases, settings.calendar))
    out = tmp_path / "replayed.cap"
    parsed = capture_journal(
        journal, HALF_TEN.date(), out, session_of=venues.session_of_ns, process="gap_recovery"
    )
    assert parsed.refused_answers == 0 and parsed.unplaced == 0, parsed.summary()
    scratch = f"sqlite:///{tmp_path / 'replayed.db'}"
    result = replay_into_db(out, scratch, upgrade=True)
    assert not result.not_stored() and result.committed == parsed.events
    assert db_rows(scratch, BARS) == live_bars
    replayed = db_rows(scratch, TRADES.replace("'gap_recovery'", "'journal.gap_recovery.20261120'"))
    assert [r[:-1] for r in replayed] == [r[:-1] for r in live_trades]
    # received_ns: the journal's stamp of the last page, the worker's a moment after it
    assert all(0 <= b[-1] - a[-1] < S for a, b in zip(replayed, live_trades, strict=True))

    # The command does the same and compares every table; a row changed in the live database
    # since is named.
    def compare(n: int) -> Result:
        db = f"sqlite:///{tmp_path / f'compared{n}.db'}"
        args = ["journal", "replay", "--date", f"{HALF_TEN:%Y-%m-%d}", "--db", db, "--compare"]
        return CliRunner().invoke(app, [*args, "--config", str(rig.config)])

    same = compare(1)
    assert same.exit_code == 0, same.output
    assert f"minute_bars: {len(live_bars):,} live, {len(live_bars):,} replayed, the same" in (
        same.output
    )
    assert "trade_ticks: 4 live, 4 replayed, the same rows" in same.output
    assert "2 tables compared: the live run's rows, every one" in same.output
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        first = f"symbol = '{live_bars[0][0]}' and minute_ns = {live_bars[0][2]}"
        conn.execute(f"update minute_bars set close = close + 1 where {first}")
    changed = compare(2)
    assert changed.exit_code == 1, changed.output
    assert "replayed: 1 only live, 1 only replayed" in changed.output
    assert f"close={live_bars[0][6] + 1}" in changed.output  # the live row, as it is now
    assert "differ from the live run's: minute_bars" in changed.output
    whole = ["journal", "replay", "--date", "2026-11-20", "--db", "sqlite://", "--compare"]
    refused = CliRunner().invoke(app, [*whole, "--tr", "FHPST01060000"])
    assert refused.exit_code == 2 and "not with --tr" in refused.output
