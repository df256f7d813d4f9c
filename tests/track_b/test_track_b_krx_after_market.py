"""Track B through KRX's after-market (16:00-20:00 since 2026-09-14): the held Nextrade names
gain KRX's feeds at its open without a trade lost on Nextrade's, the lowest-ranked released
where an account no longer fits, KRX's names placed again, and every trade the simulator sent
on each feed stored, labelled after-market."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from harness.sim.server import SimConfig
from tests.support import SimThread
from tests.track_b.test_track_b import rows, rows_once, stored_as_sent
from tests.track_b.test_track_b_after_market import KRX, NXT, kst_ns, sim_day
from workers.track_b.session_codes import SESSION_DISAGREES

# Each test starts a worker a few wall seconds before the simulated boundary it is tested at:
# at the lower priority, on a slow or loaded machine, it was not up in time (`timed`).
pytestmark = pytest.mark.timed

# Both after-markets cut to four minutes (to 16:04) for a test of seconds; KRX's other hours
# as shipped.
VENUES = (
    "[venues.krx]\nsessions = [\n"
    '  { session = "opening_auction", start = "08:20", end = "08:30" },\n'
    '  { session = "off_hours_close", start = "08:30", end = "08:40" },\n'
    '  { session = "opening_auction", start = "08:40", end = "09:00", match_at_end = true },\n'
    '  { session = "regular", start = "09:00", end = "15:20" },\n'
    '  { session = "closing_auction", start = "15:20", end = "15:30", match_at_end = true },\n'
    '  { session = "off_hours_close", start = "15:40", end = "16:00" },\n'
    '  { session = "after_market", start = "16:00", end = "16:04" },\n]\n'
    "[venues.nxt]\nsessions = [\n"
    '  { session = "pre_market", start = "08:00", end = "08:50" },\n'
    '  { session = "regular", start = "09:00:30", end = "15:20" },\n'
    '  { session = "opening_auction", start = "15:30", end = "15:40", match_at_end = true },\n'
    '  { session = "after_market", start = "15:40", end = "16:04" },\n]\n'
    'beside = [{ session = "off_hours_close", start = "15:30", end = "16:00" }]\n'
)


def _sent(sim: SimThread, tr_id: str) -> int:
    return sim.sim.realtime.records_sent[tr_id]


def test_krx_s_after_market_joins_nextrade_s_names_and_places_krx_s_again(
    tmp_path: Path,
) -> None:
    """15:57 at 10x, 60x from 15:59, 20x from 16:00, two accounts of three registrations:
    Nextrade's two names hold its feed (one registration each) until 16:00; then KRX's feed
    joins each (two) with no trade lost on Nextrade's, and the evaluation places KRX's names
    in the room left; all released at KRX's after-market's close and the grace (16:04:30)."""
    # 20x in the after-market: its first minutes are thin (six KRX trades of these names to
    # 16:04), so a join some wall seconds late on a loaded machine still hears some.
    with sim_day(tmp_path, VENUES, "15:57", "15:59", slower="16:00") as day:
        url, sim, proc = day.url, day.sim, day.start()
        released = rows_once(
            url,
            "select symbol, venue, produced_ns, reason from slot_events "
            f"where action = 'release' and produced_ns >= {kst_ns('16:04:30')}",
            6,
            "every feed released at KRX's after-market's close",
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        events = rows(
            url,
            "select action, symbol, venue, produced_ns, reason from slot_events order by seq",
        )
        # Before 16:00 Nextrade's names on Nextrade's feed alone
        first = [(a, s, v) for a, s, v, at, _ in events if at < kst_ns("16:00:00")]
        assert sorted(first) == sorted(("allocate", s, "NXT") for s in NXT)
        # At 16:00 KRX's feed joins them, and KRX's names take the room left
        opened = {(a, s, v, why) for a, s, v, at, why in events if at >= kst_ns("16:00:00")}
        joins = "KRX's after-market opens at 16:00: KRX's feeds join"
        assert {("allocate", s, "KRX", joins) for s in NXT} <= opened
        assert {("allocate", s, "KRX") for s in KRX} <= {(a, s, v) for a, s, v, _ in opened}
        for symbol in NXT:  # Nextrade's feed: one allocation, one release, nothing between
            assert [a for a, s, v, _, _ in events if (s, v) == (symbol, "NXT")] == [
                "allocate",
                "release",
            ]
        assert sorted((s, v) for s, v, _, _ in released) == sorted(
            [(s, "KRX") for s in NXT + KRX] + [(s, "NXT") for s in NXT]
        )
        assert {why for *_, why in released} == {"KRX's after-market ends at 16:04:30"}
        # Every trade sent on each feed stored once; KRX's from 16:00, labelled after-market
        assert _sent(sim, "H0STCNT0") > 0  # KRX's after-market traded on its feeds
        stored_as_sent(url, {"KRX": _sent(sim, "H0STCNT0"), "NXT": _sent(sim, "H0NXCNT0")})
        krx = rows(
            url,
            "select trading_session, min(exchange_ns), max(exchange_ns), count(distinct symbol) "
            "from trade_ticks where venue = 'KRX' group by trading_session",
        )
        assert len(krx) == 1 and krx[0][0] == "after_market" and krx[0][3] >= 1, krx
        assert kst_ns("16:00:00") <= krx[0][1] and krx[0][2] < kst_ns("16:04:00")
        # No feed dropped at the boundary: no gap but what quiet minutes may leave
        assert not rows(url, "select reason from gaps where reason != 'silence'")


def test_a_session_code_that_disagrees_with_the_hours_is_stored_as_kis_says_and_alerted_once(
    tmp_path: Path,
) -> None:
    """The other belief: KIS codes KRX's after-market records "2" (regular). Each is stored in
    the session its code names, counted against the hours, and the venue's day alerted once."""
    config = SimConfig(krx_after_market_code="2")
    with sim_day(tmp_path, VENUES, "15:58", "15:59", config=config) as day:
        url, proc = day.url, day.start()
        alerted = f"select subject, severity from alerts where code = '{SESSION_DISAGREES}'"
        rows_once(url, alerted, 1, "the disagreement alerted")
        after = kst_ns("16:02:00")
        late = f"select symbol from trade_ticks where venue = 'KRX' and exchange_ns >= {after}"
        rows_once(url, late, 1, "KRX's trades after 16:02")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert rows(url, alerted) == [("KRX 2026-11-20", "warning")]  # once, however many
        sessions = rows(
            url,
            "select trading_session, market_session, count(*) from trade_ticks "
            "where venue = 'KRX' group by trading_session, market_session",
        )
        assert [(s, c) for s, c, _ in sessions] == [("regular", "2")] and sessions[0][2] > 1


