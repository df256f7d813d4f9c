"""Track B through KRX's opening auction: the idle sessions hold the expected matches."""

from __future__ import annotations

import signal
from datetime import date
from pathlib import Path

import pytest

from harness.sim.market import Market
from observer.calendar.trading import TradingCalendar
from tests.support import wait_until
from tests.track_b.test_track_b import rows, stored_as_sent
from tests.track_b.test_track_b_after_market import (
    DAY,
    LONGER,
    MARKET,
    NXT,
    UNIVERSE,
    VENUES,
    kst_ns,
    sim_day,
)
from workers.track_b.session_codes import SESSION_DISAGREES

# Each test starts a worker a few wall seconds before the simulated boundary it is tested at:
# at the lower priority, on a slow or loaded machine, it was not up in time (`timed`).
pytestmark = pytest.mark.timed

FIRST = date(2027, 1, 4)  # the year's first session: KRX from 10:00, Nextrade from 10:00:30


def test_the_opening_auction_s_expected_matches_are_stored_and_released_after_the_match(
    tmp_path: Path,
) -> None:
    """08:47 at 10x, 60x from 08:49: Nextrade's pre-market ends at 08:50 and its slots are
    released; then every universe name's KRX expected matches are registered (no slot)
    until 10 s before the 09:00 match (the first half hour's trade feeds take over for its
    print), every record the simulator sent is stored once, dated in the opening auction,
    and no KRX feed is a slot before KRX's day."""
    with sim_day(tmp_path, VENUES, start="08:47", faster="08:49") as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        wait_until(lambda: realtime.released["H0STANC0"] == len(UNIVERSE), 120, "the auction's end")
        assert sim.sim.clock.now_ns() >= kst_ns("08:59:50")
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
        # The first half hour's trades come from the match on (the next test's): no KRX
        # trade before it (Nextrade's pre-market's are its slots').
        early = f"venue = 'KRX' and exchange_ns < {kst_ns('09:00:00')}"
        assert not rows(url, f"select 1 from trade_ticks where {early}")


def test_through_the_closing_auction_program_trading_s_registration_holds_expected_matches(
    tmp_path: Path,
) -> None:
    """15:18 at 10x, 60x from 15:20, program trading on: at 15:20 each held name's KRX
    program trading becomes its expected matches, and back at 15:29:50 before the match;
    Nextrade's program trading stays. Every expected match sent is stored, dated in the
    closing auction, and the 15:30 match's program trading is stored."""
    # Nextrade's own auction from 15:30 apart (the next test's)
    settings = (
        'feeds.regular = ["trades", "program"]\n'
        'feeds.krx_closing_auction = ["trades", "auction"]\n'
        'feeds.nxt_after_market = ["trades", "program"]\n'
    )
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
    settings = (
        'feeds.regular = ["trades", "program"]\n'
        'feeds.krx_closing_auction = ["trades", "auction"]\n'
        'feeds.nxt_after_market = ["trades", "auction"]\n'
    )
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


