"""TickGap detection: silences judged in session, connection gaps closed with their reason."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from bus.events import TradingSession
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.venues import venues_from
from tests.track_b.test_account_alerts_resolved import Account
from workers.track_b.collect import Collector, CollectorSettings
from workers.track_b.gaps import (
    CHAIN_BACKSTOP_NS,
    CHAIN_WAIT_NS,
    GapDetector,
    SilenceRule,
    TickGap,
)
from workers.track_b.sessions import Trading

MS = 1_000_000
SESSION = (1_000 * MS, 10_000_000 * MS)  # continuous trading, in this test's instants


def in_session(ns: int) -> bool:
    return SESSION[0] <= ns < SESSION[1]


def detector() -> GapDetector:
    """The seed's fixed rule: 500 ms expected, 200 ms tolerance."""
    return GapDetector("acct1", SilenceRule(0.5, 0.2), in_session)


@given(st.lists(st.integers(0, 5_000), min_size=1, max_size=60))
def test_a_silence_is_every_pause_longer_than_expected_plus_tolerance(steps: list[int]) -> None:
    d = detector()
    times, at = [], SESSION[0]
    for step in steps:
        at += step * MS
        times.append(at)
    gaps = [g for t in times if (g := d.on_tick("005930", t))]
    expected = [(a, b) for a, b in pairwise(times) if b - a > 700 * MS]
    assert [(g.start_ns, g.end_ns) for g in gaps] == expected
    assert all(g.reason == "silence" and g.symbol == "005930" for g in gaps)


@given(st.lists(st.integers(0, 20_000), min_size=1, max_size=120))
def test_with_a_cadence_a_silence_is_a_pause_far_beyond_the_symbols_own_pace(
    steps: list[int],
) -> None:
    rule = SilenceRule(0.5, 0.2, cadence_factor=10.0, window_s=30.0)
    d = GapDetector("acct1", rule, in_session)
    times, at = [SESSION[0]], SESSION[0]
    for step in steps:
        at += step * MS
        times.append(at)
    gaps = [g for t in times if (g := d.on_tick("000660", t))]
    window = 30_000 * MS
    expected = []
    for i in range(1, len(times)):
        before, now = times[i - 1], times[i]
        if before - times[0] < window:
            continue  # watched less than a window: its pace is unknown
        pace = window / sum(1 for t in times[:i] if t >= before - window)
        if now - before > max(500 * MS, 10 * pace) + 200 * MS:
            expected.append((before, now))
    assert [(g.start_ns, g.end_ns) for g in gaps] == expected


def test_a_symbol_trading_every_few_seconds_is_not_silent_between_trades() -> None:
    rule = SilenceRule(0.5, 0.2, cadence_factor=10.0, window_s=60.0)
    d = GapDetector("acct1", rule, in_session)
    at = SESSION[0]
    for _ in range(40):  # a trade every 3 s: the fixed 700 ms rule would flag each pause
        at += 3_000 * MS
        assert d.on_tick("000660", at) is None
    for _ in range(30):  # frames of several records: one receive time for each frame
        at += 3_000 * MS
        assert all(d.on_tick("000660", at) is None for _ in range(3))
    gap = d.on_tick("000660", at + 40_000 * MS)  # 40 s: more than 10 x its 1 s pace
    assert gap == TickGap("acct1", "000660", at, at + 40_000 * MS, "silence")
    fixed = detector()
    assert fixed.on_tick("000660", SESSION[0]) is None
    assert fixed.on_tick("000660", SESSION[0] + 3_000 * MS) is not None


def test_silences_outside_continuous_trading_are_not_gaps() -> None:
    d = detector()
    assert d.on_tick("005930", SESSION[1] - 100 * MS) is None
    assert d.on_tick("005930", SESSION[1] + 60_000 * MS) is None  # across the close
    d2 = detector()
    assert d2.on_tick("005930", 500 * MS) is None
    assert d2.on_tick("005930", SESSION[0] + 10 * MS) is None  # across the open


