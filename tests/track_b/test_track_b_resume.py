"""A Track B started after the morning: the day so far replayed, its slots taken back to last.

The worker's own `_sync`, `_resume` and `_follow` on a database of Track A's snapshots and
Track B's slot decisions, with a manual clock that the evaluation loop's nap advances, a
collector that records what it is asked to apply and a feed of the snapshots due.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Set
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from sqlalchemy import insert

from bus.events import PriceSnapshot, Venue
from observer.alerts.book import AlertBook
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.config.tree import Settings
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.slot_queries import AsOf
from workers.track_b.earlier_run import lasting
from workers.track_b.registrations import RegistrationPolicy
from workers.track_b.session_codes import SessionCodes
from workers.track_b.sessions import Stretch
from workers.track_b.slots import Holding, Room, SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine, profile_share
from workers.track_b.worker import TrackB

S = 1_000_000_000
DAY = date(2026, 11, 20)
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
FULL = NINE + timedelta(minutes=30)
CLOSING = NINE.replace(hour=15)  # KRX's feeds released, Track B's day over


def at(hhmmss: str) -> int:
    """The instant of ``HH:MM[:SS]`` KST on the day, ns."""
    parts = [int(p) for p in hhmmss.split(":")] + [0]
    return int(NINE.replace(hour=parts[0], minute=parts[1], second=parts[2]).timestamp()) * S


def hhmmss(ns: int) -> str:
    return f"{datetime.fromtimestamp(ns / S, KST):%H:%M:%S}"


# ------------------------------------------------------------------ the harness


class Sent(list[Any]):
    """A producer: what was sent."""

    def send(self, event: Any) -> int:
        self.append(event)
        return len(self)


class Streams:
    """The collector's part: every account healthy, trade rates as the test says."""

    def __init__(self, accounts: Iterable[str], rate: Callable[[str, int], float]) -> None:
        self.accounts = set(accounts)
        self.rate = rate
        self.clock: ManualClock | None = None
        self.applied: list[tuple[int, SlotAction]] = []
        self.resumed: list[Holding] = []
        self.abandoned: list[SlotAction] = []
        self.latest: dict[str, Any] = {}
        self.statuses: dict[str, Any] = {}
        self.held_aside: dict[str, set[Any]] = {}  # an auction's: none here
        self.ticks = self.gaps = self.refusals = 0
        self.off_grid: Counter[tuple[str, str]] = Counter()  # stored trades between ticks
        self.session_codes = SessionCodes(AlertBook(None), None)  # no trade streams here
        self.chain_resets = 0
        self.policy = RegistrationPolicy()  # KRX's trades alone
        self.took: list[tuple[list[tuple[str, str]], bool]] = []  # alerts taken over, late

    def taken_over(self, notices: Iterable[Any], *, late: bool = False) -> None:
        self.took.append(([(n.code, n.subject) for n in notices], late))

    def velocity(self, symbol: str) -> float:
        assert self.clock is not None
        return self.rate(symbol, self.clock.now_ns())

    def healthy(self) -> set[str]:
        return set(self.accounts)

    async def apply(self, decisions: list[SlotAction], holdings: Any = None) -> None:
        assert self.clock is not None
        self.applied.extend((self.clock.now_ns(), d) for d in decisions)

    async def resume(self, holding: Holding, start_ns: int, chains: object = ()) -> None:
        self.resumed.append(holding)

    def abandon(self, release: SlotAction, start_ns: int) -> None:
        self.abandoned.append(release)

    async def hold(self, registrations: Mapping[str, Set[Any]]) -> None:
        self.held_aside = {alias: set(held) for alias, held in registrations.items() if held}


class Feed:
    """The writer's feed: each snapshot once the clock has reached its observation."""

    def __init__(self, clock: ManualClock, snapshots: Iterable[PriceSnapshot]) -> None:
        self.clock = clock
        self.due = sorted(snapshots, key=lambda s: s.observed_ns)

    def recv(self, timeout: float) -> list[Any] | None:
        now = self.clock.now_ns()
        ready = [s for s in self.due if s.observed_ns <= now]
        self.due = self.due[len(ready) :]
        return [SimpleNamespace(event=s) for s in ready] or None

    def close(self) -> None:
        pass


