"""Track B on the combined feed (``[track_b.feeds] nextrade = "combined"``) across KRX's close,
Nextrade's break, its after-market's auction and 종가매매: every record sent is stored once,
each labelled with the session of the venue that printed it, never KRX's by default."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.track_b.test_track_b import rows, rows_once, stored_as_sent
from tests.track_b.test_track_b_after_market import (
    FASTER,
    NXT,
    START,
    UNIVERSE,
    VENUES,
    kst_ns,
    sim_day,
)

# Each test starts a worker a few wall seconds before the simulated boundary it is tested at:
# at the lower priority, on a slow or loaded machine, it was not up in time (`timed`).
pytestmark = pytest.mark.timed

COMBINED = '[track_b.feeds]\nnextrade = "combined"\n'


def test_the_combined_feed_across_the_close_is_stored_whole_each_trade_in_its_venue_s_session(
    tmp_path: Path,
) -> None:
    """15:18-15:20 at 10x, then at 60x to Nextrade's after-market's close (cut to 15:44): the
    Nextrade names hold the combined feed in place of both venues' (one registration each),
    the KRX names KRX's. Every record sent on each feed is stored. On the combined feed the
    last continuous minute is ``regular``; KRX's 15:30 match its closing auction's; the
    종가매매 prints beside (code "5") ``off_hours_close``; Nextrade's 15:40 match its
    after-market's opening auction's; what trades after it ``after_market``. Nothing in the
    hours disagrees with them."""
    with sim_day(tmp_path, VENUES, START, FASTER, track_b=COMBINED) as day:
        url, sim, proc = day.url, day.sim, day.start()
        released = rows_once(
            url,
            "select symbol, venue, produced_ns from slot_events where action = 'release' "
            f"and produced_ns < {kst_ns('16:00:00')}",  # KRX's after-market places them again
            len(UNIVERSE),
            "every feed released",
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        placed = rows(url, "select symbol, venue from slot_events where action = 'allocate'")
        names = {s: "combined" if s in NXT else "KRX" for s in UNIVERSE}
        assert sorted(placed) == sorted(names.items())
        assert {(s, v) for s, v, _ in released} == set(names.items())
        for symbol, venue, at in released:  # KRX's after its 15:30 match; the rest at 15:44
            assert at >= kst_ns("15:44:30" if venue == "combined" else "15:31:30"), symbol

        sent = sim.sim.realtime.records_sent
        stored_as_sent(url, {"KRX": sent["H0STCNT0"], "combined": sent["H0UNCNT0"]})
        assert "H0NXCNT0" not in sent
        labelled = rows(
            url,
            "select exchange_ns, market_session, trading_session, symbol from trade_ticks "
            "where venue = 'combined'",
        )
        assert {symbol for *_, symbol in labelled} == set(NXT)

        def expected(ns: int, code: str) -> str:
            if ns < kst_ns("15:20:00"):
                return "regular"
            if code == "5":
                return "off_hours_close"
            if ns == kst_ns("15:30:00"):
                return "closing_auction"
            if ns == kst_ns("15:40:00"):
                return "opening_auction"
            return "after_market" if ns > kst_ns("15:40:00") else "none between"

        wrong = [
            (ns, code, session)
            for ns, code, session, _ in labelled
            if session != expected(ns, code)
        ]
        assert not wrong, wrong[:5]
        sessions = {session for _, _, session, _ in labelled}
        assert {"closing_auction", "off_hours_close", "opening_auction", "after_market"} <= (
            sessions
        )
        # The simulator's Nextrade trades on to 20:00 past the 15:44 this test cuts the day
        # to: one that reached Track B before its release is outside the hours, the only
        # disagreement there may be.
        for (message,) in rows(
            url, "select message from alerts where code = 'track_b_session_disagrees'"
        ):
            assert "traded at 15:4" in message and "no session" in message, message