def test_a_disconnect_opens_a_gap_per_symbol_closed_by_its_registration() -> None:
    d = detector()
    d.on_tick("005930", 2_000 * MS)
    d.on_tick("000660", 2_300 * MS)
    d.on_disconnect(2_900 * MS, "disconnect", ["005930", "000660"])
    d.on_disconnect(3_100 * MS, "token_refresh", ["005930"])  # still the first gap
    # From each symbol's own newest trade to its new registration: another's newer trade
    # proves nothing of it (a feed need not deliver its symbols in time order).
    gap = d.on_registered("005930", 4_000 * MS)
    assert gap == TickGap("acct1", "005930", 2_000 * MS, 4_000 * MS, "disconnect")
    other = d.on_registered("000660", 4_100 * MS)
    assert other == TickGap("acct1", "000660", 2_300 * MS, 4_100 * MS, "disconnect")
    assert gap.gap_id == "acct1:005930:2000000000"
    assert d.on_registered("005930", 5_000 * MS) is None  # nothing open any more
    # The silence clock restarts at the next tick: no silence gap across the outage.
    assert d.on_tick("005930", 5_100 * MS) is None


def test_a_symbol_with_no_trade_since_its_registration_is_missing_from_its_registration() -> None:
    """Placed at 1 s, silent; another symbol's trade at 5 s: that trade proves nothing of this
    one (the simulator pushes symbol by symbol, so under lag its trades of 1-5 s may still be on
    the way), so its gap covers it from its registration."""
    d = detector()
    d.on_registered("000660", 1_000 * MS)
    d.on_tick("005930", 5_000 * MS)
    d.on_disconnect(5_100 * MS, "disconnect", ["005930", "000660"])
    gap = d.on_registered("000660", 8_000 * MS)
    assert gap == TickGap("acct1", "000660", 1_000 * MS, 8_000 * MS, "disconnect")


def test_a_connection_gap_starts_at_the_newest_trade_stamp_not_its_arrival() -> None:
    """Received just after a minute's turn but stamped before it: the trades lost after it
    may be of the minute before, so the gap (and its recovery) starts there."""
    d = detector()
    d.on_tick("005930", 60_000 * MS + 200 * MS, 59_000 * MS)  # received 1:00.2, stamped 0:59
    d.on_disconnect(60_300 * MS, "disconnect", ["005930"])
    gap = d.on_registered("005930", 65_000 * MS)
    assert gap == TickGap("acct1", "005930", 59_000 * MS, 65_000 * MS, "disconnect")


def test_a_second_drop_before_any_new_tick_is_a_new_gap_from_where_the_first_ended() -> None:
    d = detector()
    d.on_tick("005930", 2_000 * MS)
    d.on_disconnect(2_100 * MS, "disconnect", ["005930"])
    first = d.on_registered("005930", 3_000 * MS)
    d.on_disconnect(4_000 * MS, "disconnect", ["005930"])  # no tick since: same last frame
    second = d.on_registered("005930", 25_000 * MS)
    assert first == TickGap("acct1", "005930", 2_000 * MS, 3_000 * MS, "disconnect")
    assert second == TickGap("acct1", "005930", 3_000 * MS, 25_000 * MS, "disconnect")
    assert first.gap_id != second.gap_id  # gap recovery takes each; the second is not dropped


@given(
    st.lists(
        st.tuples(st.sampled_from(["drop", "ack", "tick"]), st.integers(1, 10_000)),
        max_size=40,
    )
)
def test_connection_gaps_never_share_an_id_or_a_span(
    steps: list[tuple[str, int]],
) -> None:
    d = detector()
    now, gaps = 1_000 * MS, []
    d.on_registered("005930", now)
    for step, pause in steps:
        now += pause * MS
        if step == "drop":
            d.on_disconnect(now, "disconnect", ["005930"])
        elif step == "ack":
            gap = d.on_registered("005930", now)
            gaps.extend([gap] if gap else [])
        else:
            d.on_tick("005930", now)
    assert len({g.gap_id for g in gaps}) == len(gaps)
    for earlier, later in pairwise(gaps):
        assert earlier.end_ns <= later.start_ns  # one after another, never the same span


def test_a_symbol_that_leaves_its_slot_closes_its_open_gap_and_is_forgotten() -> None:
    d = detector()
    d.on_tick("005930", 2_000 * MS)
    d.on_disconnect(2_100 * MS, "disconnect", ["005930"])
    # Replaced during the outage: its data was missing from the drop until it left.
    gap = d.forget("005930", 2_500 * MS)
    assert gap == TickGap("acct1", "005930", 2_000 * MS, 2_500 * MS, "disconnect")
    assert d.forget("005930", 2_600 * MS) is None
    assert d.on_registered("005930", 3_000 * MS) is None
    assert d.on_tick("005930", 9_000 * MS) is None


