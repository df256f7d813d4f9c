"""What Track B stores: the checks of a record, the bounded keeping of refusals, bad frames.

The checks are pure (`observer.kis.record_checks`): properties over prices, tick tables, limits
and stamps. `Rejections` keeps a refusal's text within caps and alerts once per account,
kind and symbol; `BadFrameRate` starts an episode on a burst and ends it after a quiet
window; a frame over the library's cap ends its connection (and is counted), one over the
application's limit or not UTF-8 costs itself alone (`KisStream` against a loopback server).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import WSMsgType
from hypothesis import given
from hypothesis import strategies as st

from bus.events import (
    Alert,
    AlertResolved,
    Event,
    OrderBook,
    RealtimeRejected,
    TradeTick,
    Venue,
)
from harness.sim.price_units import round_tick
from harness.sim.price_units import tick_size as krx_tick
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.calendar.clock import ManualClock, SimulatedClock
from observer.calendar.phases import KST
from observer.kis import stream as stream_module
from observer.kis.feeds import Feed
from observer.kis.frames import (
    HARD_MAX_BYTES,
    MALFORMED,
    OVERSIZED,
    BadFrameRate,
    DroppedFrame,
    FrameLimits,
    frame_text,
)
from observer.kis.realtime import RealtimeEvents
from observer.kis.record_checks import (
    FUTURE_S,
    OUTSIDE_LIMITS,
    OUTSIDE_SESSION,
    PRICE,
    UNREGISTERED,
    VOLUME,
    Checks,
)
from observer.kis.stream import KisStream, StreamSettings
from observer.market.grid import KRX_TICK_SIZES as KRX_TICKS
from observer.market.grid import mid_point_of, price_kind, tick_size
from tests.kis.test_kis_parse import TRADE
from tests.kis.test_kis_stream import FakeSession, Heard, serve, tokens
from tests.support import until
from workers.track_b.rejections import (
    ALERTED_SYMBOLS,
    BAD_FRAMES,
    DATA_REJECTED,
    KEPT_PER_KIND,
    KEPT_PER_SYMBOL,
    Rejections,
)

_NS = 1_000_000_000
NOON = int(datetime(2026, 11, 20, 12, 0, tzinfo=KST).timestamp()) * _NS

WIDE = (0, 10**10)  # limits known and wide: a universe stock's grid is checked


def trade(
    price: int = 73100,
    qty: int = 5,
    stamp: int = NOON,
    received: int = NOON,
    bid1: int = 0,
    ask1: int = 0,
    venue: Venue = "KRX",
) -> TradeTick:
    return TradeTick(
        bid1=bid1,
        ask1=ask1,
        venue=venue,
        symbol="005930",
        exchange_ns=stamp,
        received_ns=received,
        price=price,
        qty=qty,
        cum_volume=1000,
        cum_value=73_100_000,
        change_rate=Decimal("0.5"),
    )


def book(level: int = 73100, qty: int = 10, stamp: int = NOON) -> OrderBook:
    return OrderBook(
        symbol="005930",
        exchange_ns=stamp,
        received_ns=NOON,
        ask_prices=(level, 0),
        ask_qtys=(qty, 0),
        bid_prices=(73000, 0),
        bid_qtys=(5, 0),
        total_ask_qty=max(qty, 0),
        total_bid_qty=5,
    )


bands = st.lists(
    st.tuples(st.integers(1, 10**7), st.integers(1, 5000)), max_size=8, unique_by=lambda b: b[0]
).map(lambda rest: ((0, 1), *sorted(rest)))


@given(bands, st.integers(1, 10**8), st.sampled_from(["KRX", "NXT", "combined"]))
def test_no_price_is_refused_for_being_off_the_grid_and_its_kind_follows_the_bands_tick(
    table: tuple[tuple[int, int], ...], price: int, venue: Venue
) -> None:
    unit = [u for start, u in table if start <= price][-1]  # by a scan, not a bisect
    assert tick_size(price, table) == unit
    checks = Checks(tick_sizes=table)
    assert checks.trade(trade(price, venue=venue), True, WIDE) is None
    kind = checks.price_kind(trade(price, venue=venue), stock=True)
    assert (kind == "on_grid") == (price % unit == 0)
    assert kind in ("on_grid", "mid_point")  # the book unknown: an off-grid price a mid-point
    assert Checks(tick_sizes=()).price_kind(trade(price), stock=True) == "on_grid"
    assert checks.price_kind(trade(price), stock=False) == "on_grid"  # not a stock: its own grid


@given(st.floats(2_000, 2_000_000), st.integers(1, 20), st.integers(-3, 3))
def test_a_mid_point_of_the_quoted_spread_is_a_mid_point_and_a_price_outside_it_is_off_grid(
    raw: float, ticks: int, beyond: int
) -> None:
    """KRX's rule: the average of the best bid and ask, the fraction dropped."""
    bid = round_tick(raw)
    unit = krx_tick(bid)
    ask = bid + ticks * unit
    mid = mid_point_of(bid, ask)
    assert bid <= mid <= ask and mid == (bid + ask) // 2
    expected = "on_grid" if mid % krx_tick(mid) == 0 else "mid_point"
    assert price_kind(mid, bid, ask) == expected
    outside = ask + unit // 2 if beyond >= 0 else bid - unit // 2
    if outside % krx_tick(outside):
        assert price_kind(outside, bid, ask) == "off_grid"
        assert price_kind(outside, 0, ask) == price_kind(outside, bid, 0) == "mid_point"
        checks = Checks()
        refused = checks.trade(trade(outside, bid1=bid, ask1=ask), True, WIDE)
        assert refused is None  # stored all the same


