"""The Track B worker process: context sync, slots on two accounts, pins, gaps, stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from bus.events import PriceSnapshot, UniverseMember, UniverseSnapshot
from bus.producer import Producer
from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db.migrate import upgrade
from observer.process.heartbeat import Heartbeat
from tests.support import (
    ROOT,
    SimThread,
    WriterProcess,
    db_rows,
    sim_accounts_config,
    start_on_sim_clock,
    wait_until,
)
from workers.track_b.cli import app
from workers.track_b.worker import TrackB

MARKET = Market(19, TradingCalendar(), stocks=200, etfs=10)
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
UNIVERSE = STOCKS[:30]
MOVERS = UNIVERSE[20:23]  # small caps whose opening half hour is busy
DAY = date(2026, 11, 20)
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)


def rows(url: str, sql: str) -> list[Any]:
    return db_rows(url, sql, until_schema=True)


def rows_once(url: str, sql: str, at_least: int, what: str, timeout_s: float = 120) -> list[Any]:
    """The rows of ``sql`` once there are ``at_least`` of them, within ``timeout_s``."""
    return wait_until(lambda: len(r := rows(url, sql)) >= at_least and r, timeout_s, what)


def stored_as_sent(
    url: str,
    sent: Mapping[str, int],
    table: str = "trade_ticks",
    count: str = "count(*)",
    timeout_s: float = 60,
) -> None:
    """Assert that ``table`` holds ``sent`` records (``count``) per venue (a venue sent none:
    no row), once the writer has them: a stopped Track B's last events are committed a
    moment after it exits (on a loaded machine, thousands of them), so they are waited for,
    ``timeout_s`` at most; then the counts are compared, so a shortfall shows its difference."""
    wanted = {venue: n for venue, n in sent.items() if n}
    query = f"select venue, {count} from {table} group by venue"
    with contextlib.suppress(AssertionError):
        wait_until(lambda: dict(rows(url, query)) == wanted, timeout_s, "every record stored")
    assert dict(rows(url, query)) == wanted


def universe(
    symbols: Sequence[str],
    nxt: Collection[str] = (),
    day: date = DAY,
    measures: Mapping[str, tuple[str, ...]] | None = None,
) -> UniverseSnapshot:
    """``day``'s universe of ``symbols``, the largest first; Nextrade trades ``nxt``; the
    market measures some are under, ``measures``."""
    members = tuple(
        UniverseMember(
            symbol=s,
            market="KOSPI",
            rank=n,
            prev_close=10_000,
            market_cap=10**13 // n,
            avg_volume_20d=1_000_000,
            atr_14=Decimal(300),
            nxt_eligible=s in nxt if nxt else None,
            nxt_halted=False if nxt else None,
            measures=(measures or {}).get(s, ()),
        )
        for n, s in enumerate(symbols, start=1)
    )
    return UniverseSnapshot(
        trade_date=day,
        based_on=MARKET.calendar.previous_session(day),
        min_prev_close=4000,
        members=members,
    )


def publish_morning(writer: WriterProcess, outbox: Path, nxt: Collection[str] = ()) -> None:
    """The universe (Nextrade trading ``nxt``), and Track A's 09:00-09:20 snapshots with
    three busy movers."""
    with Producer("universe", writer.ingest, outbox / "universe") as producer:
        producer.send(universe(UNIVERSE, nxt))
        assert producer.wait_acked(30)
    with Producer("track_a", writer.ingest, outbox / "track_a") as producer:
        for n in range(3):
            at = NINE + timedelta(minutes=10 * n)
            for s in UNIVERSE:
                busy = s in MOVERS
                volume = (n + 1) * (400_000 if busy else 20_000)
                producer.send(
                    PriceSnapshot(
                        cycle_id=at.strftime("%Y%m%d-%H%M"),
                        symbol=s,
                        market="KOSPI",
                        observed_ns=int(at.timestamp() * 1e9),
                        price=10_000 + busy * 600 * n,
                        change=0,
                        change_rate=Decimal(0),
                        open=10_000,
                        high=10_000 + busy * 800 * n,
                        low=10_000 - 50,
                        volume=volume,
                        traded_value=volume * 10_000,
                        base_price=10_000,
                    )
                )
        assert producer.wait_acked(30)


def start_track_b(
    tmp_path: Path, writer: WriterProcess, sim: SimThread, slots: int = 3
) -> subprocess.Popen[bytes]:
    """`observer track-b run` on the simulator's clock: ``slots`` on each of two accounts."""
    track_b = f"[kis.stream]\nmax_registrations = {slots}\n[track_b]\nsilence_tolerance_s = 600\n"
    config = sim_accounts_config(tmp_path, sim, writer, track_b)
    return start_on_sim_clock(
        ["track-b", "run", "--config", str(config)], sim, tmp_path / "track_b.log"
    )


