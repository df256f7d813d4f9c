"""The trigger engine: the documented measures, like compared with like."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import PriceSnapshot
from observer.calendar.phases import KST
from observer.config.workers import TrackBSettings
from workers.track_b.triggers import Reference, TriggerEngine, profile_share

SETTINGS = TrackBSettings()
OPEN = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
REF = Reference(
    "005930", market_cap=10**12, prev_close=10_000, avg_volume_20d=1_000_000, atr_14=300.0
)


def snap(at: datetime, volume: int, high: int = 10_000, low: int = 10_000) -> PriceSnapshot:
    return PriceSnapshot(
        cycle_id=at.strftime("%Y%m%d-%H%M"),
        symbol="005930",
        market="KOSPI",
        observed_ns=int(at.timestamp() * 1e9),
        price=10_000,
        change=0,
        change_rate=Decimal(0),
        open=10_000,
        high=high,
        low=low,
        volume=volume,
        traded_value=volume * 10_000,
        base_price=10_000,
    )


def engine(open_at: datetime = OPEN) -> TriggerEngine:
    return TriggerEngine(SETTINGS, {"005930": REF}, open_at)


@pytest.mark.parametrize(
    ("minutes", "share"), [(0, 0.0), (15, 0.08), (30, 0.16), (390, 1.0), (500, 1.0), (-5, 0.0)]
)
def test_the_volume_profile_is_cumulative_and_linear_between_points(
    minutes: float, share: float
) -> None:
    assert profile_share(SETTINGS.volume_profile, minutes) == pytest.approx(share)


def test_volume_between_snapshots_is_compared_with_the_same_part_of_an_average_day() -> None:
    e = engine()
    expected = 1_000_000 * profile_share(SETTINGS.volume_profile, 10)  # 09:00-09:10
    fired = e.on_snapshot(snap(OPEN + timedelta(minutes=10), int(expected * 3.5)))
    assert [t.kind for t in fired] == ["volume_surge"]
    assert fired[0].measure == pytest.approx(3.5, rel=1e-3)
    assert fired[0].strength == pytest.approx(0.7, rel=1e-3)  # 3.5 / 5
    assert fired[0].expires_ns == fired[0].fired_ns + 300 * 10**9
    # The next ten minutes trade an ordinary amount: no surge, however big the day's total.
    share = profile_share(SETTINGS.volume_profile, 20) - profile_share(SETTINGS.volume_profile, 10)
    calm = e.on_snapshot(snap(OPEN + timedelta(minutes=20), int(expected * 3.5 + 1e6 * share)))
    assert calm == []


def test_a_late_opening_day_shifts_the_profile() -> None:
    late = OPEN + timedelta(hours=1)  # the CSAT day opens at 10:00
    expected = 1_000_000 * profile_share(SETTINGS.volume_profile, 10)
    fired = engine(late).on_snapshot(snap(late + timedelta(minutes=10), int(expected * 4)))
    assert fired and fired[0].measure == pytest.approx(4.0, rel=1e-3)


def test_the_days_range_is_compared_with_the_atr_scaled_to_the_elapsed_session() -> None:
    at = OPEN + timedelta(minutes=39)  # a tenth of the session
    fired = engine().on_snapshot(snap(at, 0, high=10_250, low=10_050))
    spike = next(t for t in fired if t.kind == "volatility_spike")
    # True range reaches back to the previous close: 10,250 - 10,000.
    assert spike.measure == pytest.approx(250 / (300 * math.sqrt(0.1)), rel=1e-6)
    assert spike.strength == pytest.approx(min(spike.measure / 3, 1.0))
    assert engine().on_snapshot(snap(at, 0, high=10_050, low=9_980)) == []


def test_velocity_fires_from_the_stream_and_candidates_take_the_best_live_trigger() -> None:
    e = engine()
    now = int((OPEN + timedelta(minutes=40)).timestamp() * 1e9)
    assert e.on_velocity("005930", 9.0, now) is None
    fast = e.on_velocity("005930", 12.0, now)
    assert fast is not None and fast.strength == pytest.approx(0.6)
    e.on_snapshot(snap(OPEN + timedelta(minutes=39), 0, high=10_400, low=10_000))
    (best,) = e.candidates(now)
    # Volatility at full strength scores 6 x 2 = 12; velocity 8 x 1.6 = 12.8 wins.
    assert best.trigger == "trade_velocity"
    assert best.score == pytest.approx(8 * 1.6 + 0.1 * 12)
    assert e.candidates(now + 301 * 10**9) == []  # every trigger lapsed
    e.pins.add("005930")
    (pin,) = e.candidates(now + 301 * 10**9)
    assert pin.pinned and pin.trigger == "manual" and pin.expires_ns == 0


def test_a_trigger_from_snapshots_outlives_the_interval_to_the_next_snapshot() -> None:
    # A 5-minute TTL under 10-minute cycles lapsed between two snapshots of a surge.
    e = TriggerEngine(SETTINGS, {"005930": REF}, OPEN, snapshot_interval_s=600.0)
    expected = 1_000_000 * profile_share(SETTINGS.volume_profile, 10)
    (surge,) = e.on_snapshot(snap(OPEN + timedelta(minutes=10), int(expected * 3.5)))
    assert surge.expires_ns == surge.fired_ns + 660 * 10**9  # the interval and a minute
    assert e.candidates(surge.fired_ns + 630 * 10**9)  # still live when the next one comes
    velocity = e.on_velocity("005930", 12.0, surge.fired_ns)  # from the stream: its own TTL
    assert velocity is not None and velocity.expires_ns == velocity.fired_ns + 180 * 10**9


def test_a_snapshot_taken_is_seen_so_the_feed_and_the_database_give_it_once() -> None:
    # Track B subscribes to the feed before it reads the day's snapshots from the database:
    # one stored in between comes from both, and the engine must take it once.
    e = engine()
    first = snap(OPEN + timedelta(minutes=10), 1_000)
    assert not e.seen(first)
    e.on_snapshot(first)
    assert e.seen(first) and e.seen(snap(OPEN + timedelta(minutes=5), 0))
    assert not e.seen(snap(OPEN + timedelta(minutes=20), 2_000))


def test_the_range_is_measured_from_todays_base_price() -> None:
    # A 1:1 bonus issue goes ex today: the previous close (20,000) is not today's base.
    ex = Reference("005930", 10**12, prev_close=20_000, avg_volume_20d=1_000_000, atr_14=300.0)
    e = TriggerEngine(SETTINGS, {"005930": ex}, OPEN)
    quiet = snap(OPEN + timedelta(hours=2), 0, high=10_050, low=10_000)  # base price 10,000
    assert [t.kind for t in e.on_snapshot(quiet)] == []


@given(
    volume=st.integers(0, 10**9),
    high=st.integers(0, 10**6),
    low=st.integers(0, 10**6),
    minutes=st.floats(-60, 600),
)
def test_any_snapshot_gives_well_formed_triggers(
    volume: int, high: int, low: int, minutes: float
) -> None:
    fired = engine().on_snapshot(snap(OPEN + timedelta(minutes=minutes), volume, high, low))
    for trigger in fired:
        config = getattr(SETTINGS, trigger.kind)
        assert trigger.measure >= config.threshold and 0 < trigger.strength <= 1


@given(
    high=st.integers(0, 20_000),
    low=st.integers(0, 20_000),
    minutes=st.integers(5, 390),
    base=st.sampled_from([0, 10_000]),
)
def test_an_unknown_high_or_low_is_no_range(high: int, low: int, minutes: int, base: int) -> None:
    # A blank stck_hgpr / stck_lwpr reads 0: a range down to 0 fired the volatility spike at
    # full strength (a 10,010 high and an unknown low measured 84x the ATR's share).
    e = engine()
    shot = snap(OPEN + timedelta(minutes=minutes), 1, high=high, low=low)
    fired = e.on_snapshot(msgspec.structs.replace(shot, base_price=base))
    spikes = [t for t in fired if t.kind == "volatility_spike"]
    if high == 0 or low == 0:
        assert spikes == []
    else:
        reference = base or REF.prev_close
        true_range = max(high, reference) - min(low, reference)
        expected = REF.atr_14 * math.sqrt(minutes / 390)
        assert bool(spikes) == (true_range / expected >= SETTINGS.volatility_spike.threshold)