def test_the_worked_example_of_the_reference_is_a_mid_point() -> None:
    """71,950 between 71,900 and 72,000 (tick 100): a KRX mid-point trade."""
    assert mid_point_of(71_900, 72_000) == 71_950
    assert price_kind(71_950, 71_900, 72_000) == "mid_point"
    assert price_kind(71_950, 72_000, 72_100) == "off_grid"
    assert Checks().trade(trade(71_950, bid1=71_900, ask1=72_000), True, WIDE) is None


@given(st.floats(1, 2_000_000))
def test_every_price_the_simulator_rounds_is_on_the_krx_grid_and_one_won_more_is_not(
    raw: float,
) -> None:
    """The default table against the simulator's own implementation of KRX's units."""
    price = round_tick(raw)
    assert tick_size(price, KRX_TICKS) == krx_tick(price)
    assert price_kind(price, 0, 0) == "on_grid"
    if krx_tick(price + 1) > 1:
        assert price_kind(price + 1, 0, 0) == "mid_point"
        assert price_kind(price + 1, price + krx_tick(price) * 2, price + krx_tick(price) * 3) == (
            "off_grid"
        )


@given(st.integers(1, 10**7), st.integers(1, 10**7), st.integers(1, 10**7))
def test_a_price_outside_the_days_limits_is_refused_and_one_at_a_limit_is_not(
    a: int, b: int, price: int
) -> None:
    lower, upper = min(a, b), max(a, b)
    fault = Checks(tick_sizes=()).trade(trade(price), True, (lower, upper))
    assert (fault is None) == (lower <= price <= upper)
    assert fault is None or fault[0] == OUTSIDE_LIMITS
    assert Checks().trade(trade(price), True, None) is None  # limits not known: not checked


@given(st.integers(-(10**9), 0), st.integers(-(10**9), 10**9))
def test_a_price_or_quantity_of_zero_or_less_is_refused_before_anything_else(
    bad: int, other: int
) -> None:
    checks = Checks(tick_sizes=KRX_TICKS)
    assert checks.trade(trade(price=bad, qty=other), True, (1, 2))[0] == PRICE  # type: ignore[index]
    assert checks.trade(trade(qty=bad), True, (1, 2))[0] == VOLUME  # type: ignore[index]
    assert checks.trade(trade(price=bad), False, None)[0] == UNREGISTERED  # type: ignore[index]