def shut_down(proc: subprocess.Popen[bytes] | None, writer: WriterProcess, sim: SimThread) -> None:
    """A test's end: its Track B killed if it still runs, then its writer and simulator."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(30)
    writer.kill()
    sim.close()


def test_track_b_syncs_allocates_streams_pins_and_records_gaps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    data = tmp_path / "data"
    # 09:29:00 at 20x: the context sync (09:29:50) comes 2.5 s after the clock starts.
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=20)
    proc: subprocess.Popen[bytes] | None = None
    try:
        publish_morning(writer, tmp_path / "outbox")
        proc = start_track_b(tmp_path, writer, sim)
        # Six slots on two accounts, the movers first (from the context sync).
        allocated = wait_until(
            lambda: (
                (
                    r := rows(
                        url,
                        "select account, symbol, trigger from slot_events "
                        "where action = 'allocate' order by seq",
                    )
                )
                and len(r) >= 6
                and r
            ),
            60,
            "six allocations",
        )
        assert [r[1] for r in allocated[:3]] == sorted(MOVERS, key=MOVERS.index)
        assert {r[2] for r in allocated[:3]} == {"context_sync"}
        assert {r[0] for r in allocated[:6]} == {"acct1", "acct2"}
        wait_until(
            lambda: rows(url, "select count(distinct account) from trade_ticks") == [(2,)],
            60,
            "ticks from both accounts",
        )
        # Default placements by market cap that found no slot are not triggered symbols.
        assert rows(url, "select count(*) from overflow_ledger") == [(0,)]
        # An operator pins a symbol: it takes a slot and keeps it.
        pinned = UNIVERSE[-1]
        runner = CliRunner()
        done = runner.invoke(app, ["slots", "--data-dir", str(data), "pin", pinned])
        assert done.exit_code == 0, done.output
        wait_until(
            lambda: rows(
                url,
                f"select action from slot_events where symbol = '{pinned}' and trigger = 'manual'",
            ),
            60,
            "the pin's slot",
        )
        # The symbol it replaced is still triggered: in the ledger, once.
        evicted = wait_until(
            lambda: rows(url, "select symbol, trigger, reason from overflow_ledger"),
            30,
            "the evicted symbol's overflow",
        )
        assert len(evicted) == 1 and evicted[0][1] == "context_sync"
        assert evicted[0][2].startswith(f"replaced by {pinned}")
        listed = runner.invoke(app, ["slots", "--data-dir", str(data), "list", "--json"])
        shown = json.loads(listed.output)["slots"]
        assert len(shown) == 6 and any(s["symbol"] == pinned and s["pinned"] for s in shown)
        # A dropped session: a gap for every streamed symbol, closed at re-registration.
        held = {s["symbol"] for s in shown}
        asyncio.run_coroutine_threadsafe(sim.sim.drop_websockets(), sim.loop).result(10)
        gaps = wait_until(
            lambda: (g := rows(url, "select symbol, reason from gaps")) and len(g) >= 6 and g,
            60,
            "a gap per held symbol",
        )
        assert {g[0] for g in gaps} >= held and {g[1] for g in gaps} == {"disconnect"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        shut_down(proc, writer, sim)


# Timed: at the lower priority beside the suite the simulator (in this process) took longer
# than Track B's 3 wall seconds to confirm its releases (CI, 2026-12-02: 791 of 11,292 trades
# sent after them, unstored, with Track B's warning).
@pytest.mark.timed
def test_a_stop_mid_session_stores_every_tick_the_sessions_were_sent(tmp_path: Path) -> None:
    # Stopped while streaming (an operator's stop, a host's shutdown): Track B releases its
    # slots and reads on until KIS confirms each release, the last frame of its symbol, so
    # every trade the server sent is stored. Before, the sessions closed at once and what
    # was still in the socket was lost without a gap.
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    # The whole universe streamed (15 slots per account) at 120x: frames arrive all the time.
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=120)
    proc: subprocess.Popen[bytes] | None = None
    try:
        publish_morning(writer, tmp_path / "outbox")
        proc = start_track_b(tmp_path, writer, sim, slots=15)
        wait_until(
            lambda: rows(url, "select count(*) from trade_ticks")[0][0] > 2000,
            60,
            "ticks streaming",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        sent = sim.sim.records_sent["H0STCNT0"]
        # Track B has published them all; the writer may still be storing the last ones.
        assert sent > 0
        wait_until(
            lambda: rows(url, "select count(*) from trade_ticks") == [(sent,)],
            60,
            f"the {sent} ticks sent, stored",
        )
        assert sim.sim.records_sent["H0STCNT0"] == sent  # nothing sent after the releases
    finally:
        shut_down(proc, writer, sim)


def test_the_track_b_program_is_configured_for_its_phases() -> None:
    program = load_settings(ROOT / "config" / "observer.toml").programs["track_b"]
    assert program.kind == "session" and program.command[:3] == ("observer", "track-b", "run")
    # to the shutdown phase: Nextrade's feeds follow its after-market to 20:00
    phases = ("warmup", "track_a_only", "full_operation", "track_a_closing", "shutdown")
    assert program.phases == phases


def test_track_b_beats_while_it_waits_for_the_universe(tmp_path: Path) -> None:
    """A late universe job must not make the supervisor take Track B for hung."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)  # an empty database: no universe today
    settings = msgspec.convert(
        {"database": {"url": url}, "paths": {"data_dir": str(tmp_path)}}, Settings
    )
    read, write = os.pipe()
    os.set_blocking(read, False)
    clock = SimulatedClock(int((NINE - timedelta(hours=1)).timestamp() * 1e9), 1.0)

    async def wait_a_while() -> None:
        stop = asyncio.Event()
        worker = TrackB(settings, clock, Producer.__new__(Producer), Heartbeat(write, 0.1), stop)
        running = asyncio.ensure_future(worker.run())
        await asyncio.sleep(1.0)  # the length of the wait under test, not a synchronisation
        stop.set()
        await asyncio.wait_for(running, 10)

    asyncio.run(wait_a_while())
    beats = os.read(read, 65536).count(b'"beat"')
    os.close(read)
    os.close(write)
    assert beats >= 5  # one every 0.1 s, while no universe came
