"""Gap detection: silences judged in session, connection gaps closed with their reason."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from workers.track_b.gaps import Gap, GapDetector

MS = 1_000_000
SESSION = (1_000 * MS, 10_000_000 * MS)  # continuous trading, in this test's instants


def in_session(ns: int) -> bool:
    return SESSION[0] <= ns < SESSION[1]


def detector() -> GapDetector:
    return GapDetector("acct1", expected_s=0.5, tolerance_s=0.2, in_session=in_session)


@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=60))
def test_a_silence_is_every_pause_longer_than_expected_plus_tolerance(steps: list[int]) -> None:
    d = detector()
    times, at = [], SESSION[0]
    for step in steps:
        at += step * MS
        times.append(at)
    gaps = [g for t in times if (g := d.on_tick("005930", t))]
    expected = [(a, b) for a, b in pairwise(times) if b - a > 700 * MS]
    assert [(g.start_ns, g.end_ns) for g in gaps] == expected
    assert all(g.reason == "silence" and g.symbol == "005930" for g in gaps)


def test_silences_outside_continuous_trading_are_not_gaps() -> None:
    d = detector()
    assert d.on_tick("005930", SESSION[1] - 100 * MS) is None
    assert d.on_tick("005930", SESSION[1] + 60_000 * MS) is None  # across the close
    d2 = detector()
    assert d2.on_tick("005930", 500 * MS) is None
    assert d2.on_tick("005930", SESSION[0] + 10 * MS) is None  # across the open


def test_a_disconnect_opens_a_gap_per_symbol_closed_by_its_registration() -> None:
    d = detector()
    d.on_tick("005930", 2_000 * MS)
    d.on_tick("000660", 2_300 * MS)
    d.on_disconnect(2_900 * MS, "disconnect", ["005930", "000660"])
    d.on_disconnect(3_100 * MS, "token_refresh", ["005930"])  # still the first gap
    # From the last frame the connection delivered (any symbol's) to the new registration.
    gap = d.on_registered("005930", 4_000 * MS)
    assert gap == Gap("acct1", "005930", 2_300 * MS, 4_000 * MS, "disconnect")
    other = d.on_registered("000660", 4_100 * MS)
    assert other == Gap("acct1", "000660", 2_300 * MS, 4_100 * MS, "disconnect")
    assert gap.gap_id == "acct1:005930:2300000000"
    assert d.on_registered("005930", 5_000 * MS) is None  # nothing open any more
    # The silence clock restarts at the next tick: no silence gap across the outage.
    assert d.on_tick("005930", 5_100 * MS) is None


def test_a_symbol_that_leaves_its_slot_is_forgotten() -> None:
    d = detector()
    d.on_tick("005930", 2_000 * MS)
    d.on_disconnect(2_100 * MS, "disconnect", ["005930"])
    d.forget("005930")
    assert d.on_registered("005930", 3_000 * MS) is None
    assert d.on_tick("005930", 9_000 * MS) is None
