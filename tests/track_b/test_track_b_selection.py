"""Track B's slot selection in the worker: the overflow alert, the default placement, unpins.

The worker's own evaluation loop (`TrackB._follow`) and overflow watch, with the harness of
`tests.track_b.test_track_b_resume`: a manual clock that the loop's nap advances, a collector that
records what it is asked to apply, a feed of the snapshots due.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved
from observer.calendar.clock import ManualClock
from observer.config.tree import Settings
from observer.db.engine import make_engine
from observer.writer.store import Store
from tests.track_b.test_track_b_resume import (
    CLOSING,
    NINE,
    S,
    Sent,
    Streams,
    at,
    end_at,
    follow,
    hhmmss,
    snapshot,
    track_b,
)
from workers.track_b.collect import Refusal
from workers.track_b.pins import slots_path, write_pins
from workers.track_b.session_alerts import OVERFLOW
from workers.track_b.slots import Holding, SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine, profile_share
from workers.track_b.worker import TrackB

_PROFILE = Settings().track_b.volume_profile
LOG_AT, WARN_AT, CRITICAL_AT = Settings().track_b.overflow_alert_pct  # 5, 10, 20 %


def overflow_events(sent: Sent) -> list[tuple[str, str]]:
    return [
        (type(e).__name__, e.severity)
        for e in sent
        if isinstance(e, (Alert, AlertResolved)) and e.code == OVERFLOW
    ]


# ------------------------------------------------------------------ the overflow alert


@pytest.fixture(scope="module")
def watcher(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrackB, Sent]:
    tb, sent, _ = track_b(tmp_path_factory.mktemp("overflow"), at("09:30"))
    return tb, sent


rounds = st.lists(
    st.tuples(
        st.integers(1, 40),  # minutes since the previous round
        st.integers(0, 6),  # placements
        st.integers(0, 6),  # overflows
        st.booleans(),  # the overflows are waits for the minimum hold
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(plan=rounds)
def test_the_overflow_alert_is_one_per_episode_and_severity_and_is_resolved(
    watcher: tuple[TrackB, Sent], plan: list[tuple[int, int, int, bool]]
) -> None:
    # An episode opens when the share of the last hour's placements that overflowed passes
    # the warning level (or, waits for the minimum hold aside, the critical), raises each
    # severity at most once, and ends with one resolution of its highest severity as soon as
    # the share is back at half the warning level. (The alert was raised again every hour
    # and never resolved.)
    tb, sent = watcher
    tb.overflow.placements.clear()
    tb.alerts.resolution(OVERFLOW)  # the last example's episode, forgotten unsent
    tb.overflow.logged = False
    sent.clear()
    now, window = at("09:30"), []
    raised: list[str] = []  # this episode's severities
    for minutes, placed, overflowed, waits in plan:
        now += minutes * 60 * S
        surge = SlotCandidate("000010", "volume_surge", 19.2, expires_ns=now + 600 * S)
        decisions = [SlotAction("allocate", surge, "x", "acct1", 0)] * placed
        decisions += [SlotAction("overflow", surge, "x", waiting=waits)] * overflowed
        before = len(sent)
        share_now = tb.overflow.watch(decisions, now)
        window = [w for w in window if now - w[0] <= 3600 * S]
        window += [(now, False, False)] * placed + [(now, True, waits)] * overflowed
        share = 100 * sum(o for _, o, _ in window) / (len(window) or 1)
        firm = 100 * sum(o and not w for _, o, w in window) / (len(window) or 1)
        assert share_now == pytest.approx(share)
        events = overflow_events(Sent(sent[before:]))
        if (not raised and share > WARN_AT) or (firm > CRITICAL_AT and "critical" not in raised):
            expected = "critical" if firm > CRITICAL_AT else "warning"
            assert events == [("Alert", expected)]
            raised.append(expected)
        elif raised and share <= WARN_AT / 2:
            assert events == [("AlertResolved", "critical" if "critical" in raised else "warning")]
            raised = []
        else:
            assert events == []


def test_an_overflow_alert_an_earlier_run_left_open_is_resolved(tmp_path: Path) -> None:
    # A restarted Track B takes over the episode an earlier run left open, at its highest
    # severity: its first rate low enough resolves it. (It stayed open for good.)
    tb, sent, url = track_b(tmp_path, at("10:00"))
    earlier = [
        Envelope("track_b", 1, at("09:40"), Alert(severity="warning", code=OVERFLOW, message="")),
        Envelope("track_b", 2, at("09:50"), Alert(severity="critical", code=OVERFLOW, message="")),
        Envelope("track_a", 1, at("09:51"), Alert(severity="critical", code="x", message="")),
    ]
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(earlier))])
    engine.dispose()
    tb._take_over(tb._left_open(), Streams(["acct1"], lambda s, now: 0.0))  # type: ignore[arg-type]
    assert tb.alerts.severity(OVERFLOW) == "critical"
    surge = SlotCandidate("000010", "volume_surge", 19.2, expires_ns=at("10:10"))
    tb.overflow.watch([SlotAction("allocate", surge, "x", "acct1", 0)], at("10:00"))
    assert overflow_events(sent) == [("AlertResolved", "critical")]


def test_the_mornings_hand_over_raises_a_warning_and_no_critical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 09:30: the context sync fills the five slots; ten symbols surge in the 09:30 cycle and
    # wait for the minimum hold (60 s), then five of them take the context's slots. Waits and
    # displaced context candidates are overflows (a warning), not an emergency: no critical,
    # and the warning is resolved once the hour has passed. (A critical went out and stayed.)
    tb, sent, _ = track_b(tmp_path, at("09:30"), slots=5)
    symbols = [f"{i:06d}" for i in range(10, 210, 10)]
    refs = {s: Reference(s, 10**12, 10_000, 1_000_000, 300.0) for s in symbols}
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    before = profile_share(_PROFILE, 20.5)
    for s in symbols:  # 09:20: the usual pace
        engine.on_snapshot(snapshot(s, at("09:20:30"), int(1_000_000 * before)))
    context = [
        SlotCandidate(s, "context_sync", 14.0, 0.4, 1.2, 10**12, at("09:34:50"))
        for s in symbols[:5]
    ]
    surging = int(1_000_000 * (before + 4 * (profile_share(_PROFILE, 30.2) - before)))
    feed = [snapshot(s, at("09:30:10") + n * S, surging) for n, s in enumerate(symbols[5:15])]
    book = SlotBook(["acct1"], 5)
    streams = Streams(["acct1"], lambda s, now: 0.0)
    follow(tb, engine, book, streams, context, at("10:32"), monkeypatch, feed)
    waited = [d for _, d in streams.applied if d.action == "overflow" and d.waiting]
    assert len(waited) == 10 and {d.candidate.symbol for d in waited} == set(symbols[5:15])
    assert waited[0].reason == "every slot held for less than the minimum hold (60 s)"
    assert overflow_events(sent) == [("Alert", "warning"), ("AlertResolved", "warning")]


# ------------------------------------------------------------------ the default placement


def test_a_barred_large_cap_gives_its_slot_to_the_next_largest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default placement is the largest caps that are not barred: the one KIS refuses for
    # the day leaves its slot to the fourth largest. (It stayed empty all day.)
    tb, _, _ = track_b(tmp_path, at("10:00"), slots=3)
    symbols = [f"{i:06d}" for i in range(10, 110, 10)]
    refs = {s: Reference(s, 10**13 - n, 10_000, 1_000_000, 300.0) for n, s in enumerate(symbols)}
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda s, now: 0.0)

    def refuse(n: int) -> None:
        if n == 1:  # 10:00:05: invalid tr_key, not retried today
            why = "SUBSCRIBE ERROR : invalid tr_key"
            refusal = Refusal("acct1", symbols[0], "KRX trades", "OPSP8992", why, at("10:00:05"))
            tb.guard.on_refused(refusal)

    rounds = follow(tb, engine, book, streams, [], at("10:02"), monkeypatch, each_round=refuse)
    assert [held for _, held in rounds[2:]] == [set(symbols[1:4])] * (len(rounds) - 2)
    assert [(hhmmss(t), d.action, d.candidate.symbol) for t, d in streams.applied[3:]] == [
        ("10:00:10", "release", symbols[0]),
        ("10:00:10", "allocate", symbols[3]),
    ]


def test_a_halted_symbol_stays_out_when_its_refusals_bar_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused (30 s) at 10:00:05, seen halted at 10:00:12: out of the slots at 10:00:40 too.
    # (Placed again for a round when the refusal's bar ended, and released as halted.)
    tb, sent, _ = track_b(tmp_path, at("10:00"), slots=3)
    symbols = ["000010", "000020", "000030", "000040"]
    refs = {s: Reference(s, 10**13 - n, 10_000, 1_000_000, 300.0) for n, s in enumerate(symbols)}
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda s, now: 0.0)
    halted = snapshot(symbols[0], at("10:00:12"), 100, halted=True)

    def refuse(n: int) -> None:
        if n == 1:
            why = "SUBSCRIBE INTERNAL ERROR"
            refusal = Refusal("acct1", symbols[0], "KRX trades", "OPSP0007", why, at("10:00:05"))
            tb.guard.on_refused(refusal)

    rounds = follow(
        tb, engine, book, streams, [], at("10:01:30"), monkeypatch, [halted], each_round=refuse
    )
    assert all(symbols[0] not in held for t, held in rounds if t >= at("10:00:10"))
    mine = [(hhmmss(t), d.action) for t, d in streams.applied if d.candidate.symbol == symbols[0]]
    assert mine == [("10:00:00", "allocate"), ("10:00:10", "release")]
    assert tb.guard.barred(at("10:01:30")) == {symbols[0]: "trading halted"}
    assert [e.code for e in sent if isinstance(e, Alert)] == [
        "track_b_registration_refused",
        "track_b_halted",
    ]


# ------------------------------------------------------------------ pins


def test_unpinning_a_symbol_the_default_placement_wants_keeps_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unpinned at 10:00:10, the largest cap stays in its slot under the default placement:
    # no release and placement again in the same evaluation (its registrations dropped and
    # sent again, ticks lost between), no slot event at all.
    tb, _, _ = track_b(tmp_path, at("10:00"), slots=3)
    symbols = ["000010", "000020", "000030"]
    refs = {s: Reference(s, 10**13 - n, 10_000, 1_000_000, 300.0) for n, s in enumerate(symbols)}
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda s, now: 0.0)
    write_pins(tmp_path, {symbols[0]})

    def unpin(n: int) -> None:
        if n == 1:
            write_pins(tmp_path, set())

    follow(tb, engine, book, streams, [], at("10:00:30"), monkeypatch, each_round=unpin)
    assert [(hhmmss(t), d.action, d.candidate.symbol) for t, d in streams.applied] == [
        ("10:00:00", "allocate", symbols[0]),
        ("10:00:00", "allocate", symbols[1]),
        ("10:00:00", "allocate", symbols[2]),
    ]
    held = book.held()[symbols[0]]
    assert (held.candidate.trigger, held.candidate.pinned, held.since_ns) == (
        "market_cap",
        False,
        at("10:00"),
    )


# ------------------------------------------------------------------ 15:00


def test_the_end_of_the_day_shows_every_slot_released(tmp_path: Path) -> None:
    # slots.json and the heartbeat's counters said every slot was held until the next day.
    tb, _, _ = track_b(tmp_path, at("15:00"), slots=3)
    book = SlotBook(["acct1"], 3)
    for n, s in enumerate(["000010", "000020"]):
        assert book.restore(Holding("acct1", n, SlotCandidate(s, "market_cap", 2.3), at("09:30")))
    streams = Streams(["acct1"], lambda s, now: 0.0)
    assert isinstance(tb.clock, ManualClock)
    streams.clock = tb.clock
    tb._show(book, streams, {"000030": "every slot pinned"})  # type: ignore[arg-type]
    asyncio.run(end_at(tb, book, streams, CLOSING))
    assert [d.reason for _, d in streams.applied] == ["Track B ends KRX's feeds at 15:00:00"] * 2
    shown = json.loads(slots_path(tmp_path).read_text())
    assert (shown["slots"], shown["unplaced_pins"]) == ([], [])
    assert (tb.counters["slots"], tb.counters["slots.acct1"], tb.counters["pins_unplaced"]) == (
        0,
        0,
        0,
    )
    assert msgspec.json.decode(slots_path(tmp_path).read_bytes())["at_ns"] == at("15:00")


def test_slots_the_disk_refuses_leave_track_b_running_and_are_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``slots.json`` is a display: a write that fails (a full disk) is counted and logged
    once an episode, and its part-written file removed; it ended Track B, streams and all."""
    tb, _, _ = track_b(tmp_path, at("10:00"), slots=3)
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda s, now: 0.0)
    assert isinstance(tb.clock, ManualClock)
    streams.clock = tb.clock
    shown = slots_path(tmp_path)
    shown.mkdir(parents=True)  # a folder where the file goes: no file can replace it

    def said() -> list[str]:
        return [r.levelname for r in caplog.records if str(shown) in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="workers.track_b.slotting"):
        tb._show(book, streams, {})  # type: ignore[arg-type]
        tb._show(book, streams, {})  # type: ignore[arg-type]
        assert tb.counters["slots_unwritten"] == 2 and said() == ["WARNING"]
        assert [p.name for p in shown.parent.iterdir()] == ["slots.json"]  # no part left
        shown.rmdir()
        tb._show(book, streams, {})  # type: ignore[arg-type]
    assert json.loads(shown.read_text())["slots"] == []
    assert said() == ["WARNING", "INFO"]
