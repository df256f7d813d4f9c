"""Track B's alerts that last a session at most are resolved: at their end, or at 15:00.

Refusals, closed slots, a restart and an overflow episode were alerted and never resolved
(or stayed open overnight); a degraded start stayed open after triggers took over. Each
test reads what is open as ``observer alerts --open`` does: the events stored by the
writer's store, their states by `observer.alerts.states`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved
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
    snapshot,
    track_b,
)
from workers.track_b.pins import write_pins
from workers.track_b.session_alerts import OVERFLOW, SESSION_CODES
from workers.track_b.slots import Room, SlotAction, SlotBook, SlotCandidate
from workers.track_b.triggers import Reference, TriggerEngine, profile_share
from workers.track_b.worker import TrackB

DAY = 24 * 3600 * S


def stored(url: str, events: list[tuple[str, int, Any]], first_seq: int = 1) -> None:
    """``(source, produced_ns, event)`` through the writer's store, seq per source."""
    seqs: dict[str, int] = {}
    envelopes = []
    for source, produced, event in events:
        seqs[source] = seqs.get(source, first_seq - 1) + 1
        envelopes.append(Envelope(source, seqs[source], produced, event))
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(envelopes))])
    engine.dispose()


def publish(url: str, tb: TrackB, sent: Sent, first_seq: int = 1) -> None:
    """What the worker sent, stored as its envelopes would be (one instant apart)."""
    now = tb.clock.now_ns()
    stored(url, [("track_b", now + first_seq + n, e) for n, e in enumerate(sent)], first_seq)


def open_codes(tb: TrackB) -> list[tuple[str, str]]:
    """The overflow and session alerts open as stored."""
    codes = (OVERFLOW, *SESSION_CODES)
    return [(n.code, n.severity) for n in tb._left_open() if n.code in codes]


def test_the_sessions_end_resolves_what_is_still_open(tmp_path: Path) -> None:
    tb, sent, url = track_b(tmp_path, at("14:59:50"), slots=5)
    tb._alert("warning", "track_b_registration_refused", "000010 refused", {"symbol": "000010"})
    tb._alert("error", "track_b_registration_refused", "000020 refused", {"symbol": "000020"})
    tb._alert("error", "track_b_registration_limit", "slot 4 closed", {})
    tb._alert("warning", "track_b_restarted", "took back 5 slots", {})
    tb._alert("info", "track_b_halted", "000030 halted", {"symbol": "000030"})
    surge = SlotCandidate("000040", "volume_surge", 19.2, expires_ns=at("15:10"))
    tb.overflow.watch([SlotAction("overflow", surge, "x")] * 3, at("14:59:50"))  # a late episode
    publish(url, tb, sent)
    assert sorted(open_codes(tb)) == [
        (OVERFLOW, "critical"),
        ("track_b_registration_limit", "error"),
        ("track_b_registration_refused", "error"),
        ("track_b_registration_refused", "warning"),
        ("track_b_restarted", "warning"),
    ]
    sent.clear()
    streams = Streams(["acct1"], lambda s, now: 0.0)
    streams.clock = tb.clock  # type: ignore[assignment]
    ending = end_at(tb, SlotBook(["acct1"], 5), streams, CLOSING)
    asyncio.run(ending)
    assert sorted((e.code, e.severity) for e in sent if isinstance(e, AlertResolved)) == [
        (OVERFLOW, "critical"),
        ("track_b_registration_limit", "error"),
        ("track_b_registration_refused", "error"),  # the highest raised: routed like the error
        ("track_b_restarted", "warning"),
    ]
    publish(url, tb, sent, first_seq=7)
    assert open_codes(tb) == []
    sent.clear()
    ending = end_at(tb, SlotBook(["acct1"], 5), streams, CLOSING)
    asyncio.run(ending)
    assert not [e for e in sent if isinstance(e, AlertResolved)]  # nothing left to resolve


