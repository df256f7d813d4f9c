"""The reconciliation's arithmetic: watched minutes, slot holdings, and each minute's verdict."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import date

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, GapDetected, GapStateChanged, Reconciliation
from observer.calendar.clock import ManualClock
from observer.config.tree import Settings
from observer.writer.store import Store
from tests.gap_recovery.conftest import STOCKS as GR_STOCKS
from tests.gap_recovery.test_reconciliation import FRIDAY, StoredBus, at, shorts_of, track_b_day
from workers.gap_recovery.reconcile import (
    MINUTE_NS,
    check_minutes,
    held_spans,
    runs_of,
    watched_minutes,
)
from workers.gap_recovery.verify import DayResult, Verifier, completeness_text, misses_of

S = 1_000_000_000
T0 = 1_795_000_020 * S  # a minute boundary (UTC and KST alike)


# ------------------------------------------------------------------ each minute's verdict

# A day of trades: (minute index, qty), some of which the stream lost.
TRADES = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 500), st.booleans()), max_size=60)


@given(
    TRADES,
    st.sets(st.integers(0, 9)),
    st.sets(st.integers(0, 9), max_size=3),
)
def test_a_lost_trade_makes_its_minute_short_by_its_volume(
    trades: list[tuple[int, int, bool]], recovered_idx: set[int], gap_idx: set[int]
) -> None:
    """The exchange's bar is the sum of all its trades; the stream holds the ones not lost."""
    minutes = [T0 + i * MINUTE_NS for i in range(10)]
    bars: Counter[int] = Counter()
    stored: dict[int, tuple[int, int]] = {}
    lost: Counter[int] = Counter()
    for i, qty, was_lost in trades:
        minute = minutes[i]
        bars[minute] += qty
        if was_lost:
            lost[minute] += qty
        else:
            volume, count = stored.get(minute, (0, 0))
            stored[minute] = (volume + qty, count + 1)
    recovered = {minutes[i] for i in recovered_idx}
    # A silence gap between two stamps: from 20 s into minute i to 50 s into it.
    gaps = [(f"g{i}", minutes[i] + 20 * S, minutes[i] + 50 * S) for i in gap_idx]
    session = {m: ("regular" if i < 5 else "closing_auction") for i, m in enumerate(minutes)}
    checks = check_minutes(minutes, stored, bars, recovered, gaps, session.__getitem__)
    assert [c.minute_ns for c in checks] == minutes
    assert [c.trading_session for c in checks] == [session[m] for m in minutes]
    for check in checks:
        m = check.minute_ns
        assert check.bar_volume - check.stored_volume == lost[m]
        assert check.stored_trades == stored.get(m, (0, 0))[1]
        if not lost[m]:
            assert (check.status, check.gap_id) == ("complete", "")
        else:
            assert check.status == ("recovered" if m in recovered else "short")
            index = (m - T0) // MINUTE_NS
            assert check.gap_id == (f"g{index}" if index in gap_idx else "")


def test_a_gap_explains_the_minutes_it_reaches_within_a_stamps_second() -> None:
    minutes = [T0, T0 + MINUTE_NS, T0 + 2 * MINUTE_NS]
    bars = dict.fromkeys(minutes, 10)
    # Ends at the stamp 00:01:00: trades up to 00:01:00.999 may be lost, so minute 1 too.
    at_boundary = check_minutes(minutes, {}, bars, set(), [("g", T0 + 30 * S, T0 + MINUTE_NS)])
    assert [c.gap_id for c in at_boundary] == ["g", "g", ""]
    # Ends at 00:00:59: nothing of minute 1 was lost.
    before = check_minutes(minutes, {}, bars, set(), [("g", T0 + 30 * S, T0 + 59 * S)])
    assert [c.gap_id for c in before] == ["g", "", ""]
    # A disconnect closed at its own start (re-registered at once) still explains its minute.
    instant = T0 + 2 * MINUTE_NS + S
    closed = check_minutes(minutes, {}, bars, set(), [("g", instant, instant)])
    assert [c.gap_id for c in closed] == ["", "", "g"]


