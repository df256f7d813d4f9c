"""Track B on the CSAT day (2026-11-19), which the table and the simulator both shift an hour:
KRX's feeds stream its regular session to 16:20 and its closing auction to the 16:30 match,
and end at 16:31:30, not at an ordinary day's 15:31:30; Nextrade's names keep Nextrade's feed
through its 16:20-16:30 break into its after-market (its auction matched at 16:40)."""

from __future__ import annotations

import signal
from datetime import date
from pathlib import Path

import pytest

from tests.track_b.test_track_b import rows, rows_once, stored_as_sent
from tests.track_b.test_track_b_after_market import NXT, UNIVERSE, kst_ns, sim_day

pytestmark = pytest.mark.timed

CSAT = date(2026, 11, 19)
# Nextrade's CSAT day as shipped (no pre-market, its main session from 10:00:30 to 16:20,
# 종가매매 16:30-17:00), its after-market cut to four minutes after its 16:40 match.
VENUES = (
    "[[venues.nxt.days]]\nday = 2026-11-19\nsessions = [\n"
    '  { session = "regular", start = "10:00:30", end = "16:20" },\n'
    '  { session = "opening_auction", start = "16:30", end = "16:40", match_at_end = true },\n'
    '  { session = "after_market", start = "16:40", end = "16:44" },\n]\n'
    'beside = [{ session = "off_hours_close", start = "16:30", end = "17:00" }]\n'
)


def at(clock: str) -> int:
    return kst_ns(clock, CSAT)


def test_on_the_csat_day_krx_s_feeds_stream_to_its_16_30_match_and_nextrade_s_beyond(
    tmp_path: Path,
) -> None:
    """16:18-16:20 at 10x, then 60x to Nextrade's after-market's close (16:44:30): each KRX
    feed streams its regular session's last minutes and its closing auction, labelled by the
    day's own hours, and ends at 16:31:30; Nextrade's feeds end at 16:44:30; every trade the
    simulator sent on each feed is stored."""
    with sim_day(tmp_path, VENUES, "16:18", "16:20", day=CSAT) as day:
        url, sim, proc = day.url, day.sim, day.start()
        released = rows_once(
            url,
            "select symbol, venue, produced_ns, reason from slot_events "
            "where action = 'release' order by seq",
            len(UNIVERSE) + len(NXT),
            "every feed released",
        )
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        by_feed = {(symbol, venue): (when, why) for symbol, venue, when, why in released}
        assert by_feed.keys() == {(s, "KRX") for s in UNIVERSE} | {(s, "NXT") for s in NXT}
        for symbol in UNIVERSE:
            when, why = by_feed[symbol, "KRX"]
            assert at("16:31:30") <= when < at("16:32:00"), why
            assert why.startswith("Track B ends KRX's feeds at 16:31:30"), why
        for symbol in NXT:
            when, why = by_feed[symbol, "NXT"]
            assert when >= at("16:44:30") and why == "Nextrade's after-market ends at 16:44:30"
        sent = sim.sim.realtime.records_sent
        assert sent["H0STCNT0"] > 0 and sent["H0NXCNT0"] > 0
        stored_as_sent(url, {"KRX": sent["H0STCNT0"], "NXT": sent["H0NXCNT0"]})
        # KRX's trades in the day's own sessions: regular to 16:20, the auction's match at 16:30
        krx = dict(
            rows(
                url,
                "select trading_session, max(exchange_ns) from trade_ticks where venue = 'KRX' "
                "group by trading_session",
            )
        )
        assert krx.keys() == {"regular", "closing_auction"}, krx
        assert at("16:18:00") <= krx["regular"] < at("16:20:00")
        assert krx["closing_auction"] == at("16:30:00")
        # Nextrade's: its main session to 16:20, its after-market from the 16:40 match
        nxt = rows(
            url,
            "select trading_session, min(exchange_ns), max(exchange_ns) from trade_ticks "
            "where venue = 'NXT' and market_session != '5' group by trading_session",
        )
        spans = {session: (first, last) for session, first, last in nxt}
        assert spans["regular"][1] < at("16:20:00")
        assert spans["after_market"][0] >= at("16:40:00")
        assert set(spans) <= {"regular", "opening_auction", "after_market"}, spans
        assert not rows(url, "select reason from gaps where reason != 'silence'")