def test_a_symbol_placed_during_an_outage_is_missing_from_its_placement() -> None:
    d = detector()
    d.on_placed("000660", 1_500 * MS)  # before the first session: nothing was streamed yet
    assert d.on_registered("000660", 1_600 * MS) is None
    d.on_tick("005930", 2_000 * MS)
    d.on_disconnect(2_100 * MS, "disconnect", ["005930", "000660"])
    d.on_placed("035720", 2_400 * MS)  # in the reconnect backoff
    d.on_placed("051910", 2_500 * MS)  # in it too, and moved to another account before long
    assert d.forget("051910", 3_000 * MS) == TickGap(
        "acct1", "051910", 2_500 * MS, 3_000 * MS, "disconnect"
    )
    assert d.on_registered("035720", 4_000 * MS) == TickGap(
        "acct1", "035720", 2_400 * MS, 4_000 * MS, "disconnect"
    )
    d.on_confirmed()  # KIS confirmed the new session: placements stream from their start
    d.on_placed("068270", 5_000 * MS)
    assert d.on_registered("068270", 5_100 * MS) is None


def test_silences_are_judged_between_trade_stamps_not_arrivals() -> None:
    rule = SilenceRule(0.5, 0.2, cadence_factor=10.0, window_s=10.0, resolution_s=1.0)
    d = GapDetector("acct1", rule, in_session)
    traded = SESSION[0]
    for n in range(200):  # five trades a second for 40 s, stamped to the second
        traded = SESSION[0] + n * 200 * MS
        assert d.on_tick("005930", traded, traded // 1_000_000_000 * 1_000_000_000) is None
    # The feed stalls for 30 s, then delivers every trade: nothing was lost.
    stamp = traded // 1_000_000_000 * 1_000_000_000
    assert d.on_tick("005930", traded + 30_000 * MS, stamp + 1_000 * MS) is None
    # A one-second stamp step is the stamps' resolution, not a pause; five seconds without a
    # trade, delivered at once, is a silence (trades lost on the way).
    assert d.on_tick("005930", traded + 30_001 * MS, stamp + 2_000 * MS) is None
    gap = d.on_tick("005930", traded + 30_002 * MS, stamp + 7_000 * MS)
    assert gap == TickGap("acct1", "005930", stamp + 2_000 * MS, stamp + 7_000 * MS, "silence")


def test_a_symbol_leaving_its_slot_in_a_silence_the_feed_ran_past_is_a_silence_gap() -> None:
    """The demo's 005935 (session 26): its last trade at 10:19:55, other symbols' trades on,
    the slot replaced at 10:20:34, the feed on time. No later trade judged the silence; the
    release must, or only the reconciliation finds the short minute."""
    d = detector()
    d.on_registered("005935", 1_000 * MS)
    d.on_tick("005935", 2_100 * MS, 2_000 * MS)
    d.on_tick("000660", 2_700 * MS, 2_600 * MS)  # the feed goes on, 0.6 s past: within 0.7
    assert d.forget("005935", 3_000 * MS) is None
    d.on_registered("005935", 3_000 * MS)
    d.on_tick("005935", 3_100 * MS, 3_000 * MS)
    d.on_tick("000660", 4_100 * MS, 4_000 * MS)  # 1 s past the symbol's newest: silent
    assert d.forget("005935", 4_500 * MS) == TickGap(
        "acct1", "005935", 3_000 * MS, 4_500 * MS, "silence"
    )
    # Outside the sessions a silence counts in, a pause is no loss.
    d.on_registered("035720", SESSION[1] - 2_000 * MS)
    d.on_tick("035720", SESSION[1] - 1_000 * MS, SESSION[1] - 1_000 * MS)
    d.on_tick("000660", SESSION[1] + 5_000 * MS, SESSION[1] + 5_000 * MS)
    assert d.forget("035720", SESSION[1] + 6_000 * MS) is None


def test_a_symbol_leaving_its_slot_while_the_feed_runs_behind_is_a_delivery_lag_gap() -> None:
    d = detector()
    d.on_registered("005930", 1_500 * MS)
    d.on_registered("000660", 1_500 * MS)
    d.on_tick("005930", 2_200 * MS, 2_000 * MS)
    assert d.forget("005930", 2_600 * MS) is None  # the feed on time (the caller measured it)
    d.on_tick("000660", 9_000 * MS, 4_000 * MS)
    d.on_tick("035720", 9_100 * MS, 5_000 * MS)  # another symbol's, newer
    # 5 s behind at 10 s: 000660's trades after its own newest may still be on the way.
    assert d.forget("000660", 10_000 * MS, behind_ns=5_000 * MS) == TickGap(
        "acct1", "000660", 4_000 * MS, 10_000 * MS, "delivery_lag"
    )
    # A symbol with no trade since its registration: from it, but no earlier than twice the
    # lag before the release (one symbol's trades out of step with another's by as much).
    d.on_registered("051910", 1_000 * MS)
    assert d.forget("051910", 7_000 * MS, behind_ns=1_000 * MS) == TickGap(  # 2 s since 5 s
        "acct1", "051910", 3_000 * MS, 7_000 * MS, "delivery_lag"
    )
    d.on_registered("068270", 1_000 * MS)  # the newest stamp 6 s old: 12 s, to its registration
    assert d.forget("068270", 11_000 * MS, behind_ns=4_000 * MS) == TickGap(
        "acct1", "068270", 1_000 * MS, 11_000 * MS, "delivery_lag"
    )
    d.on_registered("207940", 1_000 * MS)  # continuous trading bounds it
    assert d.forget("207940", SESSION[1] + 1, behind_ns=5_000 * MS) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["005930", "000660", "035720"]), st.integers(0, 3_000)),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 20_000),
    st.integers(0, 30_000),
)
def test_a_delivery_lag_gap_is_exactly_the_stretch_a_feed_behind_may_not_have_delivered(
    trades: list[tuple[str, int]], release_after: int, behind_ms: int
) -> None:
    d = detector()
    stamp = SESSION[0]
    for symbol, step in trades:  # delivered in stamp order, each 100 ms after its stamp
        stamp += step * MS
        d.on_tick(symbol, stamp + 100 * MS, stamp)
    now = stamp + 100 * MS + release_after * MS
    last = d.last_tick.get("005930")
    gap = d.forget("005930", now, behind_ns=behind_ms * MS)
    if not behind_ms:  # on time: a silence past its 700 ms while the feed went on, or nothing
        silent = last is not None and stamp - last > 700 * MS
        assert gap == (TickGap("acct1", "005930", last, now, "silence") if silent else None)
        return
    lag = max(behind_ms * MS, now - stamp)  # the newest delivered stamp is the last one
    assert gap == TickGap("acct1", "005930", max(last or 0, now - 2 * lag), now, "delivery_lag")


