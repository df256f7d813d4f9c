"""Track A: the cycle schedule, one cycle against the simulator, and the worker process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from bus.events import PriceSnapshot, UniverseMember, UniverseSnapshot
from bus.producer import Producer
from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.alerts.stored import open_alerts
from observer.calendar.clock import Clock, SimulatedClock
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, LateDay, PhaseSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.cluster.hosts import own_source
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.kis.pacing import PACING_S
from observer.kis.session import KisAccount, open_account, rate_limits
from tests.support import ROOT, SimThread, WriterProcess, db_rows, wait_until
from workers.track_a.cli import app
from workers.track_a.cycle import SnapshotTarget, run_cycle
from workers.track_a.schedule import current_or_next, cycles_of

CALENDAR = TradingCalendar()
MARKET = Market(13, CALENDAR, stocks=300, etfs=30)
DAY = date(2026, 11, 20)  # a Friday session
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
NS = 1_000_000_000
LATE = 3  # calls of one second that may arrive in the next on a loaded machine
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
FIRST = date(2027, 1, 4)  # the year's first session: 10:00-15:30
TIMELINE = timeline_from(
    PhaseSettings(),
    CalendarSettings(
        late_days=(
            LateDay(day=date(2026, 11, 19), minutes=60),
            LateDay(day=FIRST, minutes=60, close_minutes=0),
        )
    ),
)


def at(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), tzinfo=KST)


# ------------------------------------------------------------------ the schedule


def test_a_session_has_a_cycle_every_ten_minutes_and_one_at_the_close() -> None:
    cycles = cycles_of(TIMELINE, DAY, 10, closing=True)
    assert len(cycles) == 40
    assert [c.cycle_id for c in cycles[:3]] == ["20261120-0900", "20261120-0910", "20261120-0920"]
    assert cycles[-2].scheduled == at(DAY, "15:20") and cycles[-2].deadline == at(DAY, "15:30")
    assert cycles[-1].scheduled == at(DAY, "15:30") and cycles[-1].deadline == at(DAY, "15:40")
    assert all(a.deadline == b.scheduled for a, b in pairwise(cycles))
    assert cycles_of(TIMELINE, DAY, 10, closing=False)[-1].deadline == at(DAY, "15:30")
    quarter = cycles_of(TIMELINE, DAY, 15, closing=True)
    assert [c.scheduled.strftime("%H:%M") for c in quarter[:2]] == ["09:00", "09:15"]


def test_late_days_shift_the_cycles_and_closed_days_have_none() -> None:
    csat = cycles_of(TIMELINE, date(2026, 11, 19), 10, closing=True)
    assert csat[0].scheduled == at(date(2026, 11, 19), "10:00")
    assert csat[-1].scheduled == at(date(2026, 11, 19), "16:30")
    # The year's first session opens late and closes as usual: 10:00 to the 15:30 close,
    # as the shipped configuration has it (it moved the close to 16:30 too).
    shipped = load_settings(ROOT / "config" / "observer.toml")
    for timeline in (TIMELINE, timeline_from(shipped.phases, shipped.calendar)):
        first = cycles_of(timeline, FIRST, 10, closing=True)
        assert first[0].scheduled == at(FIRST, "10:00") and len(first) == 34
        assert first[-2].deadline == first[-1].scheduled == at(FIRST, "15:30")
    assert cycles_of(TIMELINE, date(2026, 11, 21), 10, closing=True) == []  # Saturday
    assert cycles_of(TIMELINE, date(2026, 10, 9), 10, closing=True) == []  # Hangul Day


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(DAY, "08:00"), "20261120-0900"),  # the next
        (at(DAY, "09:00"), "20261120-0900"),
        (at(DAY, "09:09"), "20261120-0900"),  # in force: a late start still runs it
        (at(DAY, "09:10"), "20261120-0910"),
        (at(DAY, "15:35"), "20261120-1530"),  # the closing cycle
        (at(DAY, "15:40"), "20261123-0900"),  # Friday after the close: Monday
    ],
)
def test_the_cycle_in_force_or_the_next(now: datetime, expected: str) -> None:
    cycle = current_or_next(TIMELINE, now, 10, closing=True)
    assert cycle is not None and cycle.cycle_id == expected


# ------------------------------------------------------------------ one cycle, in process


def write_config(
    path: Path, sim_url: str, tokens: Path, extra: str = "", accounts: int = 2, rate: int = 100
) -> Path:
    path.write_text(
        f'[paths]\ndata_dir = "{path.parent / "data"}"\nrun_dir = "{path.parent / "run"}"\n'
        f'[database]\nurl = "sqlite:///{path.parent / "observer.db"}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim_url}"\ntoken_dir = "{tokens}"\n'
        + "".join(
            f'[[kis.accounts]]\nalias = "acct{n}"\nrest_per_second = {rate}\n'
            for n in range(1, accounts + 1)
        )
        + extra
    )
    return path


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    with SimThread(MARKET, NINE + timedelta(minutes=5), SimConfig(calls_per_second=60)) as sim:
        yield sim


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, sim_thread: SimThread) -> Settings:
    folder = tmp_path_factory.mktemp("cycle")
    return load_settings(write_config(folder / "observer.toml", sim_thread.url, folder / "tokens"))


def one_cycle(
    settings: Settings, sim: SimThread, targets: list[SnapshotTarget], seconds: float, **kwargs: Any
) -> tuple[Any, list[PriceSnapshot], int]:
    """Run a cycle due ``seconds`` from now; return it, its snapshots and calls after it."""
    clock: Clock = sim.sim.clock
    published: list[PriceSnapshot] = []

    async def go() -> tuple[Any, int]:
        limits = rate_limits(settings.kis, "track_a")
        accounts: list[KisAccount] = [
            open_account(settings.kis, a.alias, clock, limits) for a in settings.kis.accounts
        ]
        try:
            deadline = clock.now_ns() + int(seconds * NS)
            run = await run_cycle(
                [a.client for a in accounts],
                targets,
                "20261120-0900",
                clock,
                deadline,
                published.append,
                **kwargs,
            )
            calls = sum(a.client.requests for a in accounts)
            await asyncio.sleep(0.3)  # requests cancelled at the deadline must stay cancelled
            assert sum(a.client.requests for a in accounts) == calls
            return run, calls
        finally:
            for account in accounts:
                await account.aclose()

    run, calls = asyncio.run(go())
    return run, published, calls


def test_a_cycle_asks_every_symbol_once_within_the_rate(
    settings: Settings, sim_thread: SimThread
) -> None:
    sim = sim_thread.sim
    sim.peak_per_second.clear()
    limited_before = sim.rate_limited
    targets = [SnapshotTarget(s, MARKET.listings[s].market) for s in STOCKS[:120]]
    run, published, _ = one_cycle(settings, sim_thread, targets, 60)
    assert run.succeeded == {t.symbol for t in targets} and not run.failed
    assert not run.overran and run.unfinished == [] and run.missing == []
    assert sorted(p.symbol for p in published) == sorted(run.succeeded)
    assert run.calls == 120
    # Two accounts at 100/s x 0.55: 110/s, so never under 1.09 s. How close it comes is a
    # benchmark's figure (`observer bench track-a`), not this test's: a busy machine is slower.
    assert (run.finished_ns - run.started_ns) / NS > 120 / 110 * 0.95
    assert sim.rate_limited == limited_before
    # 55/s per app key, evenly paced: a second holds at most 55, the bucket's burst, and the
    # few calls let through at the end of the second before that arrived in it (the simulator
    # counts arrivals, in this process: a loaded machine delays them). Unpaced, it is ~110.
    assert max(sim.peak_per_second.values()) <= 55 + max(1, int(55 * PACING_S)) + LATE
    quote = next(p for p in published if p.symbol == STOCKS[0])
    assert quote.cycle_id == "20261120-0900" and quote.market == MARKET.listings[STOCKS[0]].market
    assert quote.price > 0 and quote.base_price > 0 and quote.market_cap > 0


def test_failing_symbols_never_stop_a_cycle(settings: Settings, sim_thread: SimThread) -> None:
    sim = sim_thread.sim
    sim.faults.http_5xx = 40  # a burst of gateway errors: retried, then further passes
    targets = [SnapshotTarget(s, "KOSPI") for s in STOCKS[:60]] + [
        SnapshotTarget("999999", "KOSPI")
    ]
    run, published, _ = one_cycle(settings, sim_thread, targets, 60)
    assert sim.faults.http_5xx == 0
    assert run.failed.keys() == {"999999"}
    assert "not a listed code" in run.failed["999999"]
    assert len(run.succeeded) == 60 == len(published)
    assert run.missing == ["999999"] and not run.overran
    assert run.calls > 61  # the retries count


@pytest.fixture
def fast_sim(tmp_path: Path) -> Iterator[tuple[SimThread, Settings]]:
    """A simulator at 20x and settings for it: minutes of outage in seconds of test."""
    sim = SimThread(MARKET, NINE + timedelta(minutes=5), SimConfig(calls_per_second=60), speed=20)
    try:
        yield sim, load_settings(write_config(tmp_path / "o.toml", sim.url, tmp_path / "tokens"))
    finally:
        sim.close()


def test_a_rest_outage_of_two_minutes_costs_the_cycle_nothing(
    fast_sim: tuple[SimThread, Settings],
) -> None:
    sim, settings = fast_sim
    clock = sim.sim.clock
    sim.sim.faults.rest_down_until = clock.now_ns() + 120 * NS  # the host does not answer
    targets = [SnapshotTarget(s, MARKET.listings[s].market) for s in STOCKS[:120]]
    run, published, _ = one_cycle(settings, sim, targets, 600)
    assert run.succeeded == {t.symbol for t in targets} and not run.failed
    assert not run.overran and run.missing == [] and len(published) == 120
    assert (run.finished_ns - run.started_ns) / NS > 120  # it outlasted the outage
    assert run.calls > 240  # every symbol was asked in the outage, and again after it


def test_symbols_failing_until_the_deadline_are_failed_not_cut_off(
    fast_sim: tuple[SimThread, Settings],
) -> None:
    sim, settings = fast_sim
    sim.sim.faults.rest_down_until = sim.sim.clock.now_ns() + 3600 * NS
    targets = [SnapshotTarget(s, MARKET.listings[s].market) for s in STOCKS[:20]]
    run, published, _ = one_cycle(settings, sim, targets, 60)
    assert published == [] and run.failed.keys() == {t.symbol for t in targets}
    assert run.unfinished == [] and not run.overran and not run.stopped
    # Passes paused 2, 4, 8, 16 and 30 s: a handful of passes of 5 attempts, not a loop.
    assert 20 * 5 * 2 <= run.calls <= 20 * 5 * 7


def test_a_cycle_that_cannot_finish_is_cut_off_at_its_deadline(
    settings: Settings, sim_thread: SimThread
) -> None:
    targets = [SnapshotTarget(s, "KOSPI") for s in STOCKS[:200]]  # about 1.8 s at 110/s
    run, published, calls = one_cycle(settings, sim_thread, targets, 0.5)
    assert run.overran and not run.stopped
    assert 0 < len(run.succeeded) < 200 and not run.failed
    assert len(run.unfinished) == 200 - len(run.succeeded) == len(run.missing)
    assert len(published) == len(run.succeeded)
    # Cut at the deadline (0.5 s), long before the list could be done: no finer bound, the
    # event loop of a machine the other test worker keeps busy wakes late (0.96 s in CI).
    assert 0.5 <= (run.finished_ns - run.started_ns) / NS < 1.8
    assert calls < 200


# ------------------------------------------------------------------ the worker process


class Session:
    """A writer, a simulator at ``speed`` and ``observer track-a run`` on the same clock."""

    def __init__(
        self,
        tmp: Path,
        start: datetime,
        speed: float,
        extra: str = "",
        changes: tuple[tuple[datetime, float], ...] = (),
        **accounts: int,
    ) -> None:
        self.url = f"sqlite:///{tmp / 'observer.db'}"
        self.writer = WriterProcess(tmp, self.url).start()  # before the clock starts
        config = SimConfig(calls_per_second=100)
        self.sim = SimThread(MARKET, start, config, speed=speed, changes=changes)
        self.config = write_config(
            tmp / "observer.toml", self.sim.url, tmp / "tokens", extra, **accounts
        )
        self.log = tmp / "track_a.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = tmp

    @property
    def clock(self) -> SimulatedClock:
        clock = self.sim.sim.clock
        assert isinstance(clock, SimulatedClock)
        return clock

    def publish_universe(self, symbols: list[str]) -> None:
        members = tuple(
            UniverseMember(
                symbol=s,
                market=MARKET.listings[s].market,
                rank=n,
                prev_close=5000,
                market_cap=10**12 - n,
            )
            for n, s in enumerate(symbols, start=1)
        )
        event = UniverseSnapshot(
            trade_date=DAY, based_on=date(2026, 11, 19), min_prev_close=4000, members=members
        )
        with Producer("universe", self.writer.ingest, self.tmp / "outbox-universe") as producer:
            producer.send(event)
            assert producer.wait_acked(30)

    def start(self) -> None:
        env = {**os.environ, "OBSERVER_CLOCK": self.clock.spec}
        args = [sys.executable, "-m", "observer", "track-a", "run", "--config", str(self.config)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT, env=env)

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.url, sql, until_schema=True)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.writer.kill()
        self.sim.close()


def test_a_whole_session_every_cycle_complete_within_the_rate(tmp_path: Path) -> None:
    # 09:00-15:40 at 400x: 60 s; each 10-minute cycle is 1.5 s for 30 symbols at 110/s (0.27 s
    # of calls). At 800x (0.75 s a cycle) a test worker starved for 0.6 s on a loaded 2-core
    # CI machine cut a cycle off (14 of 30 calls made). 09:00 comes 6 s after the clock
    # starts: the worker is up by then. The first cycle runs at 200x: it also issues both
    # tokens and opens the connections, which beside a busy test worker took half a second.
    first = ((NINE, 200.0), (NINE + timedelta(minutes=10), 400.0))
    session = Session(tmp_path, NINE - timedelta(seconds=6 * 400), 400, changes=first)
    try:
        session.publish_universe(STOCKS[:30])
        session.start()
        wait_until(
            lambda: session.rows("select count(*) from track_a_cycles")[0][0] >= 40,
            150,
            "the session's 40 cycles",
        )
        assert session.proc is not None
        session.proc.send_signal(signal.SIGTERM)
        assert session.proc.wait(30) == 0
        cycles = session.rows(
            "select cycle_id, universe_size, succeeded, failed, unfinished, overran, calls, "
            "rate_per_s, limit_per_s from track_a_cycles order by scheduled_ns"
        )
        assert [c[0] for c in cycles] == [c.cycle_id for c in cycles_of(TIMELINE, DAY, 10, True)]
        # (universe, succeeded, failed, unfinished, overran, calls): a cut-off or a retried call
        incomplete = [c for c in cycles if c[1:7] != (30, 30, 0, 0, False, 30)]
        assert not incomplete, incomplete
        # Each account's limiter bucket (PACING_S of calls: 2 at 55/s) goes at once: its 15
        # calls take 13 intervals of 1/55 s, so the achieved rate may read up to 110 x 15 / 13.
        burst = max(1, int(55 * PACING_S))
        bound = 110 * 15 / (15 - burst)
        assert all(float(c[8]) == 110.0 and 0 < float(c[7]) <= bound for c in cycles), cycles
        snapshots = session.rows(
            "select count(*), count(distinct cycle_id || symbol) from price_snapshots"
        )
        assert snapshots == [(1200, 1200)]
        assert session.sim.sim.rate_limited == 0
        # Any second: 55, the burst, and the calls of the second before that arrived late.
        assert max(session.sim.sim.peak_per_second.values()) <= 55 + burst + LATE
        result = CliRunner().invoke(
            app, ["cycles", "--date", "2026-11-20", "--json", "--config", str(session.config)]
        )
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.output.splitlines()]
        assert len(lines) == 40 and lines[-1]["cycle_id"] == "20261120-1530"
        assert all(line["snapshots"] == 30 and not line["overran"] for line in lines)
    finally:
        session.close()


def test_cycles_that_cannot_finish_are_cut_off_and_the_next_starts_on_time(
    tmp_path: Path,
) -> None:
    # 100 symbols at 11/s need 9 s; at 300x a 10-minute cycle has 2 wall seconds. 09:00
    # comes 6 s after the clock starts: the worker is up by then.
    session = Session(tmp_path, NINE - timedelta(seconds=6 * 300), 300, accounts=1, rate=20)
    try:
        session.publish_universe(STOCKS[:100])
        session.start()
        query = (
            "select scheduled_ns, started_ns, finished_ns, succeeded, unfinished, overran, "
            "missing from track_a_cycles order by scheduled_ns"
        )
        cycles = wait_until(
            lambda: (rows := session.rows(query)) and len(rows) >= 3 and rows, 60, "three cycles"
        )
        for (scheduled, started, finished, succeeded, unfinished, overran, missing), after in zip(
            cycles, [c[0] for c in cycles[1:]] + [cycles[-1][0] + 600 * NS], strict=True
        ):
            assert overran and 0 < succeeded < 100 and succeeded + unfinished == 100
            assert len(json.loads(missing) if isinstance(missing, str) else missing) == unfinished
            # On time, and cut off by the next one's start: within a wall second at 300x (a
            # loaded machine stalls a process that long); an overrun would be 2,100 s late.
            assert started - scheduled < 300 * NS
            assert finished <= after + 300 * NS
        snapshots = session.rows("select count(*) from price_snapshots")[0][0]
        assert snapshots >= sum(c[3] for c in cycles)
        # One alert per cycle cut off; each may land a moment after its cycle's row.
        alerts = "select count(*) from alerts where code = 'track_a_missing'"
        wait_until(lambda: session.rows(alerts)[0][0] >= 3, 30, "an alert per cut-off cycle")
    finally:
        session.close()


def test_a_rest_outage_is_alerted_after_the_first_pass_not_at_the_cycles_end(
    tmp_path: Path,
) -> None:
    # 09:00 comes 6 wall seconds after the clock starts (50x); the outage outlasts the cycle.
    session = Session(tmp_path, NINE - timedelta(seconds=300), 50, accounts=1, rate=100)
    try:
        session.sim.sim.faults.rest_down_until = int(
            (NINE + timedelta(minutes=20)).timestamp() * NS
        )
        session.publish_universe(STOCKS[:30])
        session.start()
        alerts = "select message from alerts where code = 'track_a_cycle_failed'"
        message = wait_until(lambda: session.rows(alerts), 60, "the outage's alert")[0][0]
        assert session.clock.now_ns() < (NINE + timedelta(minutes=10)).timestamp() * NS
        assert "cycle 20261120-0900: no symbol answered" in message
        assert message.endswith("retrying until 09:10")
    finally:
        session.close()


def test_a_rest_outage_alert_is_resolved_when_symbols_answer_again(tmp_path: Path) -> None:
    """The critical alert of a cycle without answers is resolved at the next answer, in the
    same cycle, and by a restarted run when the run that raised it was killed: open, it
    would be reminded of every half hour until someone acknowledged it."""
    # 09:00 comes 6 wall seconds after the clock starts (50x); REST is down until 09:04.
    session = Session(tmp_path, NINE - timedelta(seconds=300), 50, accounts=1, rate=100)
    faults = session.sim.sim.faults
    try:
        faults.rest_down_until = int((NINE + timedelta(minutes=4)).timestamp() * NS)
        session.publish_universe(STOCKS[:30])
        session.start()
        alerts = "select subject, message from alerts where code = 'track_a_cycle_failed'"
        resolved = "select subject from alert_resolutions where code = 'track_a_cycle_failed'"
        [(subject, _)] = wait_until(lambda: session.rows(alerts), 60, "the outage's alert")
        assert subject == "rest"
        wait_until(lambda: session.rows(resolved) == [("rest",)], 60, "the alert resolved")
        summary = "select succeeded from track_a_cycles"
        cycle = wait_until(lambda: session.rows(summary), 60, "the 09:00 summary")
        assert cycle == [(30,)]  # and the cycle completed
        # Down again through the 09:10 cycle's first pass: alerted, and the run killed.
        faults.rest_down_until = int((NINE + timedelta(minutes=16)).timestamp() * NS)
        second = wait_until(
            lambda: [m for _, m in session.rows(alerts) if "20261120-0910" in m],
            60,
            "the second outage's alert",
        )
        assert second[0].endswith("retrying until 09:20")
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        assert session.rows(resolved) == [("rest",)]
        session.start()  # takes the killed run's open alert over, and resolves it
        wait_until(lambda: len(session.rows(resolved)) == 2, 60, "the second alert resolved")
        settings = load_settings(session.config)
        engine = create_engine(session.url)
        with engine.connect() as conn:
            source = own_source(settings.supervisor, "track_a")
            left = open_alerts(conn, source, ["track_a_cycle_failed"])
        engine.dispose()
        assert left == []
    finally:
        session.close()


def test_a_cycle_kis_refused_as_over_its_rate_completes_and_warns(tmp_path: Path) -> None:
    # 09:00 comes 6 wall seconds after the clock starts (100x): the worker is up by then.
    session = Session(tmp_path, NINE - timedelta(seconds=600), 100, accounts=1, rate=100)
    try:
        session.sim.sim.faults.rate_limited = 20  # the next 20 calls: EGW00201
        session.publish_universe(STOCKS[:30])
        session.start()
        alerts = "select message from alerts where code = 'track_a_rate_limited'"
        message = wait_until(lambda: session.rows(alerts), 60, "the refusals' warning")[0][0]
        assert (
            "KIS refused 20 of 50 calls" in message and "acct1 20 (rest_per_second 100)" in message
        )
        cycle = session.rows("select succeeded, failed, calls from track_a_cycles")[0]
        assert cycle == (30, 0, 50)  # every refused call retried: the cycle is whole
    finally:
        session.close()


def test_a_killed_worker_resumes_its_cycle_without_a_duplicate(tmp_path: Path) -> None:
    # Real time, one account at 40/s x 0.55 (22/s): 120 symbols take about 5.5 s.
    session = Session(
        tmp_path,
        NINE + timedelta(seconds=1),
        1,
        "[track_a]\nuniverse_alert_s = 1\n",
        accounts=1,
        rate=40,
    )
    try:
        session.start()
        # No universe yet: the worker waits for it and says so.
        wait_until(
            lambda: (
                session.rows("select count(*) from alerts where code = 'track_a_no_universe'")
                == [(1,)]
            ),
            60,
            "the missing-universe alert",
        )
        # Killed while its alert is open: the next run resolves it when the universe comes.
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        session.start()
        session.publish_universe(STOCKS[:120])
        wait_until(
            lambda: session.rows("select count(*) from price_snapshots")[0][0] >= 30,
            60,
            "a third of the cycle",
        )
        # The universe came: the alert's condition is over, and Track A says so, once.
        wait_until(
            lambda: (
                session.rows("select code from alert_resolutions") == [("track_a_no_universe",)]
            ),
            60,
            "the alert resolved",
        )
        assert session.rows("select count(*) from alerts where code = 'track_a_no_universe'") == [
            (1,)
        ]
        session.proc.kill()
        session.proc.wait(30)
        before = session.rows("select count(*) from price_snapshots")[0][0]
        assert before < 120
        session.start()
        cycle = wait_until(
            lambda: session.rows(
                "select carried, succeeded, failed, universe_size, requested from track_a_cycles"
            ),
            60,
            "the resumed cycle's summary",
        )[0]
        carried, succeeded, failed, size, requested = cycle
        assert size == 120 and failed == 0
        assert carried >= before and carried + succeeded == 120 and requested == succeeded
        stored = session.rows("select count(*), count(distinct symbol) from price_snapshots")
        assert stored == [(120, 120)]  # every symbol once: nothing lost, nothing twice
        session.proc.send_signal(signal.SIGTERM)
        assert session.proc.wait(30) == 0
    finally:
        session.close()


def test_a_restart_while_the_writer_is_down_asks_no_symbol_twice(tmp_path: Path) -> None:
    """Killed mid-cycle with the writer down, restarted, the writer back only after the cycle
    (75 wall seconds here, past the old 60 s wait): the cycle is not resumed blind, so no
    symbol of it is asked and stored twice; the next cycle runs whole."""
    session = Session(tmp_path, NINE + timedelta(minutes=7, seconds=30), 2, accounts=1, rate=40)
    try:
        session.publish_universe(STOCKS[:120])
        session.writer.kill()
        session.start()
        asked = session.sim.sim.calls
        wait_until(lambda: asked["FHKST01010100"] >= 10, 60, "ten symbols asked")
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        session.start()
        ten = int((NINE + timedelta(minutes=10, seconds=3)).timestamp() * 1e9)
        wait_until(lambda: session.clock.now_ns() > ten, 120, "the 09:00 cycle over")
        session.writer.start()
        wait_until(
            lambda: (
                session.rows("select count(*) from track_a_cycles where cycle_id = '20261120-0910'")
                == [(1,)]
            ),
            60,
            "the 09:10 cycle summarised",
        )
        twice = session.rows(
            "select cycle_id, symbol from price_snapshots group by 1, 2 having count(*) > 1"
        )
        assert twice == []
        assert "nothing is resumed" in session.log.read_text()
        # The 09:00 cycle the killed run began is summarised once the writer is back (cut
        # off, its stored symbols carried, the rest missing and alerted), not never.
        query = (
            "select carried, universe_size, overran, length(missing) > 0 from track_a_cycles "
            "where cycle_id = '20261120-0900'"
        )
        [(carried, size, overran, listed)] = wait_until(lambda: session.rows(query), 60, "09:00")
        [(stored,)] = session.rows(
            "select count(*) from price_snapshots where cycle_id = '20261120-0900'"
        )
        # (Asked ten; an answer within the outbox's linger when killed is not stored.)
        assert stored > 0 and (carried, size, overran, listed) == (stored, 120, 1, 1)
        alerts = "select message from alerts where code = 'track_a_missing'"
        missing = f"cycle 20261120-0900: {120 - stored} of 120 symbols missing (cut off"
        wait_until(
            lambda: [m for (m,) in session.rows(alerts) if m.startswith(missing)],
            30,
            "the 09:00 cycle's missing symbols alerted",
        )
    finally:
        session.close()


def test_a_cycle_no_run_finished_is_summarised_when_the_next_run_starts(tmp_path: Path) -> None:
    """Killed in the 09:00 cycle's last half minute and started again after 09:10: the
    09:00 cycle gets its summary (cut off, the stored symbols carried, the rest missing,
    alerted) instead of none at all."""
    session = Session(tmp_path, NINE + timedelta(minutes=9, seconds=30), 2, accounts=1, rate=4)
    try:
        session.publish_universe(STOCKS[:120])
        session.start()
        wait_until(
            lambda: session.rows("select count(*) from price_snapshots")[0][0] >= 10,
            60,
            "ten snapshots stored",
        )
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        ten = int((NINE + timedelta(minutes=10, seconds=2)).timestamp() * 1e9)
        wait_until(lambda: session.clock.now_ns() > ten, 60, "09:10")
        session.start()
        query = (
            "select carried, universe_size, overran, length(missing) > 0 from track_a_cycles "
            "where cycle_id = '20261120-0900'"
        )
        [(carried, size, overran, listed)] = wait_until(lambda: session.rows(query), 60, "09:00")
        # What the killed run sent (its outbox delivered before the summary was written).
        [(stored,)] = session.rows(
            "select count(*) from price_snapshots where cycle_id = '20261120-0900'"
        )
        assert stored >= 10 and (carried, size, overran, listed) == (stored, 120, 1, 1)
        alerts = session.rows("select message from alerts where code = 'track_a_missing'")
        assert [m for (m,) in alerts if "20261120-0900" in m and f"{120 - stored} of 120" in m]
    finally:
        session.close()


def test_the_track_a_program_is_configured_for_its_phases() -> None:
    settings = load_settings(ROOT / "config" / "observer.toml")
    program = settings.programs["track_a"]
    assert program.kind == "session" and program.depends_on == ("writer",)
    assert program.phases == (
        "warmup",
        "track_a_only",
        "full_operation",
        "track_a_closing",
        "shutdown",
    )
    assert program.command[:3] == ("observer", "track-a", "run")
    assert settings.track_a.interval_min == 10
