"""The simulator's push: a round's records across registrations, in the order they were stamped."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from harness.sim.realtime import in_time_order

Runs = list[tuple[tuple[str, str], list[str]]]


def _trade(symbol: str, hhmmss: str, n: int) -> str:
    return f"{symbol}^{hhmmss}^{n}"  # the fields that matter: the symbol, its stamp, an order


def test_a_round_interleaves_symbols_by_stamp_and_keeps_a_frame_a_registration() -> None:
    runs: Runs = [
        (("H0STCNT0", "000660"), [_trade("000660", "090001", 1), _trade("000660", "090050", 2)]),
        (("H0STCNT0", "005930"), [_trade("005930", "090002", 1), _trade("005930", "090003", 2)]),
        (("H0STMKO0", "005930"), ["005930^N^^^"]),  # no stamp: first
    ]
    assert in_time_order(runs) == [
        (("H0STMKO0", "005930"), ["005930^N^^^"]),
        (("H0STCNT0", "000660"), [_trade("000660", "090001", 1)]),
        (("H0STCNT0", "005930"), [_trade("005930", "090002", 1), _trade("005930", "090003", 2)]),
        (("H0STCNT0", "000660"), [_trade("000660", "090050", 2)]),
    ]


@given(
    st.lists(
        st.lists(st.integers(90000, 153000), max_size=12),  # each registration's stamps
        max_size=6,
    )
)
def test_every_record_goes_once_each_registration_in_its_own_order(stamps: list[list[int]]) -> None:
    runs: Runs = [
        (("H0STCNT0", f"{n:06d}"), [_trade(f"{n:06d}", f"{t:06d}", i) for i, t in enumerate(ts)])
        for n, ts in enumerate(stamps)
        if ts
    ]
    merged = in_time_order(runs)
    flat = [(pair, record) for pair, records in merged for record in records]
    assert sorted(flat) == sorted((pair, r) for pair, records in runs for r in records)
    for pair, records in runs:  # never reordered within a registration (the chain's order)
        assert [r for p, r in flat if p == pair] == records
    assert all(a[0] != b[0] for a, b in itertools.pairwise(merged))  # runs merged
    # In stamp order, each record placed by the latest stamp of its registration so far
    latest: dict[tuple[str, str], str] = {}
    keys = []
    for pair, record in flat:
        latest[pair] = max(latest.get(pair, ""), record.split("^")[1])
        keys.append(latest[pair])
    assert keys == sorted(keys)