def test_a_track_b_killed_in_krx_s_after_market_takes_its_feeds_back(tmp_path: Path) -> None:
    """Killed (SIGKILL) once KRX's after-market holds its names (to 16:10 here): the next run
    takes every feed back (a process_restart gap each), releases none of them as the regular
    day's, and streams them to the close."""
    longer = VENUES.replace('end = "16:04"', 'end = "16:10"')
    with sim_day(tmp_path, longer, "15:57", "15:59") as day:
        url, proc = day.url, day.start()
        placed = (
            "select symbol, venue from slot_events where action = 'allocate' "
            f"and venue = 'KRX' and produced_ns >= {kst_ns('16:00:00')}"
        )
        held = rows_once(url, placed, 4, "KRX's after-market's feeds placed")
        proc.kill()
        proc.wait(30)
        killed = day.sim.sim.clock.now_ns()
        proc = day.start()
        released = (
            "select symbol, venue, reason from slot_events where action = 'release' "
            f"and produced_ns > {killed}"
        )
        after = rows_once(url, released, 6, "the feeds released at the close")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert {why for _, _, why in after} == {"KRX's after-market ends at 16:10:30"}
        assert {(s, v) for s, v, _ in after} >= {(s, v) for s, v in held}
        gaps = rows(url, "select symbol, venue from gaps where reason = 'process_restart'")
        assert {(s, v) for s, v in held} <= {(s, v) for s, v in gaps}


def test_a_name_under_a_measure_krx_s_after_market_excludes_holds_no_krx_feed_there(
    tmp_path: Path,
) -> None:
    """``[venues.krx] after_market_excludes`` naming 투자경고 (the UNCONFIRMED rule the other
    way; Nextrade's after-market taking it here): from 16:00 the warned Nextrade name keeps
    Nextrade's feed alone and KRX's never joins, the warned KRX name is never placed, the
    others as ever; no KRX trade of either stored, every trade sent stored."""
    warned = {NXT[1]: ("warning",), KRX[1]: ("warning",)}
    venues = VENUES.replace(
        "[venues.nxt]\n", 'after_market_excludes = ["warning"]\n[venues.nxt]\n'
    ).replace("beside = [", "after_market_excludes = []\nbeside = [")
    with sim_day(tmp_path, venues, "15:57", "15:59", measures=warned) as day:
        url, sim, proc = day.url, day.sim, day.start()
        closed = (
            "select symbol, venue from slot_events "
            f"where action = 'release' and produced_ns >= {kst_ns('16:04:30')}"
        )
        released = rows_once(url, closed, 4, "every feed released at KRX's after-market's close")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert sorted(released) == sorted(
            [(NXT[0], "KRX"), (NXT[0], "NXT"), (NXT[1], "NXT"), (KRX[0], "KRX")]
        )
        placed = rows(url, "select symbol, venue from slot_events where action = 'allocate'")
        assert (NXT[1], "NXT") in placed and (KRX[0], "KRX") in placed
        assert not {(s, "KRX") for s in warned} & set(placed)
        # (the evening's first minutes are quiet: KRX's feeds may carry no trade in them)
        assert _sent(sim, "H0NXCNT0") > 0
        stored_as_sent(url, {"KRX": _sent(sim, "H0STCNT0"), "NXT": _sent(sim, "H0NXCNT0")})
        krx = rows(url, "select distinct symbol from trade_ticks where venue = 'KRX'")
        assert {s for (s,) in krx} <= {NXT[0], KRX[0]}