@pytest.mark.parametrize(("day", "late"), [(DAY, 0), (FIRST, 1)], ids=["ordinary", "first_session"])
def test_the_opening_auction_s_names_hold_their_trades_through_the_first_half_hour(
    tmp_path: Path, day: date, late: int
) -> None:
    """08:57 at 10x, 60x from 09:00: after the 09:00 match (and 30 s) the auction's names
    hold their trade feeds, KRX's and Nextrade's, until full operation at 09:30, where the
    slots take over. Every trade sent is stored, each minute of the half hour has the
    names' trades on both venues, labelled regular, and no slot is placed before 09:30.
    On the year's first session (the observer's table and the simulator's) all of it
    ``late`` hours later: KRX's match at 10:00, Nextrade from 10:00:30 without a pre-market."""

    def at(text: str) -> int:  # an ordinary day's time of ``day``, as late as its opening
        hours, rest = text.split(":", 1)
        return kst_ns(f"{int(hours) + late:02d}:{rest}", day)

    start, faster = f"{8 + late:02d}:57", f"{9 + late:02d}:00"
    assert set(NXT) <= MARKET.nxt_eligible(day)  # the same names trade there on either day
    # 18 wall seconds to 09:00 for Track B to start and register (12 were too few for a
    # loaded 2-core machine: KRX's 09:00:00 print was sent before the trade feeds were held)
    with sim_day(tmp_path, "", start=start, faster=faster, day=day) as running:
        url, sim, proc = running.url, running.sim, running.start()
        clock = sim.sim.clock
        wait_until(lambda: clock.now_ns() >= at("09:31:00"), 180, "09:31")
        realtime = sim.sim.realtime
        assert realtime.registered["H0STCNT0"] >= len(UNIVERSE)
        assert realtime.registered["H0NXCNT0"] >= len(NXT)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        sent = realtime.records_sent
        stored_as_sent(url, {"KRX": sent["H0STCNT0"], "NXT": sent["H0NXCNT0"]})
        half_hour = rows(
            url,
            "select venue, symbol, count(distinct exchange_ns / 60000000000), "
            "min(trading_session), max(trading_session) from trade_ticks "
            f"where exchange_ns >= {at('09:01:00')} and exchange_ns < "
            f"{at('09:29:00')} group by venue, symbol",
        )
        found = {(venue, symbol): rest for venue, symbol, *rest in half_hour}
        assert found.keys() == {("KRX", s) for s in UNIVERSE} | {("NXT", s) for s in NXT}
        for minutes, session, same in found.values():
            assert minutes == 28 and session == same == "regular"
        # KRX's opening print, at its 09:00:00 match: the trade feeds were there for it.
        matches = rows(
            url,
            "select distinct symbol from trade_ticks where venue = 'KRX' and "
            f"exchange_ns = {at('09:00:00')} and trading_session = 'opening_auction'",
        )
        assert sorted(m[0] for m in matches) == sorted(UNIVERSE)
        # Nothing before the match: Nextrade's pre-market had ended at 08:50, or never was.
        assert not rows(url, f"select 1 from trade_ticks where exchange_ns < {at('09:00:00')}")
        first_slot = rows(url, "select min(produced_ns) from slot_events")[0][0]
        assert first_slot is None or first_slot >= at("09:29:50")


def test_a_market_that_kept_its_hours_on_the_year_s_first_session_is_alerted(
    tmp_path: Path,
) -> None:
    """The other way (`Market(late_days=False)`): Nextrade trading at 09:59:50 where the
    table says it opens at 10:00:30. What Track B hears is stored under the record's session,
    and the disagreement with the hours is alerted, naming the venue and the instant."""
    kept = Market(19, TradingCalendar(), stocks=200, etfs=10, late_days=False)
    with sim_day(tmp_path, "", start="09:57", faster="10:00", day=FIRST, market=kept) as running:
        url, sim, proc = running.url, running.sim, running.start()
        clock = sim.sim.clock
        wait_until(lambda: clock.now_ns() >= kst_ns("10:05:00", FIRST), 180, "10:05")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        early = rows(
            url,
            "select distinct venue from trade_ticks where exchange_ns < "
            f"{kst_ns('10:00:00', FIRST)}",
        )
        assert ("NXT",) in early
        alerted = wait_until(
            lambda: rows(
                url,
                f"select message from alerts where code = '{SESSION_DISAGREES}' "
                "and message like 'NXT %'",
            ),
            30,
            "the disagreement alerted",
        )
        assert "where the venues' hours say no session" in alerted[0][0]


def test_with_the_first_half_hour_off_nothing_is_registered_before_the_context_sync(
    tmp_path: Path,
) -> None:
    """The seed's half hour: nothing streams from the opening auction's end to 09:29:50."""
    with sim_day(
        tmp_path,
        VENUES,
        start="08:58",
        faster="09:00",
        track_b="feeds.krx_opening_half_hour = []\n",
    ) as day:
        sim, proc = day.sim, day.start()
        clock = sim.sim.clock
        wait_until(lambda: clock.now_ns() >= kst_ns("09:10:00"), 120, "09:10")
        assert proc.poll() is None
        assert not sim.sim.realtime.registered["H0STCNT0"]
        assert not sim.sim.realtime.records_sent["H0STCNT0"]