@pytest.mark.parametrize("pinned", [False, True])
def test_a_degraded_start_is_resolved_once_a_trigger_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pinned: bool
) -> None:
    # No Track A snapshot of the opening: slots fill by market cap (a warning) until 09:30:10,
    # when one symbol surges 4x: its trigger places, and the degraded start is over. An
    # operator's pin is no trigger: it resolved the warning at the first evaluation.
    tb, sent, url = track_b(tmp_path, at("09:29:50"), slots=3)
    if pinned:
        write_pins(tmp_path, {"000010"})
    symbols = [f"{i:06d}" for i in range(10, 60, 10)]
    refs = {s: Reference(s, 10**12 - n, 10_000, 1_000_000, 300.0) for n, s in enumerate(symbols)}
    engine = TriggerEngine(tb.config, refs, NINE, 600.0)
    context = tb._sync(NINE.replace(minute=30), engine, Room(3))
    assert context == [] and [e.code for e in sent] == ["track_b_degraded"]
    profile = tb.config.volume_profile
    before = profile_share(profile, 20.5)
    usual = [snapshot(s, at("09:20:30"), int(1_000_000 * before)) for s in symbols]
    for shot in usual:
        engine.on_snapshot(shot)
    surging = int(1_000_000 * (before + 4 * (profile_share(profile, 30.2) - before)))
    feed = [snapshot(symbols[4], at("09:30:10"), surging)]
    book = SlotBook(["acct1"], 3)
    streams = Streams(["acct1"], lambda s, now: 0.0)
    tb.clock.advance(10)  # type: ignore[attr-defined]
    resolutions: dict[int, int] = {}  # the event's place in `sent` -> its round's time

    def each_round(n: int) -> None:  # when each resolution went out
        for place, e in enumerate(sent):
            if isinstance(e, AlertResolved):
                resolutions.setdefault(place, tb.clock.now_ns())

    follow(tb, engine, book, streams, context, at("09:32"), monkeypatch, feed, each_round)
    placed = [(d.action, d.candidate.trigger) for _, d in streams.applied]
    assert ("replace", "volume_surge") in placed, placed
    resolved = [(e.code, e.severity) for e in sent if isinstance(e, AlertResolved)]
    assert resolved == [("track_b_degraded", "warning")]
    assert list(resolutions.values()) == [at("09:30:10")]  # the surge's round, not before
    publish(url, tb, sent)
    assert open_codes(tb) == [(OVERFLOW, "warning")]  # the surge waited: the morning's episode


def test_a_restart_resolves_an_earlier_days_notices_and_keeps_todays(tmp_path: Path) -> None:
    tb, sent, url = track_b(tmp_path, at("10:00"), slots=5)
    refused = Alert(severity="error", code="track_b_registration_refused", message="000010 refused")
    degraded = Alert(severity="warning", code="track_b_degraded", message="no context")
    stored(
        url,
        [
            ("track_b", at("14:00") - DAY, refused),  # yesterday's, left open by a crash
            ("track_b", at("14:10") - DAY, Alert(severity="critical", code=OVERFLOW, message="")),
            ("track_b", at("09:40"), degraded),
            (
                "track_a",
                at("09:41"),
                Alert(severity="error", code="track_b_registration_refused", message=""),
            ),
        ],
    )
    tb._take_over(tb._left_open(), Streams(["acct1"], lambda s, now: 0.0))  # type: ignore[arg-type]
    resolved = [(e.code, e.severity) for e in sent if isinstance(e, AlertResolved)]
    assert resolved == [("track_b_registration_refused", "error")]  # at once: that session is over
    # The overflow: resolved by the first low share, or at 15:00; today's notice: this run's.
    assert tb.alerts.conditions() == {
        (OVERFLOW, ""): "critical",
        ("track_b_degraded", ""): "warning",
    }
    sent.clear()
    tb.notices.end("the session ended")
    assert [(e.code, e.severity) for e in sent] == [("track_b_degraded", "warning")]
