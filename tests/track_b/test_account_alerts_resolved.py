"""Track B's account alerts are about their account, and resolved by an `AlertResolved`.

An account that streams again ends its own ``track_b_account_down`` (or
``track_b_stream_stale``), as `observer.alerts.states` reads it: not another account's, and not
with an info alert of the same code, which nothing counts as the end of the condition.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved, Event, Severity
from observer.alerts.states import Notice, alert_states
from observer.calendar.clock import ManualClock
from observer.db.engine import make_engine
from observer.db.queries import AlertRecords
from observer.kis.feeds import Feed
from observer.kis.frames import FrameGuard, FrameLimits
from observer.kis.realtime import TRADE_TRS, RealtimeEvents
from observer.kis.record_checks import OUTSIDE_LIMITS
from observer.kis.stream import StreamListener, StreamSettings
from observer.writer.store import Store
from tests.track_b.test_slot_guard import tick
from tests.track_b.test_track_b_resume import track_b
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.lag import FEED_LAGGING
from workers.track_b.outages import ACCOUNT_DOWN
from workers.track_b.refused import DATA_UNDECODED
from workers.track_b.rejections import BAD_FRAMES, DATA_REJECTED
from workers.track_b.stale import STREAM_STALE

_NS = 1_000_000_000
T0 = 1_763_600_000 * _NS

TRADE = TRADE_TRS["KRX"]  # the frames are KRX's trades


class Stream:
    """An account's session as the collector sees it: confirmed, with registrations held."""

    def __init__(self, stop: asyncio.Event, listener: StreamListener) -> None:
        self.registered = {Feed("trades", "KRX", "005930")}
        self.wanted: set[Any] = set()
        self.confirmed = True
        self.restarts = 0
        self.stop = stop
        self.framing = FrameGuard("ws://fake", FrameLimits(), listener)

    def holds(self, feed: Feed) -> bool:
        return True  # what it asked for is checked in tests/test_track_b_rejected.py

    async def restart(self) -> None:
        self.restarts += 1
        self.stop.set()  # the stale watch's work is done: it returns

    async def unsubscribe(self, feed: Feed) -> None:
        self.registered.discard(feed)


class Account:
    def __init__(self, alias: str, stop: asyncio.Event) -> None:
        self.alias = alias
        self.stop = stop

    def stream(
        self, listener: StreamListener, settings: StreamSettings, session_of: object = None
    ) -> Stream:
        return Stream(self.stop, listener)


class JumpClock(ManualClock):
    """A manual clock whose sleepers move it on themselves: a loop's rounds, one per sleep."""

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def _collector(
    events: list[Event], stop: asyncio.Event, clock: ManualClock, **options: Any
) -> Collector:
    accounts = [Account("acct1", stop), Account("acct2", stop)]
    settings = CollectorSettings(**options)
    return Collector(accounts, clock, events.append, settings)  # type: ignore[arg-type]


SEVERITY: dict[str, Severity] = {
    ACCOUNT_DOWN: "critical",
    STREAM_STALE: "warning",
    FEED_LAGGING: "warning",
    DATA_UNDECODED: "error",
    DATA_REJECTED: "error",
    BAD_FRAMES: "error",
}


def _earlier(*conditions: tuple[str, str]) -> list[Notice]:
    """An earlier run's open account alerts, (code, subject) each, as a start reads them."""
    return [
        Notice(f"track_b:{n}", "alert", n, SEVERITY[code], code, subject, "earlier")
        for n, (code, subject) in enumerate(conditions, 1)
    ]


def _take_over(collector: Collector, notices: list[Notice]) -> None:
    """What a restarted Track B does with them (`TrackB._take_over`)."""
    collector.taken_over(collector.alerts.take_over(notices))


