"""Whether an account's feed is behind when a symbol leaves its slot: measured, not guessed."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from bus.events import AlertResolved, Event, GapDetected
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock, SimulatedClock
from observer.kis.realtime import TRADE_TRS, RealtimeEvents
from tests.track_b.test_account_alerts_resolved import _collector
from tests.track_b.test_slot_guard import tick
from workers.track_b.gaps import SilenceRule
from workers.track_b.lag import FEED_LAGGING, FeedLag

MS = 1_000_000
S = 1_000 * MS
T0 = 1_794_967_600 * S  # 2026-11-18 11:06:40 KST: stamped within the trading hours
LIMIT = 1_700 * MS  # Track B's: 500 + 200 ms and the stamps' second

TRADE = TRADE_TRS["KRX"]  # the frames are KRX's trades


def feed(clock: ManualClock | SimulatedClock | None = None) -> tuple[FeedLag, list[Event]]:
    events: list[Event] = []
    lag = FeedLag(clock or ManualClock(T0), AlertBook(events.append), lambda ns: True, 10.0)
    return lag, events


def frames(lag: FeedLag, start: int, every_ms: int, count: int, late_ms: int) -> int:
    """``count`` frames ``every_ms`` apart, each ``late_ms`` after its trade stamped to the
    second (KIS's HHMMSS); the last one's receive time."""
    at = start
    for n in range(count):
        at = start + n * every_ms * MS
        traded = (at - late_ms * MS) // S * S
        lag.on_frame("acct1", traded, at)
    return at


@given(st.integers(400, 1_500), st.integers(0, 1_600))
def test_an_account_of_quiet_stocks_on_time_is_not_behind_between_its_trades(
    every_ms: int, quiet_ms: int
) -> None:
    """Trades every 0.4-1.5 s delivered 100 ms late: the newest stamp is often 2 s old at a
    release (a quiet pause, and the stamps' second), yet nothing is owed. Judged by the stamp's
    age, 19 % of such releases were delivery-lag gaps."""
    lag, _ = feed()
    last = frames(lag, T0, every_ms, 120, 100)
    assert lag.behind("acct1", last + quiet_ms * MS, LIMIT) == 0


def test_a_frame_arriving_late_makes_the_feed_behind_for_a_few_seconds() -> None:
    lag, _ = feed()
    last = frames(lag, T0, 100, 50, 100)
    assert lag.behind("acct1", last + 50 * MS, LIMIT) == 0
    lag.on_frame("acct1", last - 3 * S, last + 100 * MS)  # a catch-up's late frame
    lag.on_frame("acct1", last + 100 * MS, last + 150 * MS)  # and a current one after it
    assert lag.behind("acct1", last + 200 * MS, LIMIT) == 3_100 * MS
    assert lag.behind("acct1", last + 4 * S, LIMIT) == 3_100 * MS
    assert lag.behind("acct1", last + 5_200 * MS, LIMIT) == 0  # older than RECENT_S


def test_a_feed_that_stops_is_behind_once_quiet_for_ten_usual_intervals() -> None:
    lag, _ = feed()
    busy = frames(lag, T0, 100, 700, 100)  # 70 s of a frame every 100 ms
    assert lag.behind("acct1", busy + LIMIT, LIMIT) == 0
    assert lag.behind("acct1", busy + 2 * S, LIMIT) == 2 * S  # max(1.7 s, 10 x 100 ms)
    quiet = frames(lag, busy + 10 * S, 1_000, 70, 100)  # then a frame a second
    assert lag.behind("acct1", quiet + 9 * S, LIMIT) == 0
    assert lag.behind("acct1", quiet + 11 * S, LIMIT) == 11 * S


def test_a_stop_is_not_judged_before_the_accounts_pace_is_known() -> None:
    lag, _ = feed()
    last = frames(lag, T0, 100, 100, 100)  # 10 s of frames
    assert lag.behind("acct1", last + 30 * S, LIMIT) == 0
    assert lag.behind("acct2", last, LIMIT) == 0  # nothing from it yet


def test_under_a_fast_clock_a_busy_event_loops_delay_is_not_a_feed_behind() -> None:
    """At 121x, 30 simulated seconds are a quarter of a wall second."""
    clock = SimulatedClock(T0, 121.0)
    lag, _ = feed(clock)
    now = clock.now_ns()
    lag.on_frame("acct1", now - 30 * S, now)
    assert lag.behind("acct1", now, LIMIT) == 0
    lag.on_frame("acct1", now - 90 * S, now)  # three quarters of a wall second
    assert lag.behind("acct1", now, LIMIT) == 90 * S
    # Still behind 0.4 wall seconds later (48 simulated seconds), with no frame since: the
    # simulator pushes every 50 ms of wall time, so 5 simulated seconds often hold none.
    assert lag.behind("acct1", now + 48 * S, LIMIT) == 90 * S
    assert lag.behind("acct1", now + 130 * S, LIMIT) == 0  # over a wall second later


def lagged(events: list[Event]) -> list[GapDetected]:
    """The delivery-lag gaps (the collector's fixed silence rule finds others here)."""
    return [e for e in events if isinstance(e, GapDetected) and e.reason == "delivery_lag"]


def test_a_slot_released_from_a_quiet_account_on_time_is_no_gap_and_one_behind_is() -> None:
    """The collector's release, as Track B makes it: a quiet account's newest stamp was 2.5 s
    old (a pause and the stamps' second) with the feed 100 ms late: a delivery-lag gap,
    before the lag was measured."""
    events: list[Event] = []
    clock = ManualClock(T0)
    stamps = SilenceRule(0.5, 0.2, resolution_s=1.0)  # Track B's: stamped to the second
    collector = _collector(events, asyncio.Event(), clock, silence=stamps)

    def frame(symbol: str, at: int, late_ms: int) -> None:
        traded = (at - late_ms * MS) // S * S
        ticks = [tick(symbol, traded, 70000)]
        collector.feeds["acct1"].on_frame(RealtimeEvents(TRADE, ticks=ticks), at)

    for n in range(60):  # 72 s of a trade every 1.2 s, 100 ms late
        frame("005930" if n % 2 else "000660", T0 + n * 1_200 * MS + 950 * MS, 100)
    last = T0 + 59 * 1_200 * MS + 950 * MS
    clock.advance((last + 1_600 * MS - T0) / S)
    asyncio.run(collector._drop("acct1", "005930"))
    assert not lagged(events)
    frame("000660", clock.now_ns(), 3_000)  # a frame 3 s late: the feed is behind
    asyncio.run(collector._drop("acct1", "000660"))
    [gap] = lagged(events)
    assert (gap.symbol, gap.end_ns) == ("000660", clock.now_ns())


def test_a_lag_alert_left_open_is_resolved_at_once_when_lag_alerts_are_off() -> None:
    """Nothing judges the lag with ``lag_alert_s = 0``: a taken-over alert stayed open."""
    events: list[Event] = []
    book = AlertBook(events.append)
    lag = FeedLag(ManualClock(T0), book, lambda ns: True, 0.0)
    left = Notice("track_b:4", "alert", 0, "warning", FEED_LAGGING, "acct2", "earlier")
    book.take_over([left])
    lag.taken_over(["acct2"])
    [resolved] = events
    assert isinstance(resolved, AlertResolved)
    assert (resolved.code, resolved.subject) == ("track_b_feed_lagging", "acct2")
    assert not book.is_open(FEED_LAGGING, "acct2")
