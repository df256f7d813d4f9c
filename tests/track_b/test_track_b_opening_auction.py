"""Track B through KRX's opening auction: the idle sessions hold the expected matches."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import wait_until
from tests.track_b.test_track_b import rows
from tests.track_b.test_track_b_after_market import UNIVERSE, VENUES, kst_ns, sim_day


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
    with sim_day(
        tmp_path, VENUES, "15:18", "15:20", registrations=8, track_b="program_trading = true\n"
    ) as day:
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