def _subjects(notices: list[Notice]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for notice in notices:
        found.setdefault(notice.code, set()).add(notice.subject)
    return found


def _states(events: list[Event]) -> dict[tuple[str, str], str]:
    """Each alert's state as `observer alerts`, the metrics and the notifier compute it."""
    rows: dict[type, list[Any]] = {Alert: [], AlertResolved: []}
    for seq, e in enumerate(events, 1):  # seq: the envelope's, as published
        if isinstance(e, Alert | AlertResolved):
            rows[type(e)].append(
                ("track_b", seq, T0 + seq, e.severity, e.code, e.subject, e.message)
            )
    records = AlertRecords(rows[Alert], rows[AlertResolved], [], [])
    return {(s.notice.code, s.notice.subject): s.state for s in alert_states(records)}


def test_an_account_that_streams_again_resolves_its_own_outage_alone() -> None:
    events: list[Event] = []
    collector = _collector(events, asyncio.Event(), ManualClock(T0))
    collector._down("acct1", "reconnect budget spent", T0 + 3600 * _NS)
    collector._down("acct2", "no approval key: EGW00103", T0 + 60 * _NS)
    collector._on_confirmed("acct1")  # KIS confirmed acct1's new session
    alerts = [e for e in events if isinstance(e, Alert | AlertResolved)]
    assert [(type(e).__name__, e.severity, e.code, e.subject) for e in alerts] == [
        ("Alert", "critical", ACCOUNT_DOWN, "acct1"),
        ("Alert", "critical", ACCOUNT_DOWN, "acct2"),
        ("AlertResolved", "critical", ACCOUNT_DOWN, "acct1"),
    ]
    assert alerts[2].message == "account acct1: streams again"
    assert _states(events) == {(ACCOUNT_DOWN, "acct1"): "resolved", (ACCOUNT_DOWN, "acct2"): "open"}
    collector._on_confirmed("acct1")  # confirmed again: nothing more to resolve
    assert len([e for e in events if isinstance(e, AlertResolved)]) == 1


def test_a_stale_session_that_streams_again_resolves_its_warning() -> None:
    events: list[Event] = []
    stop = asyncio.Event()
    clock = JumpClock(T0)
    collector = _collector(events, stop, clock, stale_after_s=120)
    watch = collector.stale_watch
    for alias in ("acct1", "acct2"):
        watch.heard_ns[alias] = T0
        watch.heard_wall[alias] = time.monotonic() - 3600.0  # quiet in wall time too
    collector.streams["acct2"].confirmed = False  # not up yet: never stale
    asyncio.run(collector.stale_watch.watch(collector.streams, stop))  # until acct1's restart
    (stale,) = [e for e in events if isinstance(e, Alert)]
    assert (stale.severity, stale.code, stale.subject) == ("warning", STREAM_STALE, "acct1")
    collector.feeds["acct1"].on_frame(RealtimeEvents(TRADE), clock.now_ns())  # data flows again
    (resolved,) = [e for e in events if isinstance(e, AlertResolved)]
    assert (resolved.severity, resolved.code, resolved.subject) == (
        "warning",
        STREAM_STALE,
        "acct1",
    )
    assert _states(events) == {(STREAM_STALE, "acct1"): "resolved"}
    assert not [e for e in events if isinstance(e, Alert) and e.severity == "info"]


def test_a_restarted_track_b_resolves_the_alerts_an_earlier_run_left_open(tmp_path: Path) -> None:
    """Track B restarted during an outage: the new run knew nothing of the open alert, so
    the account's next session resolved nothing and the critical alert stayed open."""
    tb, _, url = track_b(tmp_path, T0 + 60 * _NS)
    earlier: list[Alert | AlertResolved] = [
        Alert(severity="critical", code=ACCOUNT_DOWN, subject="acct1", message="down"),
        Alert(severity="warning", code=STREAM_STALE, subject="acct2", message="stale"),
        Alert(severity="warning", code=STREAM_STALE, subject="acct1", message="stale"),
        AlertResolved(severity="warning", code=STREAM_STALE, subject="acct1", message="ok"),
        Alert(severity="critical", code=ACCOUNT_DOWN, subject="acct3", message="not ours"),
        Alert(severity="warning", code=FEED_LAGGING, subject="acct2", message="late"),
        Alert(severity="error", code=DATA_UNDECODED, subject="acct1", message="refused"),
    ]
    envelopes = [Envelope("track_b", n, T0 + n, e) for n, e in enumerate(earlier[:4], 1)]
    envelopes.append(Envelope("track_a", 1, T0 + 5, earlier[4]))
    envelopes.append(Envelope("track_b", 5, T0 + 6, earlier[5]))
    envelopes.append(Envelope("track_b", 6, T0 + 7, earlier[6]))
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(envelopes))])
    with engine.connect() as conn:  # every one stored, track_a's too
        assert conn.exec_driver_sql("select count(*) from alerts").scalar() == 6
    engine.dispose()
    left = tb._left_open()
    assert _subjects(left) == {
        ACCOUNT_DOWN: {"acct1"},
        STREAM_STALE: {"acct2"},
        FEED_LAGGING: {"acct2"},
        DATA_UNDECODED: {"acct1"},
    }
    events: list[Event] = [*earlier[:2], *earlier[5:]]  # the earlier run's, as published
    clock = ManualClock(T0)
    collector = _collector(events, asyncio.Event(), clock, lag_alert_s=10)
    _take_over(collector, left)
    assert collector.healthy() == {"acct1", "acct2"}  # healthy until they fail here
    assert not collector.stale_watch.stale  # a stuck session is still restarted once here
    collector._down("acct1", "reconnect budget spent", T0 + 3600 * _NS)  # still down
    assert not [e for e in events[4:] if isinstance(e, Alert)]  # the earlier alert stands
    collector._on_confirmed("acct1")
    late = RealtimeEvents(TRADE, ticks=[tick("005930", T0 - 30 * _NS, 70000)])
    collector.feeds["acct2"].on_frame(late, T0)  # still 30 s behind: its lag alert stands
    assert not [e for e in events[4:] if isinstance(e, Alert)]
    assert _states(events)[FEED_LAGGING, "acct2"] == "open"
    for at in (T0, T0 + 5 * _NS, T0 + 10 * _NS):  # on time for 10 s: the limit
        assert _states(events)[FEED_LAGGING, "acct2"] == "open"
        collector.feeds["acct2"].on_frame(
            RealtimeEvents(TRADE, ticks=[tick("005930", at, 70000)]), at
        )
    # acct1's data read without a refusal for 10 minutes: its refused-data alert ends.
    assert _states(events)[DATA_UNDECODED, "acct1"] == "open"
    clock.advance(600)
    at = clock.now_ns()
    collector.feeds["acct1"].on_frame(RealtimeEvents(TRADE, ticks=[tick("005930", at, 70000)]), at)
    assert _states(events) == {
        (ACCOUNT_DOWN, "acct1"): "resolved",
        (STREAM_STALE, "acct2"): "resolved",
        (FEED_LAGGING, "acct2"): "resolved",
        (DATA_UNDECODED, "acct1"): "resolved",
    }