def track_b(tmp_path: Path, now_ns: int, slots: int = 41) -> tuple[TrackB, Sent, str]:
    """A Track B on a migrated database (one account of ``slots``) at ``now_ns``."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    settings = msgspec.convert(
        {
            "database": {"url": url},
            "paths": {"data_dir": str(tmp_path)},
            "kis": {"accounts": [{"alias": "acct1"}], "stream": {"max_registrations": slots}},
        },
        Settings,
    )
    sent = Sent()
    tb = TrackB(settings, ManualClock(now_ns), sent, None, asyncio.Event())  # type: ignore[arg-type]
    return tb, sent, url


def store(url: str, table: Any, rows: list[dict[str, Any]]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    engine.dispose()


def snapshot(symbol: str, at_ns: int, volume: int, **extra: Any) -> PriceSnapshot:
    """Track A's snapshot of its cycle (the 10-minute one it falls in)."""
    cycle = datetime.fromtimestamp(at_ns / S, KST)
    cycle = cycle.replace(minute=cycle.minute // 10 * 10, second=0, microsecond=0)
    fields: dict[str, Any] = {
        "cycle_id": f"{cycle:%Y%m%d-%H%M}",
        "symbol": symbol,
        "market": "KOSPI",
        "observed_ns": at_ns,
        "price": 10_000,
        "change": 0,
        "change_rate": Decimal(0),
        "open": 10_000,
        "high": 10_010,
        "low": 9_990,
        "volume": volume,
        "traded_value": 0,
        "upper_limit": 13_000,
        "lower_limit": 7_000,
        "base_price": 10_000,
    }
    return PriceSnapshot(**{**fields, **extra})


def snapshot_rows(snapshots: Iterable[PriceSnapshot]) -> list[dict[str, Any]]:
    return [
        {"source": "track_a", "seq": n, "produced_ns": s.observed_ns, **msgspec.structs.asdict(s)}
        for n, s in enumerate(snapshots, start=1)
    ]


def follow(
    tb: TrackB,
    engine: TriggerEngine,
    book: SlotBook,
    streams: Streams,
    context: list[SlotCandidate],
    until_ns: int,
    monkeypatch: pytest.MonkeyPatch,
    feed: Iterable[PriceSnapshot] = (),
    each_round: Callable[[int], None] = lambda n: None,
    venue: Venue = "KRX",
) -> list[tuple[int, set[str]]]:
    """Run the evaluation loop until ``until_ns``: (when, symbols held) after each round.

    ``venue``: whose snapshots ``engine`` takes (a `Stretch`'s).
    """
    clock = tb.clock
    assert isinstance(clock, ManualClock)
    streams.clock = clock
    rounds: list[tuple[int, set[str]]] = []

    async def nap(seconds: float) -> None:  # the next evaluation is due: time moves on
        rounds.append((clock.now_ns(), set(book.held())))
        each_round(len(rounds) - 1)
        clock.advance(seconds)

    monkeypatch.setattr(tb, "_nap", nap)
    until = datetime.fromtimestamp(until_ns / S, KST)
    stretch = Stretch(venue, engine, until, tb.config.evaluate_s)
    asyncio.run(tb._follow(Feed(clock, feed), stretch, book, streams, context))  # type: ignore[arg-type]
    return rounds


def end_at(
    tb: TrackB, book: SlotBook, streams: Streams, closing: datetime
) -> Coroutine[Any, Any, None]:
    """``tb._end`` at ``closing``, with no after-market to follow."""
    nothing = Stretch("NXT", TriggerEngine(tb.config, {}, closing), closing, 5.0)
    return tb._end(None, book, streams, closing, nothing)  # type: ignore[arg-type]


# ------------------------------------------------------------------ a restart at 13:00

_PROFILE = Settings().track_b.volume_profile
SYMBOLS = [f"{i:06d}" for i in range(1, 201)]
REFS = {s: Reference(s, 10**13 // i, 10_000, 1_000_000, 300.0) for i, s in enumerate(SYMBOLS, 1)}
SURGE, EARLY, HALT = SYMBOLS[150], SYMBOLS[151], SYMBOLS[152]


def caps_held_since_nine_thirty(engine: TriggerEngine) -> SlotBook:
    """The 41 slots of acct1 a restart took back: the largest caps, held since 09:30."""
    book = SlotBook(["acct1"], 41)
    for n, s in enumerate(SYMBOLS[:41]):
        cap = SlotCandidate(
            s, "market_cap", engine.score(s, 1.0, 0.0), market_cap=REFS[s].market_cap
        )
        assert book.restore(Holding("acct1", n, cap, at("09:30")))
    return book


def burst(start_min: float, end_min: float) -> float:
    """4x the usual volume of a symbol trading 1,000,000 a day, from ``start_min`` on."""
    if end_min <= start_min:
        return 0.0
    return 4 * 1_000_000 * (profile_share(_PROFILE, end_min) - profile_share(_PROFILE, start_min))


def the_day_to_one() -> list[PriceSnapshot]:
    """Track A's cycles of 09:00-12:50: ordinary paces (0.5-2.5x the usual volume, never 3x).

    SURGE trades 4x its usual pace in the 12:40-12:50 interval, EARLY in 09:50-10:00;
    HALT's 12:50 snapshot says it is halted.
    """
    shots = []
    for k in range(24):  # 09:00, 09:10, ..., 12:50
        cycle = NINE + timedelta(minutes=10 * k)
        for i, s in enumerate(SYMBOLS):
            observed = int(cycle.timestamp()) * S + S + i * S // 5
            minutes = (observed - at("09:00")) / S / 60
            pace = 0.5 + (i * 37 % 200) / 100
            volume = pace * 1_000_000 * profile_share(_PROFILE, minutes)
            for who, from_min in ((SURGE, 220.0), (EARLY, 50.0)):
                if s == who:  # 4x the usual in the ten minutes from from_min
                    volume += burst(from_min, min(minutes, from_min + 10))
            high = 10_005 + (i % 7) * 2  # a range well under 2x the ATR's share
            shots.append(
                snapshot(s, observed, int(volume), high=high, halted=s == HALT and k == 23)
            )
    return shots


def test_a_restart_at_13_replays_the_day_and_hands_out_no_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tb, _, url = track_b(tmp_path, at("13:00"))
    day = the_day_to_one()
    store(url, m.PriceSnapshotRow, snapshot_rows(day))
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    context = tb._sync(FULL, engine, Room(41))
    # The opening's leaders lapsed at 09:34:50: none comes back with a fresh expiry.
    assert context == []
    # The triggers of the day so far, fired when observed: SURGE's at 12:50 is live, EARLY's
    # of 10:00 lapsed long ago; HALT's halt of 12:50 is known.
    now = tb.clock.now_ns()
    live = {c.symbol: c for c in engine.candidates(now)}
    assert set(live) == {SURGE}
    fired = engine.live[SURGE]["volume_surge"].fired_ns
    assert fired == next(s.observed_ns for s in day[::-1] if s.symbol == SURGE)
    assert EARLY in engine.live and not engine.live[EARLY]  # fired, lapsed
    # The slots the restart took back (the 41 largest caps, by cap since 09:30) stay; SURGE
    # takes one of them until its surge lapses, when the cap comes back.
    book = caps_held_since_nine_thirty(engine)
    streams = Streams(["acct1"], lambda symbol, now: 0.0)
    follow(tb, engine, book, streams, context, at("13:05:05"), monkeypatch)
    changes = [(hhmmss(when), d.action, d.candidate.symbol) for when, d in streams.applied]
    lapsed = fired + int(engine.ttl_s("volume_surge") * S) - at("13:00")
    lapses = hhmmss(at("13:00") + -(-lapsed // (5 * S)) * 5 * S)  # the first round after
    assert changes == [
        ("13:00:00", "replace", SURGE),
        (lapses, "expire", SURGE),
        (lapses, "allocate", SYMBOLS[40]),  # the cap it had replaced, the weakest
    ], changes
    assert set(tb.guard.barred(now)) == {HALT}  # halted at 12:50: barred


def test_the_morning_context_sync_is_the_openings_from_now(tmp_path: Path) -> None:
    tb, _, url = track_b(tmp_path, at("09:29:50"))
    store(url, m.PriceSnapshotRow, snapshot_rows(the_day_to_one()))  # the later ones unread
    engine = TriggerEngine(tb.config, REFS, NINE, 600.0)
    context = tb._sync(FULL, engine, Room(41))
    assert len(context) == 41 and {c.trigger for c in context} == {"context_sync"}
    assert {c.expires_ns for c in context} == {at("09:29:50") + 300 * S}
    assert SURGE not in engine.live and not tb.guard.barred(at("09:29:50"))
    # Restarted at 09:31, the same leaders, lapsing when the first sync's did.
    again, _, _ = track_b(tmp_path, at("09:31"))
    restarted = again._sync(FULL, TriggerEngine(tb.config, REFS, NINE, 600.0), Room(41))
    assert len(restarted) == 41 and {c.expires_ns for c in restarted} == {at("09:34:50")}


# ------------------------------------------------------------------ renewals the restart forgot

A, B, C = "AAAAAA", "BBBBBB", "CCCCCC"  # surging / busy on the stream / gone quiet
CAPS = [f"K{i:05d}" for i in range(1, 11)]


def _ten_o_clock() -> tuple[dict[str, Reference], list[PriceSnapshot]]:
    """Snapshots at hh:m0:30: A trades 4x its pace from 10:00, B and C in 09:50-10:00 only."""
    refs = {s: Reference(s, 10**12, 10_000, 1_000_000, 300.0) for s in (A, B, C)}
    refs |= {s: Reference(s, 10**13 - i, 10_000, 1_000_000, 300.0) for i, s in enumerate(CAPS)}
    shots = []
    for k in range(11):  # 09:00:30 .. 10:40:30
        observed = at("09:00:30") + k * 600 * S
        minutes = (observed - at("09:00")) / S / 60
        usual = 1_000_000 * profile_share(_PROFILE, minutes)
        for s in (A, B, C):
            extra = burst(50.5, minutes if s == A else min(minutes, 60.5))
            shots.append(snapshot(s, observed, int(usual + extra)))
    return refs, shots


def _slot_rows(rows: list[tuple[str, str, str, int, str, int, str]]) -> list[dict[str, Any]]:
    return [
        {
            "source": "track_b",
            "seq": n,
            "produced_ns": at(when),
            "account": "acct1",
            "action": action,
            "symbol": symbol,
            "slot": slot,
            "trigger": trigger,
            "score": Decimal("19.2") if trigger != "market_cap" else Decimal("2.3"),
            "reason": "test",
            "replaced_symbol": replaced,
            "expires_ns": expires,
        }
        for n, (when, action, symbol, slot, trigger, expires, replaced) in enumerate(rows, 1)
    ]


def test_a_restart_keeps_the_slots_renewed_since_their_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first process: the five largest caps at 09:30; A, B and C surge at 10:00:30 and take
    # three of them (10:11:30: the volume surge's 660 s). A's surge goes on (renewed at
    # 10:10:30 and 10:20:30), B and C were renewed by their trade velocity. It died at 10:22.
    refs, shots = _ten_o_clock()
    lapse = at("10:00:30") + 660 * S
    decisions = [("09:30", "allocate", s, n, "market_cap", 0, "") for n, s in enumerate(CAPS[:5])]
    decisions += [
        ("10:00:30", "replace", s, n, "volume_surge", lapse, CAPS[n])
        for n, s in ((2, C), (3, A), (4, B))
    ]
    tb, sent, url = track_b(tmp_path, at("10:22:05"), slots=5)
    store(url, m.PriceSnapshotRow, snapshot_rows(s for s in shots if s.observed_ns < at("10:22")))
    store(url, m.SlotDecisionRow, _slot_rows(decisions))
    # The successor at 10:22:05, as its day runs: the sync, the slots taken back, the loop.
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    book = SlotBook(["acct1"], 5)
    # The new session's stream: B trades 12/s from 10:22:15, A and C nothing.
    streams = Streams(["acct1"], lambda s, now: 12.0 if s == B and now >= at("10:22:15") else 0.0)
    context = tb._sync(FULL, engine, Room(5))
    as_of = AsOf(len(decisions), at("10:22:05"))
    standing = asyncio.run(tb._resume(DAY, engine, book, streams, as_of, []))  # type: ignore[arg-type]
    assert {h.candidate.symbol for h in streams.resumed} == {A, B, C, *CAPS[:2]}
    later = [s for s in shots if s.observed_ns >= at("10:22")]  # A still surging
    rounds = follow(
        tb, engine, book, streams, [*context, *standing], at("10:45"), monkeypatch, later
    )
    assert rounds[0][0] == at("10:22:05") and rounds[-1][0] >= at("10:44:55")
    # A, renewed by its snapshots, and B, by its trade velocity, never left their slots.
    assert all({A, B} <= held for _, held in rounds), [
        (hhmmss(t), sorted(h)) for t, h in rounds if not {A, B} <= h
    ]
    # C, quiet, lapsed once its trigger could no longer have been renewed: 660 s from now.
    gone = [(hhmmss(t), d.action, d.reason) for t, d in streams.applied if d.candidate.symbol == C]
    assert gone == [("10:33:05", "expire", "volume_surge lapsed (score 19.20)")], gone
    assert [d.candidate.symbol for _, d in streams.applied if d.action == "allocate"] == [CAPS[2]]
    assert [e.code for e in sent if hasattr(e, "code")] == ["track_b_restarted"]


def test_a_restored_holding_lasts_its_triggers_ttl_as_the_engine_gives_it() -> None:
    config = Settings().track_b
    refs = {A: Reference(A, 10**12, 10_000, 1_000_000, 300.0)}
    engine = TriggerEngine(config, refs, NINE, 600.0)
    surge = engine.on_snapshot(snapshot(A, at("10:00:30"), 4_000_000))
    velocity = engine.on_velocity(A, 15.0, at("10:00:30"))
    assert surge and velocity
    for trigger in (*surge, velocity):
        assert trigger.expires_ns - trigger.fired_ns == int(lasting(engine, trigger.kind) * S)
    assert lasting(engine, "volume_surge") == 660.0 and lasting(engine, "trade_velocity") == 180.0
    assert lasting(engine, "context_sync") == lasting(engine, "volume_surge")
    assert lasting(engine, "market_cap") == lasting(engine, "manual") == 0.0
