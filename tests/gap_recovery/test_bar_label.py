"""The minute-bar label (``[gap_recovery] bar_label``): read as set, and found when it is off.

The reconciliation runs in process on the writer's store (`StoredBus`) against a lane whose
bars are labelled by their end; the simulator's ``bar_label = "end"`` is read back by the
client's own bar fetch.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.events import Alert, GapDetected, Reconciliation
from harness.sim.market import KST
from observer.calendar.clock import ManualClock
from observer.config.workers import GapRecoverySettings
from observer.kis.bars import BarLabel, fetch_bars
from observer.kis.schemas import MinuteBarRow
from observer.writer.store import Store
from tests.gap_recovery.test_reconciliation import (
    FRIDAY,
    TO_15,
    BarLane,
    StoredBus,
    all_kept,
    at,
    ticks_of,
    track_b_day,
)
from tests.harness.test_sim_server import MARKET, START, SYMBOL, client_for, simulator
from workers.gap_recovery.label import advice, label_shift
from workers.gap_recovery.verify import Verifier

S = 1_000_000_000
MINUTE = 60 * S


class EndLabelledLane(BarLane):
    """KIS labelling each bar by the minute it closes: 14:31's bar covers 14:30."""

    def _rows(self, symbol: str, day: date, until: str, since: str) -> list[MinuteBarRow]:
        self.requests += 1
        rows = []
        for n in range(
            int(since[:2]) * 60 + int(since[2:4]), int(until[:2]) * 60 + int(until[2:4]) + 1
        ):
            covered = datetime.combine(day, time((n - 1) // 60, (n - 1) % 60), tzinfo=KST)
            if volume := sum(t.qty for t in ticks_of(symbol, covered, all_kept)):
                label = f"{n // 60:02d}{n % 60:02d}00"
                rows.append(MinuteBarRow(f"{day:%Y%m%d}", label, *["100"] * 4, str(volume)))
        return rows


def _verify(store: Store, label: BarLabel) -> StoredBus:
    """A day of two symbols streamed whole, reconciled with ``label`` against end labels."""
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    track_b_day(bus, set())
    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    config = msgspec.structs.replace(TO_15, gap_recovery=GapRecoverySettings(bar_label=label))
    lane: Any = EndLabelledLane()
    verifier = Verifier(config, clock, bus.sender("gap_recovery"), store.engine, [lane])
    result = asyncio.run(verifier.verify_day(FRIDAY))
    assert not result.failed
    return bus


def test_bars_labelled_by_their_end_read_as_start_are_found_shifted_and_alerted_once(
    store: Store,
) -> None:
    bus = _verify(store, "start")
    reconciled = bus.of("gap_recovery", Reconciliation)
    assert len(reconciled) == 2
    for reconciliation in reconciled:  # every minute agrees shifted: none reported short
        assert {c.status for c in reconciliation.minutes} == {"shifted"}
        assert all(c.stored_volume == c.bar_volume > 0 for c in reconciliation.minutes)
        assert reconciliation.misses == 0
    assert bus.of("gap_recovery", GapDetected) == []  # no neighbour's bar recovered
    (shifted,) = [a for a in bus.of("gap_recovery", Alert) if a.code == "bar_label_shifted"]
    assert shifted.context["shift_minutes"] == "1" and 'bar_label = "end"' in shifted.message
    (done,) = [a for a in bus.of("gap_recovery", Alert) if a.code == "reconciliation_done"]
    assert "100.0% complete" in done.message
    codes = {a.code for a in bus.of("gap_recovery", Alert)}
    assert not codes & {"reconciliation_misses", "reconciliation_excess"}


def test_bars_read_with_their_own_label_all_reconcile(store: Store) -> None:
    bus = _verify(store, "end")
    reconciled = bus.of("gap_recovery", Reconciliation)
    assert len(reconciled) == 2
    for reconciliation in reconciled:
        assert {c.status for c in reconciliation.minutes} == {"complete"}
        assert [c.minute_ns for c in reconciliation.minutes] == list(
            range(at(14, 31), at(14, 59), MINUTE)
        )
    assert not [a for a in bus.of("gap_recovery", Alert) if a.code == "bar_label_shifted"]


VOLUMES = st.lists(st.integers(1, 10_000), min_size=6, max_size=40)


@settings(max_examples=60)
@given(VOLUMES, st.sampled_from([1, -1]))
def test_a_shift_is_found_only_where_the_neighbours_bars_agree(
    volumes: list[int], shift: int
) -> None:
    """Bars shifted by a whole minute are found; bars as labelled never are, whatever they
    hold (a detection that fired on a good day would hide every real loss)."""
    minutes = [at(14, 0) + i * MINUTE for i in range(len(volumes))]
    stored = {m: (v, 1) for m, v in zip(minutes, volumes, strict=True)}
    assert label_shift(minutes, stored, {m: v for m, (v, _) in stored.items()}) == 0
    moved = {m + shift * MINUTE: v for m, (v, _) in stored.items()}
    neighbours_differ = sum(a != b for a, b in pairwise(volumes))
    if neighbours_differ > 0.2 * len(volumes) + 1:  # not a flat day: labelled, it disagrees
        assert label_shift(minutes, stored, moved) == shift


def test_the_advice_names_the_setting_that_fixes_the_shift() -> None:
    assert advice(1, "start") == 'set [gap_recovery] bar_label = "end" (now "start")'
    assert advice(-1, "end") == 'set [gap_recovery] bar_label = "start" (now "end")'
    assert "no bar_label fixes" in advice(1, "end")


@pytest.mark.parametrize(("label", "agrees"), [("end", True), ("start", False)])
def test_the_simulator_labels_bars_by_their_end_when_told(
    tmp_path: Path, label: BarLabel, agrees: bool
) -> None:
    path = MARKET.day_path(SYMBOL, START.date())
    ten = int(START.timestamp()) * S
    minutes = [ten - 20 * MINUTE + i * MINUTE for i in range(10)]  # 09:40 .. 09:49

    async def scenario() -> dict[int, int]:
        async with simulator(bar_label="end") as (sim, url):
            client, _ = client_for(sim, url, tmp_path)
            try:
                bars = await fetch_bars(client, SYMBOL, minutes, START.date(), label)
            finally:
                await client._http.aclose()
            return {m: bar.volume for m, bar in bars.items()}

    volumes = asyncio.run(scenario())
    expected = {m: int(path.volume[40 + i]) for i, m in enumerate(minutes)}
    assert (volumes == expected) is agrees