def test_a_stale_alert_taken_over_still_lets_a_stuck_session_restart_once() -> None:
    events: list[Event] = []
    stop = asyncio.Event()
    clock = JumpClock(T0)
    collector = _collector(events, stop, clock, stale_after_s=120)
    _take_over(collector, _earlier((STREAM_STALE, "acct1")))
    for alias in ("acct1", "acct2"):
        collector.stale_watch.heard_ns[alias] = T0
        collector.stale_watch.heard_wall[alias] = time.monotonic() - 3600.0
    collector.streams["acct2"].confirmed = False
    asyncio.run(collector.stale_watch.watch(collector.streams, stop))  # until acct1's restart
    assert collector.streams["acct1"].restarts == 1  # type: ignore[attr-defined]
    assert not [e for e in events if isinstance(e, Alert)]  # the earlier run's alert stands
    collector.feeds["acct1"].on_frame(RealtimeEvents(TRADE), clock.now_ns())
    assert [(type(e).__name__, e.code) for e in events if isinstance(e, Alert | AlertResolved)] == [
        ("AlertResolved", STREAM_STALE)
    ]
    assert len(events) == 1


def test_a_feed_catching_up_is_one_lag_alert_resolved_once_it_stays_on_time() -> None:
    """A feed catching up interleaves late frames with current ones (each symbol's backlog
    in turn): judged frame by frame, the alert was raised and resolved 17 times in a minute."""
    events: list[Event] = []
    collector = _collector(events, asyncio.Event(), ManualClock(T0), lag_alert_s=10)

    def frame(received: int, lag_s: int) -> None:
        late = RealtimeEvents(TRADE, ticks=[tick("005930", received - lag_s * _NS, 70000)])
        collector.feeds["acct1"].on_frame(late, received)

    frame(T0, 8)  # behind, within the limit
    frame(T0 + _NS, 30)
    for n in range(2, 40):  # the catch-up: every other frame two minutes late
        frame(T0 + n * _NS, 120 if n % 2 else 0)
    frame(T0 + 40 * _NS, 0)
    frame(T0 + 49 * _NS, 0)  # on time for 9 s
    assert [type(e).__name__ for e in events if isinstance(e, Alert | AlertResolved)] == ["Alert"]
    frame(T0 + 50 * _NS, 0)  # for 10 s: the limit
    assert _states(events) == {(FEED_LAGGING, "acct1"): "resolved"}
    assert collector.lag.lag_ns["acct1"] == 0


