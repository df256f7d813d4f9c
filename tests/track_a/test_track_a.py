"""Track A: the cycle schedule, one cycle against the simulator, and the program's phases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bus.events import PriceSnapshot
from harness.sim.server import SimConfig
from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.calendar.settings import VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.kis.pacing import PACING_S
from observer.kis.session import KisAccount, open_account, rate_limits
from tests.support import ROOT, SimThread
from tests.track_a.conftest import (
    DAY,
    FIRST,
    LATE,
    MARKET,
    NINE,
    NS,
    STOCKS,
    TIMELINE,
    at,
    write_config,
)
from workers.track_a.cycle import SnapshotTarget, run_cycle
from workers.track_a.schedule import current_or_next, cycles_of

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


def test_nextrade_cycles_fill_the_hours_only_nextrade_trades() -> None:
    shipped = load_settings(ROOT / "config" / "observer.toml")
    timeline = timeline_from(shipped.phases, shipped.calendar)
    venues = venues_from(shipped.venues, timeline)
    cycles = cycles_of(timeline, DAY, 10, True, venues)
    nxt = [c.scheduled.strftime("%H:%M") for c in cycles if c.venue == "NXT"]
    # its pre-market (08:00-08:50), and its after-market from after KRX's closing cycle
    # (its opening match at 15:40) to its close at 20:00; none in KRX's cycles' hours
    assert nxt[:5] == ["08:00", "08:10", "08:20", "08:30", "08:40"]
    assert nxt[5:7] == ["15:40", "15:50"] and nxt[-2:] == ["19:50", "20:00"] and len(nxt) == 32
    krx = [c for c in cycles if c.venue == "KRX" and c.scheduled < at(DAY, "16:00")]
    assert krx == cycles_of(timeline, DAY, 10, closing=True)  # KRX's as without the venues
    # KRX's after-market (16:00-20:00): KRX's cycles half an interval after Nextrade's
    evening = [c.scheduled.strftime("%H:%M") for c in cycles if c.venue == "KRX"][len(krx) :]
    assert evening[:2] == ["16:05", "16:15"] and evening[-1] == "19:55" and len(evening) == 24
    # one chain: each cycle is due when the next starts, whichever venue's
    assert [c.scheduled for c in cycles] == sorted(c.scheduled for c in cycles)
    assert all(a.deadline == b.scheduled for a, b in pairwise(cycles))
    assert cycles[4].deadline == at(DAY, "09:00") and cycles[-1].deadline == at(DAY, "20:10")
    assert len({c.cycle_id for c in cycles}) == len(cycles) == 96
    assert cycles_of(timeline, DAY, 10, False, venues)[-1].scheduled == at(DAY, "19:55")
    # without Nextrade's cycles, KRX's after-market keeps the multiples
    alone = cycles_of(timeline, DAY, 10, True, venues, nextrade=False)
    assert {c.venue for c in alone} == {"KRX"} and len(alone) == 40 + 24
    assert alone[40].scheduled == at(DAY, "16:00") and alone[-1].scheduled == at(DAY, "19:50")
    # before 2026-09-14 KRX had no after-market: Nextrade's cycles alone after its close
    old = date(2026, 9, 11)
    assert not [c for c in cycles_of(timeline, old, 10, True, venues) if c.venue == "KRX"][40:]
    # the CSAT day: no pre-market; KRX to 16:30, Nextrade's after-market 16:30-20:00
    csat_day = date(2026, 11, 19)
    csat = cycles_of(timeline, csat_day, 10, True, venues)
    assert csat[0].venue == "KRX" and csat[0].scheduled == at(csat_day, "10:00")
    after = [c.scheduled for c in csat if c.venue == "NXT"]
    assert after[0] == at(csat_day, "16:40") and after[-1] == at(csat_day, "20:00")
    assert cycles_of(timeline, date(2026, 11, 21), 10, True, venues) == []  # Saturday
    now = at(DAY, "07:59")
    assert current_or_next(timeline, now, 10, True, venues) == cycles[0]
    assert current_or_next(timeline, at(DAY, "15:35"), 10, True, venues) == krx[-1]
    assert current_or_next(timeline, at(DAY, "20:05"), 10, True, venues) == cycles[-1]


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


def test_a_nextrade_cycle_asks_nextrade_s_prices(tmp_path: Path) -> None:
    # 16:05, Nextrade's after-market: KRX closed at 15:30, Nextrade trades on to 20:00.
    start = datetime.combine(DAY, time(16, 5), tzinfo=KST)
    listed = sorted(MARKET.nxt_eligible(DAY))[:20]
    venues = venues_from(VenueSettings(), TIMELINE)
    with SimThread(MARKET, start, SimConfig(calls_per_second=60)) as sim:
        settings = load_settings(write_config(tmp_path / "o.toml", sim.url, tmp_path / "t"))
        targets = [SnapshotTarget(s, MARKET.listings[s].market) for s in listed]
        run, published, _ = one_cycle(
            settings, sim, targets, 60, venue="NXT", session_of=venues.session_of_ns
        )
    assert run.succeeded == set(listed) and run.calls == 20
    midnight = datetime.combine(DAY, time(0), tzinfo=KST).timestamp()
    for snapshot in published:
        assert snapshot.venue == "NXT" and snapshot.trading_session == "after_market"
        # Nextrade's own day, to the instant answered: its trades since 08:00, not KRX's. The
        # simulator answered between the cycle's start and the snapshot's arrival (a loaded
        # machine can hold the answer while a trade prints), so the day's prefix answered ends
        # between those two instants.
        trades = MARKET.nxt_day(snapshot.symbol, DAY)
        first = trades.until(run.started_ns / NS - midnight)
        done = trades.until(snapshot.observed_ns / NS - midnight)
        volumes = [int(v) for v in trades.qty[:done].cumsum()[max(first, 1) - 1 :]]
        assert snapshot.volume in volumes and snapshot.volume > 0, snapshot.symbol
        answered = max(first, 1) + volumes.index(snapshot.volume)
        assert snapshot.price == int(trades.price[answered - 1])
        assert snapshot.base_price == MARKET.day_path(snapshot.symbol, DAY).prev_close
        assert snapshot.volume != MARKET.day_path(snapshot.symbol, DAY).volume_to[-1]


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
    # 120 simulated seconds, 6 wall seconds: in 3, a loaded machine's first pass had not
    # asked 3 of the 20 when the deadline came.
    run, published, _ = one_cycle(settings, sim, targets, 120)
    assert published == [] and run.failed.keys() == {t.symbol for t in targets}
    assert run.unfinished == [] and not run.overran and not run.stopped
    # Passes paused 2, 4, 8, 16, 30 and 30 s: a handful of passes of 5 attempts (the 7th
    # begins 90 s in at the earliest, the 8th at the deadline), not a loop; more than one.
    assert 20 * 5 < run.calls <= 20 * 5 * 7


def test_a_cycle_that_cannot_finish_is_cut_off_at_its_deadline(
    settings: Settings, sim_thread: SimThread
) -> None:
    # 20 calls a second an account, Track A's share of them 11: the 296 names take 13.5 s.
    slow = [msgspec.structs.replace(a, rest_per_second=20.0) for a in settings.kis.accounts]
    settings = msgspec.structs.replace(
        settings, kis=msgspec.structs.replace(settings.kis, accounts=tuple(slow))
    )
    targets = [SnapshotTarget(s, "KOSPI") for s in STOCKS]
    # 3 s: in 1 s a loaded 2-core machine (CI) had 8 calls out and none answered
    run, published, calls = one_cycle(settings, sim_thread, targets, 3.0)
    assert run.overran and not run.stopped
    assert 0 < len(run.succeeded) < len(targets) and not run.failed
    assert len(run.unfinished) == len(targets) - len(run.succeeded) == len(run.missing)
    assert len(published) == len(run.succeeded)
    # Cut at the deadline (3 s from a moment before the cycle starts: 2.997 s after its start
    # in CI), long before the list could be done: no finer bound, the event loop of a machine
    # the other test worker keeps busy wakes late (0.46 s in CI).
    assert 2.9 <= (run.finished_ns - run.started_ns) / NS < 13.5
    assert calls < len(targets)


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
