"""The trigger engine: which universe stocks deserve a real-time slot now.

Triggers (volume surge, volatility spike, trade velocity, manual pin: `TriggerEngine`) fire
from Track A's snapshots, the stream's trade rates and the operator's pins. A trigger's
strength is ``min(measure / full_at, 1)``; it lapses ``ttl_s`` after it last fired (a
snapshot's lasts at least one Track A interval plus `SNAPSHOT_GRACE_S`, to its renewal by
the next snapshot). A symbol's candidate is its live trigger with the highest priority score,
``weight x (1 + strength) + 0.1 x log10(market cap)`` (no cap term when the cap is unknown).
A symbol that ``[track_b] shard`` leaves to another host fires nothing (``other_shard``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, time
from typing import Literal

import msgspec

from bus.events import PriceSnapshot
from observer.cluster.shards import Shard
from observer.config.workers import TrackBSettings, TriggerSettings
from workers.track_b.slots import SlotCandidate

__all__ = ["Reference", "Trigger", "TriggerEngine", "profile_share"]

TriggerKind = Literal["volume_surge", "trade_velocity", "volatility_spike", "manual"]

_NS = 1_000_000_000
_MIN_SHARE = 0.005  # of the profile's day: expected-volume shares below are no basis for a ratio
_MIN_ELAPSED = 5.0  # minutes after the open before a range means anything
SNAPSHOT_GRACE_S = 60.0  # a symbol's next snapshot may come this much past one interval
_FROM_SNAPSHOTS = ("volume_surge", "volatility_spike")


class Reference(msgspec.Struct, frozen=True, gc=False):
    """What the day's universe says of a symbol."""

    symbol: str
    market_cap: int
    prev_close: int
    avg_volume_20d: int
    atr_14: float
    nxt: bool = False  # Nextrade trades it today
    measures: tuple[str, ...] = ()  # the market measures it is under today

    def under(self, measures: Collection[str]) -> bool:
        """Whether it is under one of ``measures`` today."""
        return not set(measures).isdisjoint(self.measures)


class Trigger(msgspec.Struct, frozen=True, gc=False):
    """A fired trigger: its measure, strength and when it lapses (0: never)."""

    symbol: str
    kind: TriggerKind
    measure: float
    strength: float
    fired_ns: int
    expires_ns: int


def _points(profile: Iterable[tuple[str, float]]) -> list[tuple[float, float]]:
    """(minutes after the first point, cumulative share) pairs, in time order."""
    at = sorted((time.fromisoformat(at), share) for at, share in profile)
    origin = at[0][0].hour * 60 + at[0][0].minute
    return [(t.hour * 60 + t.minute - origin, share) for t, share in at]


def _share(points: list[tuple[float, float]], minutes: float) -> float:
    at = bisect.bisect_left(points, (minutes, -1.0))
    if at == 0:
        return points[0][1]
    if at == len(points):
        return points[-1][1]
    (m0, s0), (m1, s1) = points[at - 1], points[at]
    return s0 + (s1 - s0) * (minutes - m0) / (m1 - m0)


def profile_share(profile: Iterable[tuple[str, float]], minutes: float) -> float:
    """The cumulative share of a day's volume traded ``minutes`` after the profile's first point."""
    return _share(_points(profile), minutes)


