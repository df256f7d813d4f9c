"""Reconciliation against the simulator: trades the server silently never sent are found.

Real processes on loopback: the writer, the simulator, Track B streaming six slots, and
later the gap-recovery daemon; ``observer gap-recovery verify`` and ``report`` run as the
operator runs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
import pytest
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import (
    Alert,
    AlertResolved,
    Event,
    GapDetected,
    Reconciliation,
    SlotDecision,
    TradeTick,
)
from bus.producer import Producer
from harness.sim.config import TickLoss
from harness.sim.market import KST
from harness.sim.realtime import trade_ns
from harness.sim.server import SimConfig
from observer.calendar.clock import ManualClock
from observer.config.tree import Settings
from observer.config.workers import FeedTable, GapRecoverySettings, TrackBSettings
from observer.db.outages import ReadRetries
from observer.db.reconciliation_queries import reconciled_minutes
from observer.kis.schemas import MinuteBarRow
from observer.writer.store import Store
from tests.gap_recovery.conftest import MARKET as GR_MARKET
from tests.gap_recovery.conftest import STOCKS as GR_STOCKS
from tests.support import (
    SimThread,
    WriterProcess,
    db_rows,
    sim_accounts_config,
    start_on_sim_clock,
    timing_over,
    wait_until,
)
from tests.track_b.test_track_b import DAY, MARKET, NINE, publish_morning
from workers.gap_recovery import verify
from workers.gap_recovery.cli import app as gaps_app
from workers.gap_recovery.verify import FAILED_ALERT, Verifier

S = 1_000_000_000
MINUTE = 60 * S
E = TypeVar("E", bound=Event)
LOSS = TickLoss(
    start_ns=int((NINE + timedelta(minutes=31)).timestamp()) * S,
    end_ns=int((NINE + timedelta(minutes=33)).timestamp()) * S,
    share=0.3,
)


def lost_volume(symbol: str, minute_ns: int) -> int:
    """What the server withheld of ``symbol``'s trades in the minute opening at ``minute_ns``."""
    bar = datetime.fromtimestamp(minute_ns / S, KST)
    index = (bar.hour * 60 + bar.minute) - 9 * 60
    return sum(
        tick.qty
        for nth, tick in enumerate(MARKET.ticks(symbol, DAY, index))
        if LOSS.withholds(symbol, trade_ns(bar, tick), nth)
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def command(args: list[str], config: Path, env: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(gaps_app, [*args, "--json", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return found


@pytest.mark.slow
@dataclass
class LossyMorning:
    """A writer, the simulator withholding `LOSS`, Track B streaming: ``procs`` all started."""

    url: str
    sim: SimThread
    writer: WriterProcess
    config: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextmanager
def lossy_morning(
    tmp_path: Path,
    track_b: str,
    gap_recovery: str = "",
    sim_config: SimConfig | None = None,
    *,
    loss: bool = True,
    nxt: Collection[str] = (),
) -> Iterator[LossyMorning]:
    """09:29:00 at 5x, 20x from 09:29:40: Track B's slots stream from 09:30 (``track_b``,
    ``gap_recovery``: more of their settings; Nextrade trading ``nxt`` of the universe); with
    ``loss``, the server withholds 30 % of the trades of 09:31-09:33 with the session up. Every
    process stopped at the end.

    09:31 comes 12 wall seconds after the clock starts: Track B's start (a process, its
    approval keys, its sessions) took more than the 6 s a flat 20x left on a 2-core machine
    with the suite beside it ("no session up at 09:31").
    """
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    faster = ((NINE + timedelta(minutes=29, seconds=40), 20.0),)
    config = sim_config or SimConfig()
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), config, speed=5, changes=faster)
    if loss:
        sim.sim.faults.tick_loss.append(LOSS)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        publish_morning(writer, tmp_path / "outbox", nxt)
        settings = "[kis.stream]\nmax_registrations = 3\n[track_b]\n" + track_b
        # 20x: a registration's round trip of 0.1 wall seconds is 2 simulated seconds
        settings += "[gap_recovery]\nverify_edge_s = 6.0\n" + gap_recovery
        config = sim_accounts_config(tmp_path, sim, writer, settings)
        procs.append(
            start_on_sim_clock(["track-b", "run", "--config", str(config)], sim, tmp_path / "b.log")
        )
        yield LossyMorning(url, sim, writer, config, procs)
    finally:
        for proc in procs:
            stop(proc)
        writer.kill()
        sim.close()


@pytest.mark.timed  # Track B must be streaming by 09:31, 12 wall seconds after the start
def test_a_silent_loss_is_found_by_reconciliation_and_recovered(tmp_path: Path) -> None:
    # The volume chain off: the day's reconciliation is the backstop for a feed whose
    # cumulative volumes cannot be trusted (test_track_b_volume_chain: the chain on)
    with lossy_morning(tmp_path, "volume_chain = false\n") as morning:
        url, sim, config, procs = morning.url, morning.sim, morning.config, morning.procs
        env = {**os.environ, "OBSERVER_CLOCK": sim.sim.clock.spec}  # for the commands in-process
        track_b = procs[0]
        until = int((NINE + timedelta(minutes=35, seconds=10)).timestamp()) * S
        wait_until(lambda: sim.sim.clock.now_ns() > until, 60, "09:35:10")
        stop(track_b)
        assert track_b.returncode == 0, (tmp_path / "b.log").read_text()[-2000:]
        timing_over()  # what follows is not timed against the simulated clock
        withheld = sum(sim.sim.realtime.records_withheld.values())
        assert withheld > 0, "Track B streamed nothing in 09:31-09:33: it started late"
        detected = db_rows(url, "select count(*) from gaps")[0][0]

        calls_before = sim.sim.calls["FHKST03010200"]
        verified = command(["verify", "--date", DAY.isoformat()], config, env)
        # One call per symbol: its watched minutes fit in one page of 30 bars.
        assert verified["calls"] == verified["symbols"] == 6
        assert sim.sim.calls["FHKST03010200"] - calls_before == verified["calls"]
        minutes = db_rows(
            url,
            "select symbol, minute_ns, status, stored_volume, bar_volume, gap_id "
            "from reconciliation_minutes",
        )
        assert len(minutes) == verified["watched_minutes"] >= 12
        # The stream and the bars agree to the share, except for what the server withheld.
        for symbol, minute, _, stored, bar, _ in minutes:
            assert bar - stored == lost_volume(symbol, minute), (symbol, minute)
        short = [m for m in minutes if m[2] == "short"]
        assert short and {m[1] for m in short} <= {LOSS.start_ns, LOSS.start_ns + MINUTE}
        assert verified["short"] == len(short) and verified["recovered"] == 0
        assert verified["missing_volume"] == sum(bar - stored for _, _, _, stored, bar, _ in short)
        # Track B's detectors saw none (or few) of it: the rest became reconciliation gaps.
        misses = [m for m in short if m[5].startswith("reconciliation:")]
        assert misses and verified["misses"] == len(misses)
        assert all(m[5] for m in short)  # every short minute now has a gap
        gaps = db_rows(url, "select gap_id, reason, state, end_ns - start_ns from gaps")
        ours = {g[0]: g for g in gaps if g[1] == "reconciliation"}
        assert set(ours) == {m[5] for m in misses} and len(gaps) == detected + len(misses)
        assert {(g[2], g[3]) for g in ours.values()} == {("detected", MINUTE - S)}  # to :59
        print(f"reconciliation: {verified}; Track B's gaps: {detected}")
        alerts = dict(db_rows(url, "select code, severity from alerts"))
        assert alerts["reconciliation_misses"] == "warning" and "reconciliation_done" in alerts

        # The two figures differ: the detected gaps cannot see the loss, the bars can.
        report = command(["report", "--date", DAY.isoformat()], config, env)
        figures = report["reconciliation"]
        assert figures["short"] == len(short) and figures["misses"] == len(misses)
        assert figures["completeness_pct"] < report["completeness_pct"]
        assert figures["stream_pct"] == figures["completeness_pct"] < 100.0

        # Gap recovery fills the reconciliation's gaps with the exchange's bars.
        recovery = start_on_sim_clock(
            ["gap-recovery", "run", "--config", str(config)], sim, tmp_path / "g.log"
        )
        procs.append(recovery)
        wait_until(
            lambda: (
                db_rows(
                    url,
                    "select count(*) from gaps where reason = 'reconciliation' and state = "
                    "'recovered'",
                )[0][0]
                == len(misses)
            ),
            90,
            "the reconciliation's gaps recovered",
        )
        stop(recovery)
        after = command(["report", "--date", DAY.isoformat()], config, env)["reconciliation"]
        assert after["recovered"] == len(misses) and after["misses"] == len(misses)
        explained = len(short) - len(misses)  # by Track B's own gaps, recovered or not
        assert after["short"] + after["recovered"] == len(short) and after["short"] <= explained
        assert after["stream_pct"] == figures["stream_pct"] < after["completeness_pct"]

        # Every row says where and when: KRX's feed and bars, in its regular session.
        for table in ("reconciliation_minutes", "minute_bars", "gaps", "slot_events"):
            stamps = db_rows(url, f"select distinct venue, trading_session from {table}")
            assert stamps == [("KRX", "regular")], table
        assert db_rows(url, "select distinct venue from reconciliations") == [("KRX",)]
        detections = (
            "select distinct venue, trading_session from gap_events where symbol is not null"
        )
        assert db_rows(url, detections) == [("KRX", "regular")]

        # Reconciled again, the day has nothing left to publish.
        again = command(["verify", "--date", DAY.isoformat()], config, env)
        assert again["recovered"] >= len(misses) and again["misses"] == len(misses)
        assert db_rows(url, "select count(*) from gaps")[0][0] == len(gaps)
        statuses = Counter(s for (s,) in db_rows(url, "select status from reconciliation_minutes"))
        assert statuses["short"] == len(short) + again["short"]  # the first run's, and any left


def slot(action: Literal["allocate", "release"], symbol: str) -> SlotDecision:
    return SlotDecision(
        account="acct1",
        action=action,
        symbol=symbol,
        slot=0,
        trigger="market_cap",
        score=Decimal(1),
        reason="test",
    )


def all_kept(nth: int) -> bool:
    return True


def odd_lost(nth: int) -> bool:
    return nth % 2 == 0


def ticks_of(symbol: str, minute: datetime, keep: Callable[[int], bool]) -> list[TradeTick]:
    """The simulated market's trades of one minute as Track B stores them (stamped HHMMSS)."""
    day = minute.date()
    index = (minute.hour * 60 + minute.minute) - 9 * 60
    start = int(minute.timestamp()) * S
    return [
        TradeTick(
            symbol=symbol,
            exchange_ns=start + int(tick.second) * S,
            received_ns=start,
            price=tick.price,
            qty=tick.qty,
            cum_volume=0,
            cum_value=0,
            change_rate=Decimal(0),
            account="acct1",
        )
        for nth, tick in enumerate(GR_MARKET.ticks(symbol, day, index))
        if keep(nth)
    ]


FIFTEEN = datetime(2026, 11, 20, 15, 0, tzinfo=KST)
# The stored days here stream to 15:00 (no KRX closing auction): their streams end there.
# The stored day's streams end at 15:00: not to KRX's close, nor through its after-market
TO_15 = Settings(
    track_b=TrackBSettings(feeds=FeedTable(krx_closing_auction=(), krx_after_market=()))
)


def store_afternoon(writer: WriterProcess, tmp_path: Path) -> tuple[str, str]:
    """Track B's day as stored: two slots 14:50-14:58:30; half of a's 14:53 trades lost."""
    a, b = GR_STOCKS[:2]
    at = {"ns": int((FIFTEEN - timedelta(minutes=10)).timestamp()) * S}
    with Producer("track_b", writer.ingest, tmp_path / "ob", clock_ns=lambda: at["ns"]) as p:
        for symbol in (a, b):
            p.send(slot("allocate", symbol))
        for n in range(9):  # 14:50 .. 14:58
            minute = FIFTEEN - timedelta(minutes=10 - n)
            for symbol in (a, b):
                lossy = symbol == a and n == 3  # 14:53: every other trade of a lost
                for tick in ticks_of(symbol, minute, odd_lost if lossy else all_kept):
                    p.send(tick)
        at["ns"] = int((FIFTEEN - timedelta(seconds=90)).timestamp()) * S
        for symbol in (a, b):
            p.send(slot("release", symbol))
        assert p.wait_acked(30)
    return a, b


def recovery_config(tmp_path: Path, writer: WriterProcess, sim: SimThread) -> Path:
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{writer.run_dir}"\n'
        f'[database]\nurl = "{writer.url}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path}"\n'
        '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 60\n'
        "[gap_recovery]\nverify_delay_s = 10.0\n"
        # the stored day's streams end at 15:00
        "[track_b.feeds]\nkrx_closing_auction = []\nkrx_after_market = []\n"
    )
    return config


@pytest.mark.slow
def test_the_daemon_reconciles_the_day_once_after_the_stream_ends(tmp_path: Path) -> None:
    """Track B's day as stored (slots 14:50-14:58:30, one minute with half its trades lost);
    the daemon reconciles it 10 s after 15:00 by itself, recovers the minute, and a restarted
    daemon does not reconcile it again."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    fifteen = FIFTEEN
    sim = SimThread(GR_MARKET, fifteen, speed=2.0)
    recovery: subprocess.Popen[bytes] | None = None
    try:
        a, b = store_afternoon(writer, tmp_path)
        config = recovery_config(tmp_path, writer, sim)
        log = tmp_path / "g.log"
        recovery = start_on_sim_clock(["gap-recovery", "run", "--config", str(config)], sim, log)
        wait_until(lambda: "reconciliation of 2026-11-20 done" in log.read_text(), 60, "the day")
        # The log line follows the sends; the rows follow the writer's commit of both symbols.
        query = "select source, symbol, status, minute_ns from reconciliation_minutes"
        wait_until(lambda: {r[1] for r in db_rows(url, query)} == {a, b}, 30, "both stored")
        rows = db_rows(url, query)
        assert {r[0] for r in rows} == {"gap_recovery"}
        lossy_minute = int((fifteen - timedelta(minutes=7)).timestamp()) * S
        # 14:51 .. 14:57 of both (14:50 began with the slot, 14:58 was cut by the release)
        assert Counter((r[1], r[2]) for r in rows) == {
            (a, "complete"): 6,
            (a, "short"): 1,
            (b, "complete"): 7,
        }
        assert [r[3] for r in rows if r[2] == "short"] == [lossy_minute]
        wait_short_minute_recovered(url)
        calls = db_rows(url, "select sum(calls) from reconciliations")[0][0]
        assert calls == 2  # one page of bars per symbol
        # Killed and started again the same evening: nothing is reconciled twice.
        recovery.kill()
        recovery.wait(30)
        recovery = start_on_sim_clock(["gap-recovery", "run", "--config", str(config)], sim, log)
        wait_until(
            lambda: log.read_text().count("reconciliation of 2026-11-20 done") == 2, 60, "again"
        )
        assert "2 symbols reconciled before" in log.read_text()
        assert db_rows(url, "select count(*) from reconciliations") == [(2,)]
    finally:
        if recovery is not None:
            stop(recovery)
        writer.kill()
        sim.close()


def wait_short_minute_recovered(url: str) -> None:
    """Wait until the one gap the reconciliation found is recovered."""
    query = "select state from gaps where reason = 'reconciliation'"
    wait_until(lambda: db_rows(url, query) == [("recovered",)], 60, "the short minute recovered")


@pytest.mark.slow
def test_a_day_that_ended_while_no_daemon_ran_is_reconciled_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Stopped before 15:00 on Friday, started on Monday morning: Friday is reconciled first
    (its bars asked by date), and once only."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=KST)
    sim = SimThread(GR_MARKET, monday, speed=2.0)
    recovery: subprocess.Popen[bytes] | None = None
    try:
        a, b = store_afternoon(writer, tmp_path)
        config = recovery_config(tmp_path, writer, sim)
        log = tmp_path / "g.log"
        recovery = start_on_sim_clock(["gap-recovery", "run", "--config", str(config)], sim, log)
        wait_until(lambda: "reconciliation of 2026-11-20 done" in log.read_text(), 60, "Friday")
        query = "select symbol, status from reconciliation_minutes"
        wait_until(lambda: {r[0] for r in db_rows(url, query)} == {a, b}, 30, "both stored")
        assert Counter(db_rows(url, query)) == {
            (a, "complete"): 6,
            (a, "short"): 1,
            (b, "complete"): 7,
        }
        # Friday's bars, by date: one page per symbol (the short minute's recovery asks too).
        assert db_rows(url, "select sum(calls) from reconciliations") == [(2,)]
        wait_short_minute_recovered(url)
        asked = sim.sim.calls["FHKST03010230"]
        recovery.kill()
        recovery.wait(30)
        recovery = start_on_sim_clock(["gap-recovery", "run", "--config", str(config)], sim, log)
        wait_until(
            lambda: log.read_text().count("reconciliation of 2026-11-20 done") == 2,
            60,
            "the second start",
        )
        assert (
            "reconciling 2026-11-20 (every venue): 2 symbols reconciled before" in log.read_text()
        )
        assert sim.sim.calls["FHKST03010230"] == asked  # nothing asked again
        assert db_rows(url, "select count(*) from reconciliations") == [(2,)]
    finally:
        if recovery is not None:
            stop(recovery)
        writer.kill()
        sim.close()


# ------------------------------------------------------------------ the daemon's cut-off
# In-process, on the writer's store: a verifier's events are applied as the writer would, and
# its bars come from `BarLane`, which answers the simulated market's full minutes.

FRIDAY = FIFTEEN.date()
MONDAY_EIGHT = datetime(2026, 11, 23, 8, 0, tzinfo=KST)


def at(hour: int, minute: int, second: int = 0) -> int:
    return int(FIFTEEN.replace(hour=hour, minute=minute, second=second).timestamp()) * S


class BarLane:
    """A KIS client's stand-in: the market's whole minute bars (every trade), calls counted."""

    def __init__(self) -> None:
        self.requests = 0

    def _rows(self, symbol: str, day: date, until: str, since: str) -> list[MinuteBarRow]:
        self.requests += 1
        rows = []
        for n in range(
            int(since[:2]) * 60 + int(since[2:4]), int(until[:2]) * 60 + int(until[2:4]) + 1
        ):
            minute = datetime.combine(day, time(n // 60, n % 60), tzinfo=KST)
            if volume := sum(t.qty for t in ticks_of(symbol, minute, all_kept)):
                rows.append(
                    MinuteBarRow(f"{day:%Y%m%d}", f"{minute:%H%M%S}", *["100"] * 4, str(volume))
                )
        return rows

    async def minute_bars_today(
        self, symbol: str, until: str, since: str, venue: str = "KRX"
    ) -> list[MinuteBarRow]:
        return self._rows(symbol, FRIDAY, until, since)

    async def minute_bars_on(
        self, symbol: str, day: str, until: str, since: str, venue: str = "KRX"
    ) -> list[MinuteBarRow]:
        return self._rows(symbol, datetime.strptime(day, "%Y%m%d").date(), until, since)


class StoredBus:
    """Sends events straight into the writer's store, each source's seqs in turn."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.store = store
        self.clock = clock
        self.seqs: Counter[str] = Counter()
        self.sent: list[tuple[str, Event]] = []

    def send_all(self, source: str, events: list[Event]) -> None:
        envelopes = []
        for event in events:
            self.seqs[source] += 1
            envelopes.append(Envelope(source, self.seqs[source], self.clock.now_ns(), event))
            self.sent.append((source, event))
        self.store.apply([decode_parts(encode_frame(envelopes))])

    def sender(self, source: str) -> Callable[[Event], None]:
        return lambda event: self.send_all(source, [event])

    def of(self, source: str, kind: type[E]) -> list[E]:
        return [e for s, e in self.sent if s == source and isinstance(e, kind)]

    def verifier(self, source: str) -> Verifier:
        lane: Any = BarLane()
        return Verifier(TO_15, self.clock, self.sender(source), self.store.engine, [lane])


def track_b_day(bus: StoredBus, lossy: set[tuple[str, int]]) -> None:
    """GR_STOCKS' first two in slots from 14:30 to the stream's end; ``lossy`` minutes
    (symbol, minute_ns) lost every other trade."""
    events: list[Event] = []
    for symbol in GR_STOCKS[:2]:
        events.append(slot("allocate", symbol))
        for n in range(30, 60):
            keep = odd_lost if (symbol, at(14, n)) in lossy else all_kept
            events.extend(ticks_of(symbol, FIFTEEN.replace(hour=14, minute=n), keep))
    bus.send_all("track_b", events)


def shorts_of(reconciliation: Reconciliation) -> dict[int, str]:
    return {c.minute_ns: c.gap_id for c in reconciliation.minutes if c.status == "short"}


def test_a_verify_during_the_session_leaves_the_rest_of_the_day_to_the_daemon(
    store: Store,
) -> None:
    """``verify`` at 14:44 compares 14:31-14:42 only; the daemon's run after the stream's end
    still reconciles those symbols, finds 14:55's loss, and does not publish 14:40's again."""
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    a, b = GR_STOCKS[:2]
    early, late = at(14, 40), at(14, 55)
    track_b_day(bus, {(a, early), (a, late)})
    clock.advance((at(14, 44) - clock.now_ns()) / S)
    asyncio.run(bus.verifier("gap_verify").verify_day(FRIDAY))
    midday = {r.symbol: r for r in bus.of("gap_verify", Reconciliation)}
    assert set(midday) == {a, b} and max(c.minute_ns for c in midday[a].minutes) == at(14, 42)
    assert shorts_of(midday[a]) == {early: f"reconciliation:{a}:{early}"}

    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    daemon = bus.verifier("gap_recovery")
    asyncio.run(daemon._settle(FRIDAY, asyncio.Event()))
    whole = {r.symbol: r for r in bus.of("gap_recovery", Reconciliation)}
    assert set(whole) == {a, b}
    assert [c.minute_ns for c in whole[a].minutes] == list(range(at(14, 31), at(14, 59), MINUTE))
    # 14:40's gap was recorded by the first run: found, not published twice.
    assert shorts_of(whole[a]) == {m: f"reconciliation:{a}:{m}" for m in (early, late)}
    assert [g.start_ns for g in bus.of("gap_recovery", GapDetected)] == [late]
    with store.engine.connect() as conn:
        rows, _ = reconciled_minutes(conn, FRIDAY)
    assert sorted(m for s, m, status, *_ in rows if status == "short") == [early, late]

    asyncio.run(daemon._settle(FRIDAY, asyncio.Event()))  # restarted: nothing left to do
    assert len(bus.of("gap_recovery", Reconciliation)) == 2


def test_a_daemon_starting_finishes_a_last_session_it_reconciled_only_in_part(
    store: Store,
) -> None:
    """Killed on Friday after storing b's reconciliation, started on Monday: a's, with its
    14:55 loss, is reconciled then; b's is not again."""
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    a, b = GR_STOCKS[:2]
    track_b_day(bus, {(a, at(14, 55))})
    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    asyncio.run(bus.verifier("gap_recovery").verify_day(FRIDAY, skip={a}))
    assert [r.symbol for r in bus.of("gap_recovery", Reconciliation)] == [b]

    clock.advance((int(MONDAY_EIGHT.timestamp()) * S - clock.now_ns()) / S)
    stop = asyncio.Event()
    stop.set()  # the start-up's catch-up only
    asyncio.run(bus.verifier("gap_recovery").run_daily(stop))
    reconciled = bus.of("gap_recovery", Reconciliation)
    assert [r.symbol for r in reconciled] == [b, a]
    assert reconciled[1].trade_date == FRIDAY
    assert shorts_of(reconciled[1]) == {at(14, 55): f"reconciliation:{a}:{at(14, 55)}"}


def test_a_symbol_whose_stored_minutes_the_database_fails_fails_alone_and_is_tried_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails the read of a's stored minutes (its connection lost mid-run): a's
    run fails as a failed fetch does (counted on the read policy, alerted), b is reconciled,
    and the next attempt reconciles a, its 14:55 loss found."""
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    a, b = GR_STOCKS[:2]
    track_b_day(bus, {(a, at(14, 55))})
    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    answering = verify.tick_minutes

    def lost(conn: Any, symbol: str, lo: int, hi: int, venue: str, **how: bool) -> Any:
        if symbol == a:
            raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))
        return answering(conn, symbol, lo, hi, venue, **how)

    monkeypatch.setattr(verify, "tick_minutes", lost)
    counted: list[str] = []
    lane: Any = BarLane()
    reads = ReadRetries(1.0, 30.0, lambda: counted.append("failed"))
    verifier = Verifier(TO_15, clock, bus.sender("gap_recovery"), store.engine, [lane], reads)
    result = asyncio.run(verifier.verify_day(FRIDAY))
    assert list(result.failed) == [a] and result.failed[a].startswith("the database: "), result
    assert counted == ["failed"]
    assert [r.symbol for r in bus.of("gap_recovery", Reconciliation)] == [b]
    [failed] = [e for e in bus.of("gap_recovery", Alert) if e.code == "reconciliation_failed"]
    assert f"{a} (the database: " in failed.message

    monkeypatch.setattr(verify, "tick_minutes", answering)  # the database answers again
    again = asyncio.run(verifier.verify_day(FRIDAY, skip={b}, attempt=2))
    assert not again.failed
    reconciled = bus.of("gap_recovery", Reconciliation)
    assert [r.symbol for r in reconciled] == [b, a]
    assert shorts_of(reconciled[1]) == {at(14, 55): f"reconciliation:{a}:{at(14, 55)}"}


@pytest.mark.parametrize("failing_runs", [1, 3])
def test_a_day_that_fails_is_one_alert_of_its_day_resolved_by_the_run_that_reconciles_it(
    store: Store, monkeypatch: pytest.MonkeyPatch, failing_runs: int
) -> None:
    """a's bars fail ``failing_runs`` runs of three: one error alert whose subject is the day,
    then either resolved by the run that reconciles a, or critical once the daemon gives up.
    """
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    a, _ = GR_STOCKS[:2]
    track_b_day(bus, {(a, at(14, 55))})
    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    answering, reads_of_a = verify.tick_minutes, [0]  # a run reads its minutes once

    def failing(conn: Any, symbol: str, lo: int, hi: int, venue: str, **how: bool) -> Any:
        if symbol == a:
            reads_of_a[0] += 1
            if reads_of_a[0] <= failing_runs:
                raise OperationalError("SELECT ...", {}, Exception("server closed it"))
        return answering(conn, symbol, lo, hi, venue, **how)

    monkeypatch.setattr(verify, "tick_minutes", failing)
    retrying = GapRecoverySettings(verify_attempts=3, backoff_max_s=0)
    settings = msgspec.structs.replace(TO_15, gap_recovery=retrying)
    lane: Any = BarLane()
    reads = ReadRetries(1.0, 30.0, lambda: None)
    verifier = Verifier(settings, clock, bus.sender("gap_recovery"), store.engine, [lane], reads)
    asyncio.run(verifier._settle(FRIDAY, asyncio.Event()))
    alerts = [
        (e.severity, e.subject) for e in bus.of("gap_recovery", Alert) if e.code == FAILED_ALERT
    ]
    ended = [(e.severity, e.subject) for e in bus.of("gap_recovery", AlertResolved)]
    day = FRIDAY.isoformat()
    if failing_runs < 3:
        assert alerts == [("error", day)] and ended == [("error", day)]
        assert not verifier.alerts.is_open(FAILED_ALERT, day)
    else:  # given up: critical, on the same condition, left open
        assert alerts == [("error", day), ("critical", day)] and ended == []
        assert verifier.alerts.severity(FAILED_ALERT, day) == "critical"