def test_a_quiet_symbol_released_while_the_feed_is_behind_is_a_gap_whatever_its_pace() -> None:
    """A stock trading every 15 s may pause 150 s before a silence counts; a feed 30 s
    behind still owed it those 30 s when it left its slot."""
    rule = SilenceRule(0.5, 0.2, cadence_factor=10.0, window_s=60.0, resolution_s=1.0)
    d = GapDetector("acct1", rule, in_session)
    start = SESSION[0]
    for n in range(9):  # two minutes of a trade every 15 s, on time
        d.on_tick("000270", start + n * 15_000 * MS + 100 * MS, start + n * 15_000 * MS)
    last = start + 8 * 15_000 * MS
    d.on_tick("005930", last + 10_000 * MS, last + 10_000 * MS)
    released = last + 40_000 * MS  # the caller measured the feed 30 s behind
    gap = d.forget("000270", released, behind_ns=30_000 * MS)
    assert gap == TickGap("acct1", "000270", last, released, "delivery_lag")


def test_a_refused_trade_is_a_gap_over_its_stamp_or_since_the_last_delivered_one() -> None:
    d = detector()
    at = SESSION[0] + 10_000 * MS
    d.on_tick("005930", at)
    gap = d.on_refused_trade("005930", at + 3_000 * MS, at + 2_000 * MS)
    assert gap == TickGap("acct1", "005930", at + 2_000 * MS, at + 2_000 * MS, "dropped_record")
    # A stamp that does not read (0), comes after its arrival or over an hour before it: from
    # the symbol's newest delivered trade to the arrival.
    for stamp in (0, at + 4_000 * MS, at - 3_600_000 * MS):
        d = detector()  # a minute's first refusal: a later one in it is that gap's (below)
        d.on_tick("005930", at)
        gap = d.on_refused_trade("005930", at + 3_000 * MS, stamp)
        assert gap is not None and (gap.start_ns, gap.end_ns) == (at, at + 3_000 * MS)
    # Never the id of the silence gap that may start on the same stamp
    silence = d.on_tick("005930", at + 9_000 * MS)
    assert silence is not None and silence.start_ns == at
    assert gap.gap_id != silence.gap_id and gap.gap_id == f"dropped:acct1:005930:{at}"
    # A symbol under an open connection gap: that gap covers it.
    d.on_disconnect(at + 10_000 * MS, "disconnect", ["005930"])
    assert d.on_refused_trade("005930", at + 11_000 * MS, at + 10_500 * MS) is None