class TriggerEngine:
    """Triggers from Track A snapshots, the stream's trade rates and pins.

    Every measure compares like with like, from data the product has:

    * **volume surge**: the volume traded between two Track A snapshots against what the
      20-day average volume trades in the same part of the session. KRX days are U-shaped, so
      the expected share comes from a cumulative ``profile`` (``volume_profile`` unless given;
      linear between its points), in minutes since ``open_at``, where its first point falls:
      late-opening days shift with it. The first snapshot of a day compares the volume since
      the open.
    * **volatility spike** (unless ``volatility`` is false): the day's true range so far (high
      and low, reaching back to the previous close; none while either is unknown) against the
      14-day ATR scaled by the square root of the elapsed part of the profile's day (a random
      walk's range grows so).
    * **trade velocity**: executions per second over the last ``velocity_window_s`` of the
      real-time stream. Track A has no trade counts, so this only renews the trigger of a
      symbol already streamed (it keeps a busy symbol in its slot).
    * **manual**: an operator's pin (strength 1, no expiry).

    A would-be firing of a symbol another host's shard owns is counted in ``other_shard``
    (Track B's heartbeat) instead.
    """

    def __init__(
        self,
        settings: TrackBSettings,
        references: Mapping[str, Reference],
        open_at: datetime,
        snapshot_interval_s: float = 0.0,
        profile: Sequence[tuple[str, float]] | None = None,
        *,
        volatility: bool = True,
    ) -> None:
        self.settings = settings
        self.volatility = volatility  # whether snapshots' ranges fire volatility spikes
        # How long a trigger from Track A's snapshots waits for the next one (0: ttl_s only).
        self._renewal_s = snapshot_interval_s + SNAPSHOT_GRACE_S if snapshot_interval_s else 0.0
        self.references = dict(references)
        self.open_ns = int(open_at.timestamp() * _NS)
        self._profile = _points(settings.volume_profile if profile is None else profile)
        self._day_minutes = self._profile[-1][0]  # from the first point to the last
        self._min_share = _MIN_SHARE * self._profile[-1][1]
        self._weights: dict[str, float] = {
            "volume_surge": settings.volume_surge.weight,
            "trade_velocity": settings.trade_velocity.weight,
            "volatility_spike": settings.volatility_spike.weight,
        }
        self._last: dict[str, tuple[int, int]] = {}  # symbol -> (observed_ns, volume)
        self.live: dict[str, dict[TriggerKind, Trigger]] = {}
        self.pins: set[str] = set()
        self.shard = Shard.parse(settings.shard)
        self.other_shard = 0  # firings of symbols another host's shard owns: not live

    # ------------------------------------------------------------------ measures

    def ttl_s(self, kind: TriggerKind) -> float:
        """How long a firing of ``kind`` lasts unrenewed (a snapshot's: to the next one)."""
        ttl_s: float = getattr(self.settings, kind).ttl_s
        return max(ttl_s, self._renewal_s) if kind in _FROM_SNAPSHOTS else ttl_s

    def _fire(self, symbol: str, kind: TriggerKind, measure: float, now_ns: int) -> Trigger | None:
        config: TriggerSettings = getattr(self.settings, kind)
        if not config.enabled or measure < config.threshold:
            return None
        if not self.shard.owns(symbol):
            self.other_shard += 1
            return None
        expires_ns = now_ns + int(self.ttl_s(kind) * _NS)
        trigger = Trigger(
            symbol, kind, measure, min(measure / config.full_at, 1.0), now_ns, expires_ns
        )
        self.live.setdefault(symbol, {})[kind] = trigger
        return trigger

    def on_snapshot(self, snapshot: PriceSnapshot) -> list[Trigger]:
        """Volume surge and volatility spike from one Track A snapshot."""
        ref = self.references.get(snapshot.symbol)
        if ref is None:
            return []
        fired = []
        now = snapshot.observed_ns
        minutes = (now - self.open_ns) / _NS / 60
        profile = self._profile
        before = self._last.get(snapshot.symbol)
        self._last[snapshot.symbol] = (now, snapshot.volume)
        if before is not None and before[0] < now:
            traded = snapshot.volume - before[1]
            since = (before[0] - self.open_ns) / _NS / 60
            share = _share(profile, minutes) - _share(profile, since)
        else:
            traded, share = snapshot.volume, _share(profile, minutes)
        if share >= self._min_share and ref.avg_volume_20d > 0:
            ratio = traded / (ref.avg_volume_20d * share)
            if trigger := self._fire(snapshot.symbol, "volume_surge", ratio, now):
                fired.append(trigger)
        # A blank high or low (stck_hgpr / stck_lwpr) is 0: no range, not one down to 0.
        if not self.volatility:
            return fired
        if minutes >= _MIN_ELAPSED and ref.atr_14 > 0 and snapshot.high > 0 and snapshot.low > 0:
            # Today's base price (기준가), adjusted on a day going ex-rights or split, before
            # the universe's previous close, which is not: a 1:1 bonus issue read as a 50 %
            # range fired this trigger at full strength all day.
            base = snapshot.base_price or ref.prev_close or snapshot.open
            true_range = max(snapshot.high, base) - min(snapshot.low, base)
            day = self._day_minutes
            expected = ref.atr_14 * math.sqrt(min(minutes, day) / day)
            if trigger := self._fire(
                snapshot.symbol, "volatility_spike", true_range / expected, now
            ):
                fired.append(trigger)
        return fired

    def seen(self, snapshot: PriceSnapshot) -> bool:
        """True if the engine has taken this snapshot of the symbol, or a later one."""
        last = self._last.get(snapshot.symbol)
        return last is not None and last[0] >= snapshot.observed_ns

    def on_velocity(self, symbol: str, trades_per_s: float, now_ns: int) -> Trigger | None:
        """Trade velocity of a streamed symbol."""
        return self._fire(symbol, "trade_velocity", trades_per_s, now_ns)

    # ------------------------------------------------------------------ candidates

    def score(self, symbol: str, weight: float, strength: float) -> float:
        """The priority score: weight x (1 + strength), plus the market-cap term."""
        return weight * (1 + strength) + self._cap_term(symbol)

    def _cap_term(self, symbol: str) -> float:
        ref = self.references.get(symbol)
        return 0.1 * math.log10(ref.market_cap) if ref and ref.market_cap > 0 else 0.0

    def candidates(self, now_ns: int) -> list[SlotCandidate]:
        """Every symbol's best live trigger (and every pin), as slot candidates."""
        found: dict[str, SlotCandidate] = {}
        weights = self._weights
        for symbol, triggers in self.live.items():  # the slot manager orders them
            for kind in [k for k, t in triggers.items() if t.expires_ns <= now_ns]:
                del triggers[kind]
            if triggers:
                best = max(
                    triggers.values(), key=lambda t: (weights[t.kind] * (1 + t.strength), t.kind)
                )
                score = weights[best.kind] * (1 + best.strength) + self._cap_term(symbol)
                found[symbol] = self._candidate(best, score)
        for symbol in sorted(self.pins):
            score = self.score(symbol, self.settings.manual_weight, 1.0)
            found[symbol] = self._candidate(
                Trigger(symbol, "manual", 1.0, 1.0, now_ns, 0), score, pinned=True
            )
        return list(found.values())

    def _candidate(self, trigger: Trigger, score: float, pinned: bool = False) -> SlotCandidate:
        ref = self.references.get(trigger.symbol)
        return SlotCandidate(
            symbol=trigger.symbol,
            trigger=trigger.kind,
            score=score,
            strength=trigger.strength,
            measure=trigger.measure,
            market_cap=ref.market_cap if ref else 0,
            expires_ns=trigger.expires_ns,
            pinned=pinned,
        )