@given(st.integers(-2 * 86_400, 2 * 86_400))
def test_a_stamp_outside_the_hours_of_its_arrivals_day_or_in_the_future_is_refused(
    offset_s: int,
) -> None:
    """Received at noon KST; hours 07:00-20:00; a stamp at most FUTURE_S after arrival."""
    stamp = NOON + offset_s * _NS
    fault = Checks().trade(trade(stamp=stamp), True, None)
    inside = -5 * 3600 <= offset_s <= FUTURE_S  # 07:00 .. 12:05 (up to FUTURE_S ahead)
    assert (fault is None) == inside, offset_s
    assert fault is None or fault[0] == OUTSIDE_SESSION
    assert (Checks().book(book(stamp=stamp), True) is None) == inside


def test_a_book_may_hold_empty_levels_but_no_negative_one() -> None:
    checks = Checks()
    assert checks.book(book(), True) is None  # its zeros are empty levels
    assert checks.book(book(level=-73100), True) == (PRICE, "a negative price level")
    assert checks.book(book(qty=-1), True) == (VOLUME, "a negative quantity")
    assert checks.book(book(), False) == (UNREGISTERED, "005930 is not registered on the session")


def test_the_settings_make_the_checks() -> None:
    from observer.config.workers import TrackBSettings

    checks = Checks.of(TrackBSettings(exchange_hours=("08:30", "18:00"), tick_sizes=KRX_TICKS))
    assert (checks.open_s, checks.close_s, checks.tick_sizes) == (30_600, 64_800, KRX_TICKS)
    assert Checks.of(TrackBSettings()) == Checks()  # 07:00-20:00, the grid not checked


# --------------------------------------------------------------------------- keeping them


def _frame(symbol: str) -> RealtimeEvents:
    return RealtimeEvents("H0STCNT0", text=f"0|H0STCNT0|001|{symbol}^x")


def test_refusals_are_kept_within_the_days_caps_and_counted_beyond() -> None:
    clock = ManualClock(NOON)
    events: list[Event] = []
    rejections = Rejections(clock, events.append, AlertBook(events.append), quiet_s=600)
    fault = (PRICE, "price -1")
    for n in range(KEPT_PER_KIND + 50):
        symbol = "999999" if n < 2 * KEPT_PER_SYMBOL else f"{n:06d}"
        rejections.reject("acct1", fault, _frame(symbol), symbol, NOON + n)
    kept = [e for e in events if isinstance(e, RealtimeRejected)]
    by_symbol = {e.symbol for e in kept}
    assert len(kept) == KEPT_PER_KIND == rejections.kept  # per account and kind a day
    assert sum(e.symbol == "999999" for e in kept) == KEPT_PER_SYMBOL  # per symbol a day
    assert "999999" in by_symbol and rejections.counts["acct1", PRICE] == KEPT_PER_KIND + 50
    assert kept[0].text == "0|H0STCNT0|001|999999^x" and kept[0].length == 23
    # The next KST day has caps of its own.
    day = 86_400 * _NS
    rejections.reject("acct1", fault, _frame("999999"), "999999", NOON + day)
    assert isinstance(events[-1], RealtimeRejected) and events[-1].received_ns == NOON + day
    # A frame's text is cut to its column.
    rejections.reject("acct1", fault, _frame("9" * 10_000), "x", NOON + day)
    long = [e for e in events if isinstance(e, RealtimeRejected)][-1]
    assert len(long.text) == RealtimeRejected.TEXT_LENGTH and long.length == 10_017