@given(st.lists(st.integers(0, 3_000), min_size=1, max_size=200))
def test_a_symbol_whose_every_record_is_refused_has_one_gap_a_minute(steps: list[int]) -> None:
    """TickGap recovery fetches whole minutes: one gap per minute holds all of its lost trades
    (a refused record a second was a gap a second: 23,400 a symbol in a day)."""
    d = detector()
    at, stamps = SESSION[0], []
    for step in steps:
        at += step * MS
        stamps.append(at)
    gaps = [g for t in stamps if (g := d.on_refused_trade("005930", t + 500 * MS, t))]
    minute = 60_000 * MS
    assert [g.start_ns // minute for g in gaps] == sorted({t // minute for t in stamps})
    assert all(g.start_ns == g.end_ns for g in gaps)


def test_a_silence_across_a_venue_s_pause_is_no_gap_and_one_beside_it_is() -> None:
    """Nextrade pauses 15:20-15:30 (KRX's closing auction): a feed quiet across the pause
    lost nothing; quiet as long inside one session, it did."""
    second = 1_000 * MS
    pause = (1_000 * second, 1_600 * second)

    def nextrade(ns: int) -> bool:
        return not pause[0] <= ns < pause[1]

    d = GapDetector("acct1", SilenceRule(0.5, 0.2), nextrade, "NXT")
    assert d.on_tick("005930", pause[0] - 3 * second) is None
    assert d.on_tick("005930", pause[1] + 5 * second) is None  # across the pause
    gap = d.on_tick("005930", pause[1] + 700 * second)  # as long, inside the session
    assert gap is not None and (gap.venue, gap.reason) == ("NXT", "silence")
    assert gap.gap_id == f"acct1:005930@NXT:{pause[1] + 5 * second}"


def test_a_silence_in_a_thin_session_is_no_gap() -> None:
    """Nextrade's after-market trades a name a few times a minute: a pause there is its
    nature, not a loss (`[track_b] silence_sessions`); its minutes are reconciled all the
    same. A connection's gap there still counts."""
    venues = venues_from(VenueSettings(), timeline_from(PhaseSettings(), CalendarSettings()))
    trading = Trading(timeline_from(PhaseSettings(), CalendarSettings()), venues)

    def collector(sessions: frozenset[TradingSession]) -> Collector:
        settings = CollectorSettings(trades="venues", silence_sessions=sessions)
        account = Account("acct1", asyncio.Event())
        return Collector(
            [account],  # type: ignore[list-item]
            ManualClock(0),
            lambda event: None,
            settings,
            session_of=venues.session_of_ns,
            continuous=trading.feed,
        )

    def at(hhmm: str) -> int:
        moment = datetime.combine(date(2026, 11, 20), time.fromisoformat(hhmm), tzinfo=KST)
        return int(moment.timestamp()) * 1_000_000_000

    for sessions in (frozenset({"regular"}), frozenset()):
        nxt = collector(sessions).detectors["acct1"]["NXT"]
        nxt.on_tick("005930", at("16:00"))
        assert nxt.on_tick("005930", at("16:05")) is None  # five quiet minutes, no gap
        nxt.on_tick("005930", at("10:00"))  # the main session's pauses: gaps if "regular"
        gap = nxt.on_tick("005930", at("10:05"))
        assert (gap is not None) == ("regular" in sessions), sessions
    every = collector(frozenset({"regular", "after_market"})).detectors["acct1"]["NXT"]
    every.on_tick("005930", at("16:00"))
    assert every.on_tick("005930", at("16:05")) is not None


# (quantity, whether the feed delivered it) of one symbol's trades, in order
trades = st.lists(st.tuples(st.integers(1, 10_000), st.booleans()), min_size=1, max_size=60)


@given(trades, st.integers(0, 10**9))
def test_the_volume_chain_finds_every_share_not_delivered_between_two_trades(
    day: list[tuple[int, bool]], opening: int
) -> None:
    """Each trade's cumulative volume is the exchange's: each run of trades the feed did not
    deliver between two delivered ones is one volume_chain gap, to the share, between their
    stamps; nothing before the first delivered trade or after the last is claimed."""
    chain = detector()
    cum, gaps, delivered = opening, [], []
    for n, (qty, sent) in enumerate(day):
        cum += qty
        if sent:
            delivered.append(n)
            if gap := chain.on_volume("005930", n * 1_000_000_000, cum, qty):
                gaps.append(gap)
    between = [
        (n, qty)
        for n, (qty, sent) in enumerate(day)
        if not sent and delivered and delivered[0] < n < delivered[-1]
    ]
    runs = sum(1 for (a, _), (b, _) in pairwise([(-2, 0), *between]) if b != a + 1)
    assert [g.reason for g in gaps] == ["volume_chain"] * runs
    assert sum(g.missing_volume or 0 for g in gaps) == sum(qty for _, qty in between)
    for gap in gaps:  # between two delivered trades' stamps, with the volumes around them
        assert gap.cum_before is not None and gap.cum_after is not None
        assert gap.start_ns < gap.end_ns and gap.cum_after - gap.cum_before == gap.missing_volume


def test_a_chain_that_runs_backwards_is_a_reset_and_a_registration_starts_a_new_one() -> None:
    chain = detector()
    assert chain.on_volume("005930", 1, 1_000, 10) is None  # the first of a chain
    assert chain.on_volume("005930", 2, 990, 5) is None  # backwards: a correction, no gap
    assert chain.chain_resets == 1
    assert chain.on_volume("005930", 3, 995, 5) is None  # the chain runs on from there
    chain.on_registered("005930", 4)  # a new registration: a new chain
    assert chain.on_volume("005930", 5, 2_000, 5) is None
    gap = chain.on_volume("005930", 6, 2_100, 40)  # 60 shares between the two
    assert gap is not None and (gap.missing_volume, gap.cum_before, gap.cum_after) == (
        60,
        2_000,
        2_060,
    )
    assert (gap.start_ns, gap.end_ns, gap.venue) == (5, 6, "KRX")
    chain.on_refused_trade("005930", 7, 7)  # a refused trade's gap holds its volume
    assert chain.on_volume("005930", 8, 3_000, 1) is None
    off = GapDetector("acct1", SilenceRule(), in_session, chain=False)
    off.on_volume("005930", 1, 1_000, 10)
    assert off.on_volume("005930", 2, 5_000, 10) is None  # not checked


def test_two_volume_chain_gaps_in_one_second_are_two_gaps() -> None:
    chain = detector()
    chain.on_volume("005930", 10, 1_000, 10)
    first = chain.on_volume("005930", 10, 1_050, 10)  # 40 lost, in the same second
    second = chain.on_volume("005930", 10, 1_100, 10)  # 40 more
    assert first is not None and second is not None
    assert first.gap_id != second.gap_id and first.gap_id.startswith("chain:")


# One symbol's day: each step a trade (its quantity, and whether the feed delivered it while
# the session was up) or an outage (the session drops and the symbol is registered again).
day_with_outages = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), st.integers(1, 10_000), st.booleans()),
        st.tuples(st.just("outage"), st.just(0), st.just(False)),
    ),
    min_size=1,
    max_size=60,
)


