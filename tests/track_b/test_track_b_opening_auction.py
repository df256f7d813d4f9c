"""Track B through KRX's opening auction: the idle sessions hold the expected matches."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import wait_until
from tests.track_b.test_track_b import rows
from tests.track_b.test_track_b_after_market import (
    LONGER,
    NXT,
    UNIVERSE,
    VENUES,
    kst_ns,
    sim_day,
)


def test_the_opening_auction_s_expected_matches_are_stored_and_released_after_the_match(
    tmp_path: Path,
) -> None:
    """08:47 at 10x, 60x from 08:49: Nextrade's pre-market ends at 08:50 and its slots are
    released; then every universe name's KRX expected matches are registered (no slot)
    until the 09:00 match and 30 s, every record the simulator sent is stored once, dated
    in the opening auction, and no KRX feed is a slot before KRX's day."""
    with sim_day(tmp_path, VENUES, start="08:47", faster="08:49") as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        wait_until(lambda: realtime.released["H0STANC0"] == len(UNIVERSE), 120, "the auction's end")
        assert sim.sim.clock.now_ns() >= kst_ns("09:00:30")
        sent = realtime.records_sent["H0STANC0"]
        assert sent > 0 and realtime.registered["H0STANC0"] == len(UNIVERSE)
        stored = "select count(*) from auction_expected"
        wait_until(lambda: rows(url, stored) == [(sent,)], 30, "every expected match stored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        found = rows(
            url,
            "select symbol, min(exchange_ns), max(exchange_ns), count(distinct hour_class), "
            "min(trading_session), max(trading_session), min(venue) from auction_expected "
            "group by symbol",
        )
        assert sorted(r[0] for r in found) == sorted(UNIVERSE)
        for _, first, last, classes, session, same, venue in found:
            assert kst_ns("08:50:00") <= first and last <= kst_ns("09:00:00")
            assert (classes, session, same, venue) == (
                1,
                "opening_auction",
                "opening_auction",
                "KRX",
            )
        assert rows(url, "select distinct hour_class from auction_expected") == [("B",)]
        assert not rows(url, "select symbol from slot_events where venue = 'KRX'")
        assert not realtime.records_sent["H0STCNT0"]


def test_through_the_closing_auction_program_trading_s_registration_holds_expected_matches(
    tmp_path: Path,
) -> None:
    """15:18 at 10x, 60x from 15:20, program trading on: at 15:20 each held name's KRX
    program trading becomes its expected matches, and back at 15:29:50 before the match;
    Nextrade's program trading stays. Every expected match sent is stored, dated in the
    closing auction, and the 15:30 match's program trading is stored."""
    # Nextrade's own auction from 15:30 apart (the next test's)
    settings = "program_trading = true\nnxt_after_market_auction = false\n"
    with sim_day(tmp_path, VENUES, "15:18", "15:20", registrations=8, track_b=settings) as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        wait_until(
            lambda: realtime.released["H0STANC0"] == len(UNIVERSE) > 0, 120, "the switch back"
        )
        assert realtime.registered["H0STANC0"] == len(UNIVERSE)
        assert not realtime.released["H0NXPGM0"]  # Nextrade's program trading stayed
        at_match = (  # the simulator's 15:30 bar trades through its minute
            "select count(*) from program_trades where venue = 'KRX' and exchange_ns "
            f"between {kst_ns('15:30:00')} and {kst_ns('15:30:59')}"
        )
        wait_until(lambda: rows(url, at_match)[0][0] >= 1, 60, "the match's program trading")
        sent = realtime.records_sent["H0STANC0"]
        stored = "select count(*) from auction_expected"
        wait_until(lambda: rows(url, stored) == [(sent,)], 30, "every expected match stored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        found = rows(
            url,
            "select min(exchange_ns), max(exchange_ns), min(hour_class), max(hour_class), "
            "min(trading_session), count(distinct symbol) from auction_expected",
        )
        first, last, low, high, session, names = found[0]
        assert kst_ns("15:20:00") <= first and last <= kst_ns("15:29:50")
        assert (low, high, session, names) == ("A", "A", "closing_auction", len(UNIVERSE))


def test_through_nextrade_s_after_market_auction_its_program_trading_holds_its_expected_matches(
    tmp_path: Path,
) -> None:
    """15:28 at 10x, 60x from 15:30, program trading on: at 15:30 each held Nextrade name's
    Nextrade program trading becomes Nextrade's expected matches (H0NXANC0), and back at
    15:39:50 before its 15:40 match; every expected match sent is stored, dated in
    Nextrade's opening auction, and the after-market's program trading after it."""
    settings = "program_trading = true\n"
    with sim_day(tmp_path, LONGER, "15:28", "15:30", registrations=8, track_b=settings) as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        wait_until(lambda: realtime.released["H0NXANC0"] == len(NXT), 120, "the switch back")
        assert realtime.registered["H0NXANC0"] == len(NXT)
        after = (
            "select count(distinct symbol) from program_trades where venue = 'NXT' and "
            f"exchange_ns > {kst_ns('15:40:00')}"
        )
        wait_until(lambda: rows(url, after)[0][0] == len(NXT), 60, "the after-market's programs")
        sent = realtime.records_sent["H0NXANC0"]
        stored = "select count(*) from auction_expected where venue = 'NXT'"
        wait_until(lambda: rows(url, stored) == [(sent,)], 30, "every expected match stored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        found = rows(
            url,
            "select min(exchange_ns), max(exchange_ns), min(trading_session), "
            "max(trading_session), count(distinct symbol) from auction_expected "
            "where venue = 'NXT'",
        )
        first, last, session, same, names = found[0]
        assert sent > 0 and kst_ns("15:30:00") < first and last <= kst_ns("15:39:50")
        assert (session, same, names) == ("opening_auction", "opening_auction", len(NXT))
        # No Nextrade program trade falls in the auction: none prints before its match.
        assert not rows(
            url,
            "select symbol from program_trades where venue = 'NXT' and exchange_ns > "
            f"{kst_ns('15:30:00')} and exchange_ns < {kst_ns('15:40:00')}",
        )
