"""Track B in Nextrade's pre-market: Nextrade's names on Nextrade's feed alone, from its open
to its end, every trade sent stored with its venue and session; nothing of KRX's before 09:30.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from observer.config.workers import GapRecoverySettings
from observer.db.slot_queries import watched_minutes
from tests.support import timing_over
from tests.track_b.test_track_b import rows, rows_once, stored_as_sent
from tests.track_b.test_track_b_after_market import NXT, kst_ns, sim_day

# Nextrade's pre-market cut to three minutes: Track B follows it from 08:00 to 08:03.
SHORT_PRE_MARKET = (
    "[venues.nxt]\nsessions = [\n"
    '  { session = "pre_market", start = "08:00", end = "08:03" },\n'
    '  { session = "regular", start = "09:00:30", end = "15:20" },\n'
    '  { session = "opening_auction", start = "15:30", end = "15:40", match_at_end = true },\n'
    '  { session = "after_market", start = "15:40", end = "20:00" },\n]\n'
)


@pytest.mark.timed
def test_nextrade_names_stream_its_pre_market_alone_and_are_released_at_its_end(
    tmp_path: Path,
) -> None:
    """07:58 at 10x, 60x from 07:59: the sessions open a minute before Nextrade's open; at
    08:00 both Nextrade names of the universe take a slot each (one registration: KRX's two
    others hold nothing before KRX trades), released at 08:03 and the grace (its last
    minute, 08:02, watched whole); every Nextrade trade the simulator sent them is stored
    once as pre_market; KRX's feed is never registered."""
    with sim_day(tmp_path, SHORT_PRE_MARKET, start="07:58", faster="07:59") as day:
        url, sim, proc = day.url, day.sim, day.start()
        released = rows_once(
            url,
            "select symbol, venue, trading_session, reason, produced_ns "
            "from slot_events where action = 'release' order by seq",
            2,
            "the pre-market's feeds released",
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        placed = rows(
            url,
            "select symbol, venue, trading_session, produced_ns from slot_events "
            "where action = 'allocate'",
        )
        assert sorted((s, v, t) for s, v, t, _ in placed) == [
            (s, "NXT", "pre_market") for s in sorted(NXT)
        ]
        assert all(kst_ns("08:00:00") <= at < kst_ns("08:00:30") for *_, at in placed)
        assert sorted((s, v, why) for s, v, _, why, _ in released) == [
            (s, "NXT", "Nextrade's pre-market ends at 08:03:30") for s in sorted(NXT)
        ]
        assert all(at >= kst_ns("08:03:30") for *_, at in released)
        # Each name's every minute watched, the pre-market's last (08:02) too: the minutes
        # the reconciliation holds against Nextrade's bars.
        spans = {s: [at] for s, _, _, at in placed}
        for s, *_, at in released:
            spans[s].append(at)
        edge = int(GapRecoverySettings().verify_edge_s * 1e9)
        for first, last in spans.values():
            watched = watched_minutes([(first, last)], edge, last)
            assert watched == [kst_ns("08:01:00"), kst_ns("08:02:00")]
        sent = sim.sim.realtime.records_sent
        assert sent["H0NXCNT0"] > 0
        stored_as_sent(url, {"NXT": sent["H0NXCNT0"]})
        assert not sent["H0STCNT0"]
        # Stamped in the pre-market: pre_market; after its end (08:03 here, not the
        # simulator's 08:50), before the release took effect: in no session.
        end = kst_ns("08:03:00")
        sessions = "select distinct trading_session from trade_ticks where exchange_ns"
        assert rows(url, f"{sessions} < {end}") == [("pre_market",)]
        assert rows(url, f"{sessions} >= {end}") in ([], [("",)])
        # Quiet minutes of a pre-market are no gaps; no session dropped.
        assert not rows(url, "select reason from gaps")


@pytest.mark.timed
def test_a_track_b_killed_in_the_pre_market_takes_nextrade_s_feeds_back(tmp_path: Path) -> None:
    """Killed (SIGKILL) in Nextrade's pre-market (to 08:30 here) holding its two names'
    Nextrade feeds: the next run takes them back on Nextrade's feed alone (a process_restart
    gap each, on Nextrade's venue), streams them and releases them at the pre-market's end."""
    # 07:58-08:06 at 10x (48 wall seconds: the kill near 08:01:30, the next run streaming
    # again within seconds), then 60x. Timed: at the lower priority beside a timed test a run's
    # start took a wall minute, and the test ran at 10x throughout (192 wall seconds).
    longer = SHORT_PRE_MARKET.replace('end = "08:03"', 'end = "08:30"')
    with sim_day(tmp_path, longer, start="07:58", faster="08:06") as day:
        url, sim, proc = day.url, day.sim, day.start()
        streamed = (
            "select distinct symbol from trade_ticks where venue = 'NXT' "
            f"and exchange_ns >= {kst_ns('08:01:00')}"
        )
        rows_once(url, streamed, 1, "a name's pre-market trades")
        proc.kill()
        proc.wait(30)
        killed = sim.sim.clock.now_ns()
        assert killed < kst_ns("08:05:00")  # the next run has the slow minutes to stream
        proc = day.start()
        released = (
            "select symbol, venue, reason, produced_ns from slot_events "
            f"where action = 'release' and produced_ns > {killed}"
        )
        after = rows_once(url, released, 2, "the pre-market's feeds released", 300)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        timing_over()  # what follows reads what it stored
        assert sorted((s, v, why) for s, v, why, _ in after) == [
            (s, "NXT", "Nextrade's pre-market ends at 08:30:30") for s in sorted(NXT)
        ]
        assert all(at >= kst_ns("08:30:30") for *_, at in after)
        gaps = rows(
            url,
            "select symbol, venue, start_ns, end_ns from gaps where reason = 'process_restart'",
        )
        assert sorted((s, v) for s, v, _, _ in gaps) == [(s, "NXT") for s in sorted(NXT)]
        assert all(start < killed < end for _, _, start, end in gaps), gaps
        again = "select distinct symbol from trade_ticks where venue = 'NXT' and received_ns > "
        assert sorted(s for (s,) in rows(url, f"{again}{killed}")) == sorted(NXT)
        # Taken back as they were held: Nextrade's feed alone, never KRX's.
        assert not rows(url, "select symbol from slot_events where venue = 'KRX'")
        assert not sim.sim.realtime.records_sent["H0STCNT0"]