@given(day_with_outages, st.integers(0, 10**9))
def test_the_chain_runs_on_across_outages_and_measures_each_in_shares(
    steps: list[tuple[str, int, bool]], opening: int
) -> None:
    """Every share not delivered between the first delivered trade and the last is in
    exactly one gap: lost with the session up, a volume_chain gap; in an outage, its
    connection gap measured at the symbol's next trade (two outages with no trade between
    are one gap: the chain cannot tell them apart). None is of negative volume, and an
    outage the chain proves empty says 0 shares."""
    d = detector()
    d.on_registered("005930", 0)
    now, cum, gaps, delivered, lost = 0, opening, [], [], []
    outages, awaiting = 0, False  # outages as gaps; whether the last waits for a trade
    for kind, qty, sent in steps:
        now += 1_000 * MS
        if kind == "outage":
            outages += not awaiting
            awaiting = bool(delivered)  # a chain to measure it by
            d.on_disconnect(now, "disconnect", ["005930"])
            now += 1_000 * MS
            gaps.extend(g for g in [d.on_registered("005930", now)] if g)
            continue
        cum += qty
        if sent:
            d.on_tick("005930", now, now)
            awaiting = False
            delivered.append(cum)
            gaps.extend(g for g in [d.on_volume("005930", now, cum, qty)] if g)
        else:
            lost.append((cum, qty, now))
    gaps += d.overdue(now + CHAIN_BACKSTOP_NS)
    assert not d.awaiting
    inside = [(c, q, t) for c, q, t in lost if delivered and delivered[0] < c < delivered[-1]]
    measured = [g for g in gaps if g.missing_volume is not None]
    for c, _, _ in inside:  # each lost share is in exactly one gap
        by_volume = [g for g in measured if g.cum_before < c <= g.cum_after]  # type: ignore[operator]
        assert len(by_volume) == 1, (c, gaps)
    assert sum(g.missing_volume or 0 for g in measured) == sum(q for _, q, _ in inside)
    assert all((g.missing_volume or 0) >= 0 for g in gaps)
    assert len([g for g in gaps if g.reason == "disconnect"]) == outages
    for gap in measured:
        assert gap.cum_before is not None and gap.cum_after is not None
        assert gap.cum_after - gap.cum_before == gap.missing_volume
    assert len({g.gap_id for g in gaps}) == len(gaps)


