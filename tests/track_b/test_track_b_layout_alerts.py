"""Frames of an unknown layout: one alert per TR and width, across accounts and restarts.

In process, through the accounts' listeners (`AccountFeed`): the refusals of two accounts
raise one ``track_b_layout_unknown`` per TR and width; a frame of the TR read in a known layout
resolves it only once that width has been quiet for ``refused_quiet_s``; an earlier run's open
alert is taken over (not raised again, not resolved as an account no longer configured).
"""

from __future__ import annotations

import asyncio

from bus.events import Alert, AlertResolved, Event
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock
from observer.errors import KisLayoutUnknown
from observer.kis.frames import DroppedFrame
from observer.kis.realtime import RealtimeEvents
from tests.kis.test_kis_parse import TRADE
from tests.track_b.test_account_alerts_resolved import T0, _collector
from workers.track_b.layouts import LAYOUT_UNKNOWN

_NS = 1_000_000_000
QUIET_S = 600.0


def _unknown(tr_id: str, fields: int, count: int, at_ns: int) -> DroppedFrame:
    text = f"0|{tr_id}|{count:03d}|" + "^".join(["1"] * fields)
    exc = KisLayoutUnknown(tr_id, fields // count if fields % count == 0 else None, fields, count)
    return DroppedFrame.unknown(exc, text.encode(), at_ns)


def _codes(events: list[Event], kind: type[Alert] | type[AlertResolved]) -> list[str]:
    return [e.subject for e in events if isinstance(e, kind) and e.code == LAYOUT_UNKNOWN]


def test_one_alert_per_tr_and_width_resolved_once_that_width_is_quiet() -> None:
    events: list[Event] = []
    clock = ManualClock(T0)
    collector = _collector(events, asyncio.Event(), clock, refused_quiet_s=QUIET_S)
    one, two = collector.feeds["acct1"], collector.feeds["acct2"]
    for feed in (one, two, one):  # the same width on two accounts, three frames
        feed.on_dropped_frame(_unknown("H0STCNT0", 49 * 2, 2, clock.now_ns()))
    one.on_dropped_frame(_unknown("H0STASP0", 65, 1, clock.now_ns()))
    one.on_dropped_frame(_unknown("H0STCNT0", 47, 2, clock.now_ns()))  # no whole records
    assert sorted(_codes(events, Alert)) == ["H0STASP0/65", "H0STCNT0/49", "H0STCNT0/uneven"]
    assert collector.layouts.counts["H0STCNT0", "49"] == 3
    assert collector.rejections.counts["acct1", "unknown_layout"] == 4
    # Not the per-account refusal episode: the layout's alert says it.
    assert not [e for e in events if isinstance(e, Alert) and e.code != LAYOUT_UNKNOWN]
    read = RealtimeEvents("H0STCNT0", text=f"0|H0STCNT0|001|{TRADE}")
    clock.advance(QUIET_S - 1)
    one.on_frame(read, clock.now_ns())
    assert _codes(events, AlertResolved) == []  # not quiet long enough
    clock.advance(1)
    one.on_frame(read, clock.now_ns())
    assert sorted(_codes(events, AlertResolved)) == ["H0STCNT0/49", "H0STCNT0/uneven"]
    assert collector.layouts.open.keys() == {"H0STASP0/65"}  # no book read since


def test_an_earlier_runs_alert_is_taken_over_not_raised_again() -> None:
    events: list[Event] = []
    clock = ManualClock(T0)
    collector = _collector(events, asyncio.Event(), clock, refused_quiet_s=QUIET_S)
    earlier = Notice("track_b:1", "alert", 1, "error", LAYOUT_UNKNOWN, "H0STCNT0/49", "earlier")
    collector.taken_over(collector.alerts.take_over([earlier]))
    assert _codes(events, AlertResolved) == []  # its subject names no account: still open
    collector.feeds["acct1"].on_dropped_frame(_unknown("H0STCNT0", 49, 1, clock.now_ns()))
    assert _codes(events, Alert) == []  # open already
    clock.advance(QUIET_S)
    read = RealtimeEvents("H0STCNT0", text="")
    collector.feeds["acct2"].on_frame(read, clock.now_ns())
    assert _codes(events, AlertResolved) == ["H0STCNT0/49"]