def test_an_account_no_longer_configured_has_its_alerts_resolved_at_once() -> None:
    """acct3 was down, stale and behind when it left the configuration: nothing streams it
    any more, so its alerts stayed open for good."""
    events: list[Event] = [
        Alert(severity="critical", code=ACCOUNT_DOWN, subject="acct3", message="down"),
        Alert(severity="warning", code=STREAM_STALE, subject="acct3", message="stale"),
        Alert(severity="warning", code=FEED_LAGGING, subject="acct3", message="late"),
        Alert(severity="critical", code=ACCOUNT_DOWN, subject="acct1", message="down"),
    ]
    collector = _collector(events, asyncio.Event(), ManualClock(T0), lag_alert_s=10)
    _take_over(
        collector,
        _earlier(
            (ACCOUNT_DOWN, "acct1"),
            (ACCOUNT_DOWN, "acct3"),
            (STREAM_STALE, "acct3"),
            (FEED_LAGGING, "acct3"),
        ),
    )
    assert _states(events) == {
        (ACCOUNT_DOWN, "acct3"): "resolved",
        (STREAM_STALE, "acct3"): "resolved",
        (FEED_LAGGING, "acct3"): "resolved",
        (ACCOUNT_DOWN, "acct1"): "open",  # configured: its next session resolves it
    }
    assert {e.severity for e in events[4:]} == {"critical", "warning"}


def test_the_rejected_data_and_bad_frames_alerts_an_earlier_run_left_open_are_taken_over(
    tmp_path: Path,
) -> None:
    """Per account, kind and symbol, and per account: no second alert for them here; a
    configured account's are resolved by the same rules, another's at once."""
    tb, _, url = track_b(tmp_path, T0 + 60 * _NS)
    earlier = [
        Alert(severity="error", code=code, subject=subject, message="earlier")
        for code, subject in (
            (DATA_REJECTED, "acct1/outside_limits/005930"),
            (DATA_REJECTED, "acct3/unregistered/999999"),
            (BAD_FRAMES, "acct1"),
            (BAD_FRAMES, "acct3"),
        )
    ]
    envelopes = [Envelope("track_b", n, T0 + n, e) for n, e in enumerate(earlier, 1)]
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(envelopes))])
    engine.dispose()
    left = tb._left_open()
    assert _subjects(left) == {
        DATA_REJECTED: {"acct1/outside_limits/005930", "acct3/unregistered/999999"},
        BAD_FRAMES: {"acct1", "acct3"},
    }
    events: list[Event] = list(earlier)
    clock = ManualClock(T0)
    collector = _collector(events, asyncio.Event(), clock)
    _take_over(collector, left)
    assert _states(events) == {
        (DATA_REJECTED, "acct1/outside_limits/005930"): "open",
        (DATA_REJECTED, "acct3/unregistered/999999"): "resolved",  # not configured here
        (BAD_FRAMES, "acct1"): "open",
        (BAD_FRAMES, "acct3"): "resolved",
    }
    fault = (OUTSIDE_LIMITS, "price 200,000 outside 50,000-90,000")
    collector.rejections.reject("acct1", fault, RealtimeEvents(TRADE), "005930", T0)
    assert not [e for e in events[len(earlier) :] if isinstance(e, Alert)]  # it stands for it
    framing = collector.streams["acct1"].framing
    assert framing.listener.flooding()  # the episode goes on: a burst reconnects no second time
    clock.advance(600)
    at = clock.now_ns()
    collector.feeds["acct1"].on_frame(RealtimeEvents(TRADE, ticks=[tick("005930", at, 70000)]), at)
    framing.read(at)  # a frame read a window after the last bad one: the episode is over
    assert set(_states(events).values()) == {"resolved"}