def test_an_outage_s_gap_waits_for_the_first_trade_and_is_measured_from_the_last_before() -> None:
    d = detector()
    d.on_registered("005930", 1_000 * MS)
    d.on_volume("005930", 2_000 * MS, 1_000, 10)
    d.on_tick("000660", 2_500 * MS)  # the connection's newest frame
    d.on_disconnect(2_600 * MS, "disconnect", ["005930"])
    assert d.on_registered("005930", 40_000 * MS) is None  # waits for a trade
    assert d.overdue(41_000 * MS) == []
    gap = d.on_volume("005930", 42_000 * MS, 1_500, 20)  # 480 shares traded in the outage
    assert gap == TickGap(
        "acct1", "005930", 2_000 * MS, 42_000 * MS, "disconnect", "KRX", 480, 1_000, 1_480
    )
    assert gap.gap_id == "acct1:005930:2000000000"  # a connection gap's id, from its start
    assert d.on_volume("005930", 43_000 * MS, 1_510, 10) is None  # the chain runs on

    # An outage with no trade in it: measured at 0 shares
    d.on_disconnect(44_000 * MS, "disconnect", ["005930"])
    d.on_registered("005930", 45_000 * MS)
    quiet = d.on_volume("005930", 46_000 * MS, 1_515, 5)
    assert quiet is not None and quiet.missing_volume == 0 and quiet.cum_before == 1_510


def test_a_symbol_failed_over_to_another_account_takes_its_gap_and_chain_there() -> None:
    down, other = detector(), GapDetector("acct2", SilenceRule(0.5, 0.2), in_session)
    down.on_registered("005930", 1_000 * MS)
    down.on_volume("005930", 2_000 * MS, 1_000, 10)
    down.on_tick("000660", 2_500 * MS)  # the connection's newest frame
    down.on_disconnect(2_600 * MS, "disconnect", ["005930"])
    carried = down.hand_over("005930", 40_000 * MS)  # acct1 is down: its slot moves
    assert carried is not None and (carried.start_ns, carried.reason) == (2_000 * MS, "disconnect")
    assert not down.open and not down.chain  # nothing of it left, nothing published there
    other.resume("005930", carried.start_ns, carried.chain, carried.reason)
    assert other.on_registered("005930", 41_000 * MS) is None  # waits for a trade
    gap = other.on_volume("005930", 42_000 * MS, 1_500, 20)
    assert gap == TickGap(
        "acct2", "005930", 2_000 * MS, 42_000 * MS, "disconnect", "KRX", 480, 1_000, 1_480
    )
    # A symbol with no connection gap, or no chain, is not carried: `forget` publishes
    up = detector()
    up.on_volume("005930", 2_000 * MS, 1_000, 10)
    assert up.hand_over("005930", 3_000 * MS) is None and up.chain
    unchained = detector()
    unchained.on_disconnect(2_600 * MS, "disconnect", ["005930"])
    assert unchained.hand_over("005930", 3_000 * MS) is None and unchained.open


