"""Track B's account alerts are about their account, and resolved by an `AlertResolved`.

An account that streams again ends its own ``track_b_account_down`` (or
``track_b_stream_stale``), as `observer.alerts` reads it: not another account's, and not
with an info alert of the same code, which nothing counts as the end of the condition.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bus.events import Alert, AlertResolved, Event
from observer.alerts import alert_states
from observer.clock import ManualClock
from observer.db.queries import AlertRecords
from observer.kis.realtime import DecodedFrame
from workers.track_b.collect import ACCOUNT_DOWN, STREAM_STALE, TRADE, Collector

_NS = 1_000_000_000
T0 = 1_763_600_000 * _NS


class Stream:
    """An account's session as the collector sees it: confirmed, with registrations held."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.registered = {("H0STCNT0", "005930")}
        self.wanted: set[Any] = set()
        self.confirmed = True
        self.restarts = 0
        self.stop = stop

    async def restart(self) -> None:
        self.restarts += 1
        self.stop.set()  # the stale watch's work is done: it returns


class Account:
    def __init__(self, alias: str, stop: asyncio.Event) -> None:
        self.alias = alias
        self.stop = stop

    def stream(self, *args: object, **kwargs: object) -> Stream:
        return Stream(self.stop)


class JumpClock(ManualClock):
    """A manual clock whose sleepers move it on themselves: a loop's rounds, one per sleep."""

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def _collector(
    events: list[Event], stop: asyncio.Event, clock: ManualClock, **options: Any
) -> Collector:
    accounts = [Account("acct1", stop), Account("acct2", stop)]
    return Collector(accounts, clock, events.append, **options)  # type: ignore[arg-type]


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
    for alias in ("acct1", "acct2"):
        collector.heard_ns[alias] = T0
        collector.heard_wall[alias] = time.monotonic() - 3600.0  # quiet in wall time too
    collector.streams["acct2"].confirmed = False  # not up yet: never stale
    asyncio.run(collector._watch_stale(stop))  # until acct1's restart
    (stale,) = [e for e in events if isinstance(e, Alert)]
    assert (stale.severity, stale.code, stale.subject) == ("warning", STREAM_STALE, "acct1")
    collector._on_frame("acct1", DecodedFrame(TRADE), clock.now_ns())  # data flows again
    (resolved,) = [e for e in events if isinstance(e, AlertResolved)]
    assert (resolved.severity, resolved.code, resolved.subject) == (
        "warning",
        STREAM_STALE,
        "acct1",
    )
    assert _states(events) == {(STREAM_STALE, "acct1"): "resolved"}
    assert not [e for e in events if isinstance(e, Alert) and e.severity == "info"]
