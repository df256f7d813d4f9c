"""Track B outside KRX's day: triggers from Track A's Nextrade cycles choose Nextrade's names.

In Nextrade's pre-market (08:00-08:50) and after-market (to 20:00) the slots are evaluated as
in KRX's day, over Nextrade's names alone and on its snapshots: volume surges against its own
volume profile (`[track_b] nextrade_volume_profile`), no volatility spikes (a Nextrade
snapshot's range is its whole day's); KRX's snapshots do not fire there.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from observer.calendar.phases import KST
from observer.config.workers import TrackBSettings
from tests.track_b.test_track_b_resume import S, Streams, at, follow, snapshot, track_b
from tests.track_b.test_triggers import REF, snap
from workers.track_b.slots import SlotBook
from workers.track_b.triggers import Reference, TriggerEngine, profile_share

SETTINGS = TrackBSettings()
NEXTRADE = SETTINGS.nextrade_volume_profile
EIGHT = datetime(2026, 11, 20, 8, 0, tzinfo=KST)


def nextrade(references: dict[str, Reference]) -> TriggerEngine:
    """Nextrade's engine, as Track B makes it."""
    return TriggerEngine(SETTINGS, references, EIGHT, 600.0, NEXTRADE, volatility=False)


def test_nextrade_s_profile_is_read_from_its_own_open() -> None:
    assert profile_share(NEXTRADE, 50) == pytest.approx(0.05)  # 08:50
    assert profile_share(NEXTRADE, 720) == pytest.approx(0.5)  # 20:00
    assert profile_share(SETTINGS.volume_profile, 390) == pytest.approx(1.0)  # KRX's, 15:30


def test_a_pre_market_surge_fires_against_nextrade_s_share_of_the_day() -> None:
    e = nextrade({"005930": REF})
    assert e.on_snapshot(snap(EIGHT + timedelta(seconds=5), 0)) == []  # no basis yet
    usual = 1_000_000 * (profile_share(NEXTRADE, 20) - profile_share(NEXTRADE, 10))
    assert e.on_snapshot(snap(EIGHT + timedelta(minutes=10), 500)) == []  # 08:00-08:10: 0.1x
    fired = e.on_snapshot(snap(EIGHT + timedelta(minutes=20), 500 + int(usual * 4)))
    assert [(t.kind, round(t.measure, 2)) for t in fired] == [("volume_surge", 4.0)]
    # KRX's profile would have read the same volume as a fraction of an ordinary pace.
    krx = 1_000_000 * (
        profile_share(SETTINGS.volume_profile, 20) - profile_share(SETTINGS.volume_profile, 10)
    )
    assert usual * 4 / krx == pytest.approx(0.75)  # a quarter of the threshold


def test_the_days_range_fires_nothing_on_nextrade_s_snapshots_and_its_volume_does() -> None:
    """16:10: Nextrade's day ranged 2.5 ATRs (KRX's session's moves), no spike; its
    after-market trading four times its share of the day is a surge."""
    e = nextrade({"005930": REF})
    at_16 = EIGHT + timedelta(hours=8)
    assert e.on_snapshot(snap(at_16, 100_000, high=10_100, low=9_950)) == []
    usual = 1_000_000 * (profile_share(NEXTRADE, 490) - profile_share(NEXTRADE, 480))
    moved = e.on_snapshot(snap(at_16 + timedelta(minutes=10), 100_000, high=10_700, low=9_950))
    assert moved == []
    later = at_16 + timedelta(minutes=20)
    surged = e.on_snapshot(snap(later, 100_000 + int(4 * usual), high=10_700, low=9_950))
    assert [(t.kind, round(t.measure, 2)) for t in surged] == [("volume_surge", 4.0)]


def test_a_profile_s_day_scales_the_atr_where_volatility_is_judged() -> None:
    """An engine on Nextrade's profile with volatility on: the range against the ATR scaled
    by the part of the profile's twelve hours gone (16:10: 490 of 720 minutes)."""
    e = TriggerEngine(SETTINGS, {"005930": REF}, EIGHT, 600.0, NEXTRADE)
    at = EIGHT + timedelta(hours=8, minutes=10)
    moved = e.on_snapshot(snap(at, 0, high=10_700, low=9_950))
    assert [t.kind for t in moved] == ["volatility_spike"]
    assert moved[0].measure == pytest.approx(750 / 300 / (490 / 720) ** 0.5, rel=1e-3)


@pytest.mark.parametrize(
    "profile",
    [(("08:00", 0.0),), (("08:00", 0.0), ("08:00", 0.1)), (("08:00", 0.1), ("09:00", 0.05))],
)
def test_a_profile_that_is_no_cumulative_day_is_refused(
    profile: tuple[tuple[str, float], ...],
) -> None:
    with pytest.raises(msgspec.ValidationError, match="nextrade_volume_profile"):
        msgspec.convert({"nextrade_volume_profile": profile}, TrackBSettings)


# ------------------------------------------------------------------ the evaluation


NXT = [f"{i:06d}" for i in range(1, 6)]  # by market cap, 000001 the largest
KRX_ONLY = "000009"
REFS = {
    s: Reference(s, 10**13 // i, 10_000, 1_000_000, 300.0, nxt=s in NXT)
    for i, s in enumerate([*NXT, KRX_ONLY], 1)
}


def test_in_the_pre_market_nextrade_s_snapshots_place_nextrade_s_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three slots: the three largest Nextrade names at 08:00; 000005 surging in Nextrade's
    08:10-08:20 takes the weakest at 08:20. The same surge of KRX's snapshots, and of a name
    Nextrade does not trade, places nothing."""
    tb, _, _ = track_b(tmp_path, at("08:00"), slots=3)
    engine = nextrade({s: r for s, r in REFS.items() if r.nxt})
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    usual = 1_000_000 * profile_share(NEXTRADE, 10)
    shots = []
    for minute in (10, 20):
        observed = at("08:00") + minute * 60 * S
        for n, s in enumerate([*NXT, KRX_ONLY]):
            volume = usual * minute / 10 * (5 if s in ("000005", KRX_ONLY) and minute == 20 else 1)
            shots.append(snapshot(s, observed + n * S, int(volume), venue="NXT"))
            if s == "000004":  # KRX's snapshot of a name surging: not the stretch's venue
                shots.append(snapshot(s, observed + n * S, int(volume) * 9, venue="KRX"))
    follow(tb, engine, book, streams, [], at("08:25"), monkeypatch, feed=shots, venue="NXT")
    decided = [
        (datetime.fromtimestamp(when / S, KST).strftime("%H:%M"), d.action, d.candidate.symbol)
        for when, d in streams.applied
        if d.action != "overflow"
    ]
    assert decided == [
        ("08:00", "allocate", "000001"),
        ("08:00", "allocate", "000002"),
        ("08:00", "allocate", "000003"),
        ("08:20", "replace", "000005"),
    ]
    assert engine.live["000005"]["volume_surge"].measure > 3
    assert KRX_ONLY not in engine.live and "000004" not in engine.live