def test_an_outage_the_chain_cannot_measure_goes_out_as_it_is() -> None:
    def outage(d: GapDetector, at: int) -> None:
        d.on_volume("005930", at * MS, 1_000, 10)
        d.on_disconnect((at + 100) * MS, "disconnect", ["005930"])
        assert d.on_registered("005930", (at + 1_000) * MS) is None

    # No trade within a minute of the registration, as the feed delivered: unmeasured
    quiet = detector()
    outage(quiet, 1_000)
    minute_on = 2_000 * MS + CHAIN_WAIT_NS
    assert quiet.overdue(minute_on) == []  # the clock alone: the feed (or Track B) may be behind
    quiet.on_tick("000660", minute_on - 1)  # another symbol's trade: the feed's own time
    assert quiet.overdue(minute_on) == []
    quiet.on_tick("000660", minute_on)
    (gap,) = quiet.overdue(minute_on)
    assert (gap.start_ns, gap.end_ns, gap.missing_volume) == (1_000 * MS, 2_000 * MS, None)
    assert quiet.on_volume("005930", 70_000 * MS, 1_100, 10) is None  # no gap twice
    # A connection delivering nothing at all: out on the clock, ten minutes on
    silent = detector()
    outage(silent, 1_000)
    assert silent.overdue(2_000 * MS + CHAIN_BACKSTOP_NS - 1) == []
    (gap,) = silent.overdue(2_000 * MS + CHAIN_BACKSTOP_NS)
    assert gap.missing_volume is None and not silent.awaiting

    # A second outage before the first trade: one gap over both, measured by the trade after
    twice = detector()
    outage(twice, 1_000)
    twice.on_disconnect(2_500 * MS, "disconnect", ["005930"])
    assert twice.overdue(2_500 * MS) == [] and twice.on_registered("005930", 3_000 * MS) is None
    both = twice.on_volume("005930", 3_500 * MS, 1_200, 50)
    assert both is not None and (both.start_ns, both.end_ns) == (1_000 * MS, 3_500 * MS)
    assert (both.missing_volume, both.reason) == (150, "disconnect")

    # Left its slot, or a refused trade, before its first trade: unmeasured
    left = detector()
    outage(left, 1_000)
    gap = left.forget("005930", 2_500 * MS)
    assert gap is not None and gap.missing_volume is None and not left.awaiting
    refused = detector()
    outage(refused, 1_000)
    assert refused.on_refused_trade("005930", 2_500 * MS, 2_500 * MS) is not None
    (gap,) = refused.overdue(2_500 * MS)
    assert gap.missing_volume is None

    # A chain that ran backwards across it (a feed restarted): unmeasured, a reset
    back = detector()
    outage(back, 1_000)
    gap = back.on_volume("005930", 2_500 * MS, 900, 10)
    assert gap is not None and gap.missing_volume is None and back.chain_resets == 1


def test_a_silence_is_measured_by_the_trade_that_ends_it() -> None:
    """A pause the chain proves empty is a quiet symbol (0 shares: gap recovery asks
    nothing); one with shares missing is one gap, the silence, never a second volume-chain
    gap over the same trades."""
    d = detector()
    d.on_tick("005930", 2_000 * MS, 2_000 * MS)
    d.on_volume("005930", 2_000 * MS, 1_000, 10)
    assert d.on_tick("005930", 5_000 * MS, 5_000 * MS) is None  # 3 s: a silence, held
    quiet = d.on_volume("005930", 5_000 * MS, 1_020, 20)
    assert quiet is not None and quiet.reason == "silence"
    assert (quiet.start_ns, quiet.end_ns, quiet.missing_volume) == (2_000 * MS, 5_000 * MS, 0)
    assert d.on_tick("005930", 9_000 * MS, 9_000 * MS) is None
    lossy = d.on_volume("005930", 9_000 * MS, 1_100, 30)
    assert lossy is not None and lossy.reason == "silence"
    assert (lossy.missing_volume, lossy.cum_before, lossy.cum_after) == (50, 1_020, 1_070)
    assert not d.awaiting
    # No chain known yet (the chain off, or its first trade): the silence goes out at once
    fresh = detector()
    fresh.on_tick("005930", 2_000 * MS, 2_000 * MS)
    gap = fresh.on_tick("005930", 5_000 * MS, 5_000 * MS)
    assert gap is not None and gap.missing_volume is None