def test_one_alert_per_account_kind_and_symbol_the_rest_folded_and_each_resolved_when_quiet() -> (
    None
):
    clock = ManualClock(NOON)
    events: list[Event] = []
    rejections = Rejections(clock, events.append, AlertBook(events.append), quiet_s=600)
    for n in range(ALERTED_SYMBOLS + 5):
        for _ in range(3):
            symbol = f"{n:06d}"
            rejections.reject("acct1", (UNREGISTERED, "no"), _frame(symbol), symbol, NOON)
    rejections.reject("acct2", (UNREGISTERED, "no"), _frame("000000"), "000000", NOON)
    rejections.reject("acct1", (PRICE, "-1"), _frame("000000"), "000000", NOON)
    rejections.reject("acct1", (MALFORMED, "x"), _frame("000000"), "000000", NOON, alert=False)
    alerts = [e for e in events if isinstance(e, Alert)]
    subjects = [a.subject for a in alerts]
    assert subjects == [
        *(f"acct1/unregistered/{n:06d}" for n in range(ALERTED_SYMBOLS)),
        "acct1/unregistered/*",
        "acct2/unregistered/000000",
        "acct1/price_not_positive/000000",
    ]
    assert {(a.code, a.severity) for a in alerts} == {(DATA_REJECTED, "error")}
    assert alerts[0].context == {"account": "acct1", "kind": "unregistered", "symbol": "000000"}
    clock.advance(599)
    rejections.reject("acct1", (PRICE, "-1"), _frame("000000"), "000000", clock.now_ns())
    clock.advance(1)
    rejections.on_data("acct1", clock.now_ns())  # 600 s quiet: all but the one refused since
    resolved = [e for e in events if isinstance(e, AlertResolved)]
    assert {r.subject for r in resolved} == {s for s in subjects if s.startswith("acct1/unr")}
    assert "(3 in the episode)" in resolved[0].message
    [folded] = [r for r in resolved if r.subject.endswith("*")]
    assert "(15 in the episode)" in folded.message
    rejections.on_data("acct1", clock.now_ns() + _NS // 2)  # judged once a second at most
    clock.advance(600)
    rejections.on_data("acct1", clock.now_ns())
    assert events[-1].subject == "acct1/price_not_positive/000000"  # type: ignore[union-attr]
    rejections.reject("acct1", (PRICE, "-1"), _frame("000000"), "000000", clock.now_ns())
    assert isinstance(events[-1], Alert)  # a new episode, a new alert


def test_alerts_taken_over_raise_no_second_and_are_resolved_by_the_same_rules() -> None:
    clock = ManualClock(NOON)
    events: list[Event] = []
    book = AlertBook(events.append)
    rejections = Rejections(clock, events.append, book, quiet_s=60)
    left = [(DATA_REJECTED, "acct1/outside_limits/005930"), (BAD_FRAMES, "acct1")]
    book.take_over(
        Notice(f"track_b:{n}", "alert", n, "error", c, s, "") for n, (c, s) in enumerate(left)
    )
    rejections.taken_over(["acct1/outside_limits/005930"])
    rejections.reject("acct1", (OUTSIDE_LIMITS, "x"), _frame("005930"), "005930", NOON)
    rejections.flood("acct1", "a burst")
    assert [type(e) for e in events] == [RealtimeRejected]  # kept, but alerted before
    clock.advance(60)
    rejections.on_data("acct1", clock.now_ns())
    rejections.flood_over("acct1", "no bad frame for 60s")
    rejections.flood_over("acct1", "again")  # over once
    assert [(type(e), e.code, e.subject) for e in events[1:]] == [  # type: ignore[union-attr]
        (AlertResolved, DATA_REJECTED, "acct1/outside_limits/005930"),
        (AlertResolved, BAD_FRAMES, "acct1"),
    ]


# --------------------------------------------------------------------------- frames


def test_a_frame_over_the_limit_or_not_utf8_is_dropped_with_its_start_and_length() -> None:
    limits = FrameLimits(max_bytes=100)
    assert frame_text(b"0|H0STCNT0|001|x", limits, 5) == "0|H0STCNT0|001|x"
    big = frame_text(b"9" * 10_000, limits, 5)
    assert big == DroppedFrame(
        OVERSIZED, "10,000 bytes, over the limit of 100", "9" * 4096, 10_000, 5
    )
    bad = frame_text(b"0|\xff|x", limits, 5)
    assert isinstance(bad, DroppedFrame) and bad.cause == MALFORMED and bad.text == "0|\ufffd|x"
    assert bad.error == "not UTF-8 text (invalid start byte at byte 2)"


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 90)), max_size=80))
def test_a_burst_starts_one_episode_which_a_window_of_good_frames_ends(
    steps: list[tuple[bool, int]],
) -> None:
    """An episode starts when a bad frame makes more than the limit within the window,
    never while one is open; it ends at the first good frame a window after the last bad."""
    episode = [False]  # what the listener holds: open from a start to an end
    rate = BadFrameRate(FrameLimits(bad_per_window=3, window_s=60), lambda: episode[0])
    now, bad_times = 0, [0]
    for bad, seconds in steps:
        now += seconds * _NS
        if bad:
            bad_times.append(now)
            recent = [t for t in bad_times[1:] if t > now - 60 * _NS]
            starts = not episode[0] and len(recent) > 3
            assert rate.bad(now) == starts
            episode[0] = episode[0] or starts
        else:
            ends = episode[0] and now - bad_times[-1] >= 60 * _NS
            assert rate.good(now) == ends
            episode[0] = episode[0] and not ends


