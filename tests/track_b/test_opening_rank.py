"""The opening half hour summarised and ranked as the seed composes it (the context sync's)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bus.events import PriceSnapshot
from workers.track_b.opening_rank import Opening, baseline, openings, ranked

T0 = 1_795_000_000_000_000_000
TEN_MIN = 600 * 10**9


def snap(symbol: str, n: int, price: int, high: int, low: int, volume: int) -> PriceSnapshot:
    return PriceSnapshot(
        cycle_id=f"20261120-09{n}0",
        symbol=symbol,
        market="KOSPI",
        observed_ns=T0 + n * TEN_MIN,
        price=price,
        change=0,
        change_rate=Decimal(0),
        open=1_000,
        high=high,
        low=low,
        volume=volume,
        traded_value=0,
    )


def test_an_opening_takes_the_last_cumulative_volume_and_the_extremes() -> None:
    shots = [
        snap("A", 2, 1_040, 1_060, 990, 900),
        snap("A", 0, 1_010, 1_020, 995, 300),
        snap("A", 1, 1_030, 1_050, 980, 600),
    ]
    (a,) = openings(shots)
    assert a == Opening("A", 1_000, 1_060, 980, 1_040, 900)  # volume 900, not 1,800
    assert a.volatility == pytest.approx(0.08) and a.move == pytest.approx(0.04)


def test_the_composite_ranks_volume_range_and_move_as_the_seed_weighs_them() -> None:
    found = [
        Opening("A", 1_000, 1_010, 990, 1_000, 100),  # quiet
        Opening("B", 1_000, 1_100, 950, 1_090, 300),  # busy, wide, moved 9 %
        Opening("C", 1_000, 1_020, 980, 1_010, 200),
    ]
    base = baseline(found)
    assert base.avg_volume == 200 and base.samples == 3
    assert base.avg_volatility == pytest.approx((0.02 + 0.15 + 0.04) / 3)
    order = ranked(found, base)
    assert [o.symbol for o, _, _ in order] == ["B", "C", "A"]
    b_score = 0.4 * 1.5 + 0.3 * 0.15 / base.avg_volatility + 0.3 * 100 * 0.09
    assert order[0][1] == pytest.approx(b_score) and order[0][2] == pytest.approx(1.5)


def test_no_snapshots_give_an_empty_baseline() -> None:
    assert openings([]) == [] and baseline([]).samples == 0 and ranked([], baseline([])) == []
