"""The tick grid and its mid-point rule (`observer.market.grid`): one table, in Python and SQL."""

from __future__ import annotations

import sqlite3

from hypothesis import given
from hypothesis import strategies as st

from harness.sim.price_units import tick_size as sim_tick
from observer.market.grid import KRX_TICK_SIZES, tick_size, tick_sql


@given(st.lists(st.integers(1, 3_000_000), min_size=1, max_size=50))
def test_the_sql_tick_is_the_tables_tick_and_the_simulators(prices: list[int]) -> None:
    """The simulator implements KRX's units by itself: it may disagree, and would fail here."""
    db = sqlite3.connect(":memory:")
    db.execute("create table t (price integer)")
    db.executemany("insert into t values (?)", [(p,) for p in prices])
    found = db.execute(f"select price, {tick_sql('price')} from t").fetchall()
    assert [unit for _, unit in found] == [tick_size(p) for p in prices]
    assert [tick_size(p) for p in prices] == [sim_tick(p) for p in prices]


def test_the_table_starts_at_zero_and_rises() -> None:
    starts = [start for start, _ in KRX_TICK_SIZES]
    ticks = [tick for _, tick in KRX_TICK_SIZES]
    assert starts[0] == 0 and starts == sorted(set(starts)) and ticks == sorted(ticks)