@given(st.integers(0, 10**12), st.lists(st.integers(0, 90), max_size=20))
def test_an_episode_left_open_ends_a_window_after_the_session_started_without_a_bad_frame(
    started: int, steps: list[int]
) -> None:
    """An episode an earlier process left open ends at the first good frame a window after
    the session's start."""
    episode = [True]
    rate = BadFrameRate(FrameLimits(bad_per_window=3, window_s=60), lambda: episode[0], started)
    now = started
    for seconds in steps:
        now += seconds * _NS
        ends = episode[0] and now - started >= 60 * _NS
        assert rate.good(now) == ends
        episode[0] = episode[0] and not ends


def test_a_frame_over_the_limit_or_not_utf8_costs_that_frame_and_one_over_the_cap_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the library's cap, a frame over the application's limit or whose text is not
    UTF-8 is dropped and the session stays (the library would close it: 1009, 1007); above
    the cap the library ends the connection, reported as a dropped frame and reconnected."""
    monkeypatch.setattr(stream_module, "HARD_MAX_BYTES", 256 * 1024)
    session = FakeSession()
    heard = Heard()

    async def scenario() -> KisStream:
        clock = SimulatedClock(0, speed=1000.0)  # the backoff passes in milliseconds
        async with serve(session) as url:
            settings = StreamSettings(max_frame_bytes=64 * 1024)
            stream = KisStream(url, tokens(tmp_path, clock), clock, heard, settings)
            await stream.subscribe(Feed("trades", "KRX", "005930"))
            stop = asyncio.Event()
            runner = asyncio.create_task(stream.run(stop))
            await until(lambda: stream.registered)
            ws = session.connections[0]
            await ws.send_str("0|H0STCNT0|001|" + "9" * 100_000)  # over the limit
            await ws.send_bytes(b"\xff" * 10)  # a binary frame, not UTF-8
            await ws.send_frame(b"0|H0STCNT0|001|\xff", WSMsgType.TEXT)  # text, not UTF-8
            await ws.send_str(f"0|H0STCNT0|001|{TRADE}")
            await until(lambda: heard.frames)
            assert len(session.connections) == 1 and stream.dropped == 3
            await ws.send_str("9" * 300_000)  # over the cap: the library ends the connection
            await until(lambda: len(session.connections) == 2 and stream.registered)
            stop.set()
            await runner
            return stream

    stream = asyncio.run(scenario())
    dropped = heard.dropped
    assert [(d.cause, d.length) for d in dropped] == [
        (OVERSIZED, 100_015),
        (MALFORMED, 10),
        (MALFORMED, 16),
        (OVERSIZED, 0),
    ]
    assert f"over {HARD_MAX_BYTES:,} bytes" in dropped[-1].error  # the cap the product runs with
    closed = [r for s, r in heard.states if s == "disconnected" and r.startswith("closed: 1009")]
    assert closed
    assert stream.dropped == 4 and stream.reconnects == 1