def test_more_than_the_bar_is_excess_and_no_bar_means_no_trade() -> None:
    checks = check_minutes([T0, T0 + MINUTE_NS], {T0: (12, 3)}, {T0: 10}, set(), [])
    assert [(c.status, c.stored_volume, c.bar_volume) for c in checks] == [
        ("excess", 12, 10),
        ("complete", 0, 0),
    ]


def test_the_exchanges_trades_make_a_minute_whole_or_too_much() -> None:
    # Stream volume 7 of a bar of 10 in each minute; the trades gap recovery stored: 3 (whole),
    # 2 (still short), 4 (counted twice somewhere: excess), none
    minutes = [T0 + n * MINUTE_NS for n in range(4)]
    stream = {m: (7, 2) for m in minutes}
    bars = dict.fromkeys(minutes, 10)
    added = {minutes[0]: 3, minutes[1]: 2, minutes[2]: 4}
    gap = [("chain:a:000001:7", T0, minutes[-1] + MINUTE_NS)]
    checks = check_minutes(minutes, stream, bars, set(), gap, recovered_trades=added)
    assert [(c.status, c.stored_volume) for c in checks] == [
        ("recovered", 7),  # the stream's alone is stored_volume
        ("short", 7),
        ("excess", 7),
        ("short", 7),
    ]


def test_the_days_figures_count_misses_and_shortfall() -> None:
    checks = check_minutes(
        [T0, T0 + MINUTE_NS, T0 + 2 * MINUTE_NS],
        {T0: (5, 1), T0 + MINUTE_NS: (7, 2)},
        {T0: 10, T0 + MINUTE_NS: 7, T0 + 2 * MINUTE_NS: 4},
        set(),
        [("acct1:X:1", T0 + 10 * S, T0 + 20 * S)],
    )
    assert [c.status for c in checks] == ["short", "complete", "short"]
    published = [
        c if c.gap_id else msgspec.structs.replace(c, gap_id=f"reconciliation:X:{c.minute_ns}")
        for c in checks
    ]
    result = DayResult(day=date(2026, 11, 20))
    result.add("X", published, calls=2)
    assert misses_of(published) == 1  # the third: the first has Track B's gap
    summary = result.summary()
    assert (summary.short, summary.complete, summary.missing_volume) == (2, 1, 9)
    assert (summary.misses, summary.calls, summary.completeness_pct) == (1, 2, 33.333)


def test_a_minute_short_under_an_unrecoverable_gap_is_no_detection_miss(store: Store) -> None:
    """Track B recorded the gap; its recovery failed. The minute stays explained by it (the
    gap is retaken for ``retake_days``): no ``reconciliation:`` gap, no miss, no warning that
    Track B recorded none."""
    clock = ManualClock(at(14, 30))
    bus = StoredBus(store, clock)
    a = GR_STOCKS[0]
    lossy = at(14, 40)
    track_b_day(bus, {(a, lossy)})
    gap_id = f"acct1:{a}:{lossy}"
    bus.send_all(
        "track_b",
        [
            GapDetected(
                gap_id=gap_id,
                symbol=a,
                start_ns=lossy + 5 * S,
                end_ns=lossy + 40 * S,
                reason="disconnect",
            ),
        ],
    )
    bus.send_all("gap_recovery", [GapStateChanged(gap_id=gap_id, state="unrecoverable")])
    clock.advance((at(15, 1, 10) - clock.now_ns()) / S)
    asyncio.run(bus.verifier("gap_recovery").verify_day(FRIDAY))
    (checked,) = [r for r in bus.of("gap_recovery", Reconciliation) if r.symbol == a]
    assert shorts_of(checked) == {lossy: gap_id}
    assert checked.misses == 0
    assert bus.of("gap_recovery", GapDetected) == []
    warned = [e for e in bus.of("gap_recovery", Alert) if e.code == "reconciliation_misses"]
    assert warned == []


