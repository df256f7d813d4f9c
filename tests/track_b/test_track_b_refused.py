"""Data the decoder refuses is alerted, not only counted: one error an episode per account.

Before, a refused record or frame was logged and counted (``dropped_records``,
``dropped_frames``) and nothing more: a changed KIS format that refused every order book, or
damaged frames losing ten trades each, reached no operator.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, AlertResolved, Event, GapDetected
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock
from tests.support import SimThread, until
from tests.track_b.conftest import MARKET, STOCKS, TEN
from tests.track_b.test_collect import settings_for, streaming_three
from workers.track_b.gaps import SilenceRule
from workers.track_b.refused import DATA_UNDECODED, RefusedData

_NS = 1_000_000_000


def _alerts(events: list[Event]) -> list[Alert | AlertResolved]:
    return [e for e in events if isinstance(e, Alert | AlertResolved)]


def test_an_episode_is_one_alert_resolved_after_quiet_data_with_its_counts() -> None:
    clock = ManualClock(0)
    events: list[Event] = []
    refused = RefusedData(clock, AlertBook(events.append), quiet_s=600)
    refused.on_records("acct1", "H0STASP0", 3, "ASKP1: 'x' is not an integer")
    clock.advance(1)
    refused.on_frame("acct1", "record count 'x01' is not a number")
    refused.on_records("acct2", "H0STCNT0", 1, "ACML_TR_PBMN: '1e3' is not an integer")
    clock.advance(599)
    refused.on_data("acct1", clock.now_ns())  # 599 s after its last refusal: still open
    assert [(type(e).__name__, e.subject) for e in _alerts(events)] == [
        ("Alert", "acct1"),
        ("Alert", "acct2"),
    ]
    first = events[0]
    assert isinstance(first, Alert)
    assert (first.code, first.severity, first.context) == (
        DATA_UNDECODED,
        "error",
        {"account": "acct1"},
    )
    assert "3 H0STASP0 records: ASKP1: 'x' is not an integer" in first.message
    clock.advance(1)
    refused.on_data("acct1", clock.now_ns())
    resolved = events[-1]
    assert isinstance(resolved, AlertResolved)
    assert (resolved.code, resolved.severity, resolved.subject) == (
        DATA_UNDECODED,
        "error",
        "acct1",
    )
    assert "no data refused for 600s (3 records and 1 frames refused" in resolved.message
    assert refused.records == {"acct1": 3, "acct2": 1}  # the heartbeat's, since the start
    refused.on_records("acct1", "H0STCNT0", 1, "again")  # a new episode: a new alert
    assert [type(e).__name__ for e in _alerts(events)] == [
        "Alert",
        "Alert",
        "AlertResolved",
        "Alert",
    ]


def test_an_alert_taken_over_is_resolved_by_quiet_data_and_raises_no_second() -> None:
    clock = ManualClock(0)
    events: list[Event] = []
    book = AlertBook(events.append)
    refused = RefusedData(clock, book, quiet_s=60)
    book.take_over([Notice("track_b:3", "alert", 0, "error", DATA_UNDECODED, "acct1", "earlier")])
    refused.taken_over(["acct1"])
    refused.on_records("acct1", "H0STCNT0", 2, "bad")  # the open alert stands for it
    assert events == []
    clock.advance(60)
    refused.on_data("acct1", clock.now_ns())
    [resolved] = events
    assert isinstance(resolved, AlertResolved) and resolved.subject == "acct1"
    assert "(2 records and 0 frames refused in the episode)" in resolved.message


@given(
    st.lists(
        st.tuples(st.sampled_from(["record", "frame", "data"]), st.integers(0, 900)),
        max_size=40,
    )
)
def test_alerts_and_resolutions_alternate_and_resolve_only_after_the_quiet(
    steps: list[tuple[str, int]],
) -> None:
    """Any run of refusals and data: the alert, then its resolution, in turn; a resolution
    exactly at the first data read ``quiet_s`` or more after the episode's last refusal."""
    quiet_s = 300
    clock = ManualClock(0)
    events: list[Event] = []
    refused = RefusedData(clock, AlertBook(events.append), quiet_s=quiet_s)
    last_refusal: int | None = None  # while an episode is open
    for kind, seconds in steps:
        clock.advance(seconds)
        now = clock.now_ns()
        before = len(events)
        if kind == "data":
            refused.on_data("acct1", now)
            due = last_refusal is not None and now - last_refusal >= quiet_s * _NS
            assert len(events) == before + due
            if due:
                assert isinstance(events[-1], AlertResolved)
                last_refusal = None
            continue
        if kind == "record":
            refused.on_records("acct1", "H0STCNT0", 1, "bad")
        else:
            refused.on_frame("acct1", "bad")
        assert len(events) == before + (last_refusal is None)
        last_refusal = now
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Alert", "AlertResolved"] * (len(kinds) // 2) + ["Alert"] * (len(kinds) % 2)


def test_garbled_records_and_frames_from_kis_raise_one_alert_resolved_when_data_reads(
    tmp_path: Path,
) -> None:
    """The simulator sends three trade records, then two frames, the client cannot read. The
    account's counters have them, a refused trade of a streamed symbol is a gap, and one
    error alert covers them all; the data read cleanly afterwards resolves it."""
    sim = SimThread(MARKET, TEN, speed=30)
    settings = settings_for(tmp_path, sim.url, "acct1")
    clock = sim.sim.clock
    events: list[Event] = []
    counters: dict[str, float] = {}

    def garble(faults: dict[str, int]) -> None:
        answer = httpx.post(f"{sim.url}/_sim/faults", json=faults, timeout=10)
        assert answer.status_code == 200

    async def scenario() -> None:
        options: dict[str, Any] = {"silence": SilenceRule(5.0, 900.0), "refused_quiet_s": 120}
        async with streaming_three(clock, settings, events, **options) as (collector, _):
            refused = collector.refused_data
            # The records first: a garbled frame would take them with it.
            garble({"garbled_records": 3})
            await until(lambda: refused.records["acct1"] == 3, "three records refused", timeout=20)
            garble({"garbled_frames": 2})  # in the same episode (quiet: 4 wall seconds)
            await until(lambda: len(_alerts(events)) == 2, "the alert, then its end", timeout=30)
            counters.update(collector.account_counters())

    try:
        asyncio.run(scenario())
    finally:
        sim.close()
    alert, resolved = _alerts(events)
    assert isinstance(alert, Alert) and isinstance(resolved, AlertResolved)
    assert (alert.code, alert.severity, alert.subject) == (DATA_UNDECODED, "error", "acct1")
    assert (resolved.code, resolved.subject) == (DATA_UNDECODED, "acct1")
    assert "(3 records and 2 frames refused in the episode)" in resolved.message
    assert counters["account.acct1.dropped_records"] == 3
    assert counters["account.acct1.dropped_frames"] == 2
    gaps = [e for e in events if isinstance(e, GapDetected) and e.reason == "dropped_record"]
    assert gaps and {g.symbol for g in gaps} <= set(STOCKS[:3])