def test_a_day_with_nothing_compared_has_no_completeness() -> None:
    """No minute compared is no proof of 100 %: a holiday, a wrong date, Track B down."""
    nothing = DayResult(day=date(2026, 11, 21)).summary()
    assert (nothing.completeness_pct, nothing.stream_pct) == (None, None)
    assert completeness_text(nothing) == "nothing was watched (no slot held a whole minute)"
    failed = DayResult(day=date(2026, 11, 20), failed={"X": "EGW00201"}).summary()
    assert failed.completeness_pct is None
    assert completeness_text(failed) == "nothing compared (no bars)"
    sent: list[Alert] = []
    verifier = Verifier(Settings(), ManualClock(0), sent.append, None, [])  # type: ignore[arg-type]
    verifier._report(DayResult(day=date(2026, 11, 20), failed={"X": "EGW00201"}))
    (done,) = (a.message for a in sent if a.code == "reconciliation_done")
    assert "nothing compared" in done and "None" not in done
    some = DayResult(day=date(2026, 11, 20))
    some.statuses.update(complete=3, recovered=1)
    assert completeness_text(some.summary()) == "100.0% complete (75.0% from the stream alone)"


def test_a_retrys_figures_say_they_are_a_retrys() -> None:
    """A retry reconciles only the symbols earlier runs could not: its alerts say so, or
    the day's last `reconciliation_done` would read as the whole day's figures."""
    sent: list[Alert] = []
    verifier = Verifier(Settings(), ManualClock(0), sent.append, None, [])  # type: ignore[arg-type]
    for attempt in (1, 2):
        result = DayResult(day=date(2026, 11, 20), attempt=attempt)
        result.add("X", [], calls=1)
        verifier._report(result)
    first, retry = (a.message for a in sent if a.code == "reconciliation_done")
    assert first.startswith("2026-11-20: ") and "retry" not in first
    assert retry.startswith("2026-11-20 (retry 1: the symbols earlier runs could not")
    assert [a.context["attempt"] for a in sent] == ["1", "2"]


# ------------------------------------------------------------------ watched minutes

SPANS = st.lists(
    st.tuples(st.integers(0, 30 * 60), st.integers(0, 15 * 60)).map(
        lambda p: (T0 + p[0] * S, T0 + (p[0] + p[1]) * S)
    ),
    max_size=4,
)


@given(SPANS, st.integers(0, 10), st.integers(0, 50 * 60))
def test_a_minute_is_watched_when_a_slot_held_all_of_it_and_its_edges(
    spans: list[tuple[int, int]], edge_s: int, until_s: int
) -> None:
    until = T0 + until_s * S
    edge = edge_s * S
    got = watched_minutes(spans, edge, until)
    expected = [
        m
        for m in range(T0 - MINUTE_NS, T0 + 50 * MINUTE_NS, MINUTE_NS)
        if any(s + edge <= m and m + MINUTE_NS <= min(e - edge, until) for s, e in spans)
    ]
    assert got == expected


@given(st.lists(st.integers(0, 400), unique=True).map(sorted), st.integers(1, 40))
def test_runs_cover_every_minute_and_split_only_at_long_pauses(
    indexes: list[int], join: int
) -> None:
    minutes = [T0 + i * MINUTE_NS for i in indexes]
    runs = runs_of(minutes, join * MINUTE_NS)
    assert [m for run in runs for m in run] == minutes
    for run in runs:
        assert all(b - a <= join * MINUTE_NS for a, b in itertools.pairwise(run))
    for a, b in itertools.pairwise(runs):
        assert b[0] - a[-1] > join * MINUTE_NS


def test_slot_holdings_from_the_slot_decisions() -> None:
    at = [T0 + n * MINUTE_NS for n in range(10)]
    events = [
        ("allocate", "A", "", at[0]),
        ("allocate", "B", "", at[0]),
        ("replace", "C", "B", at[2]),  # C takes B's slot
        ("expire", "A", "", at[3]),
        ("allocate", "A", "", at[5]),  # A again
        ("allocate", "A", "", at[6]),  # Track B restarted and placed A again: one holding
        ("release", "C", "", at[7]),
    ]
    assert held_spans(events, at[9]) == {
        "A": [(at[0], at[3]), (at[5], at[9])],
        "B": [(at[0], at[2])],
        "C": [(at[2], at[7])],
    }
