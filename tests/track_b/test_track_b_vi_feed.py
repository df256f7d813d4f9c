"""Track B's VI feed: the whole market's VIs on one registration of the first account."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from observer.calendar.phases import KST
from tests.support import wait_until
from tests.track_b.test_track_b import rows
from tests.track_b.test_track_b_after_market import DAY, MARKET, VENUES, sim_day
from workers.track_b.vi_feed import VI_FEED_REFUSED

FEED = 'vi_feed = "combined"\n'


def _first_vi(after: str, venue: str = "KRX") -> datetime:
    """The first VI on ``venue`` to start after ``after`` (KST) on the test day, of any listing
    (Nextrade's: of the stocks it trades)."""
    since = datetime.combine(DAY, datetime.strptime(after, "%H:%M").time(), KST)
    names = MARKET.listings if venue == "KRX" else MARKET.nxt_eligible(DAY)
    starts = [w[0] for s in names if (w := MARKET.vi_window(s, DAY, venue)) and w[0] > since]
    return min(starts)


def _hhmm(at: datetime) -> str:
    return f"{at:%H:%M}"


# Timed: Track B must register before the VI, two simulated minutes (12 wall seconds) after its
# start; at the lower priority beside the suite on a 2-core machine it registered after it.
@pytest.mark.timed
def test_every_vi_of_the_market_is_stored_from_one_registration_under_the_date(
    tmp_path: Path,
) -> None:
    """Five minutes before a Nextrade VI at 10x, 60x from three before: the first account
    registers H0UNVIC0 under 20261120, once; the VI's start and end (a stock nobody watches)
    arrive on it, and every record sent is stored once, with the venue it names (its
    EXCH_CLS_CODE: 2, Nextrade's static VIs since 2026-09-14; 1, KRX's)."""
    first = _first_vi("10:30", "NXT")
    start, faster = first - timedelta(minutes=5), first - timedelta(minutes=3)
    with sim_day(tmp_path, VENUES, _hhmm(start), _hhmm(faster), track_b=FEED) as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        wait_until(lambda: realtime.records_sent["H0UNVIC0"] >= 2, 120, "a VI's start and end")
        sent = realtime.records_sent["H0UNVIC0"]
        stored = "select count(*) from vi_notices"
        wait_until(lambda: rows(url, stored)[0][0] >= sent, 30, "every VI record stored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert realtime.registered["H0UNVIC0"] == 1 and not realtime.registered["H0STVIC0"]
        found = rows(
            url,
            "select symbol, applies, started_ns, ended_ns, venue, exchange, account, "
            "trading_session from vi_notices order by received_ns, applies desc",
        )
        assert len(found) == realtime.records_sent["H0UNVIC0"]  # each once
        start_ns = int(first.timestamp()) * 10**9
        (symbol,) = {r[0] for r in found if r[1] and r[2] == start_ns and r[5] == "2"}
        lifted = [r for r in found if r[0] == symbol and not r[1] and r[5] == "2"]
        assert lifted and lifted[0][3] == start_ns + 120 * 10**9  # two minutes later
        assert {(r[4], *r[6:8]) for r in found} == {("combined", "acct1", "regular")}
        assert {r[5] for r in found} <= {"1", "2"}


def test_a_refused_vi_feed_is_alerted_and_the_slots_go_on(tmp_path: Path) -> None:
    """A KIS that takes a symbol as the VI TRs' key, not the date: the registration refused
    raises a warning naming the setting; the trades stream on. A later run KIS takes it from
    resolves the warning."""
    with sim_day(tmp_path, VENUES, "10:30", "10:31", track_b=FEED) as day:
        day.sim.sim.config.vi_tr_key = "symbol"
        url, sim, proc = day.url, day.sim, day.start()
        query = f"select severity, subject, message from alerts where code = '{VI_FEED_REFUSED}'"
        wait_until(lambda: rows(url, query), 60, "the refusal alerted")
        wait_until(lambda: rows(url, "select count(*) from trade_ticks")[0][0] > 0, 60, "trades")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        ((severity, subject, message),) = rows(url, query)
        assert (severity, subject) == ("warning", "acct1")
        assert "combined VI feed under 20261120" in message and "[track_b] vi_feed" in message
        assert not sim.sim.realtime.registered["H0UNVIC0"]
        sim.sim.config.vi_tr_key = "any"  # the next run's registration is taken
        proc = day.start()
        resolved = f"select subject from alert_resolutions where code = '{VI_FEED_REFUSED}'"
        wait_until(lambda: rows(url, resolved) == [("acct1",)], 60, "the refusal resolved")
        assert sim.sim.realtime.registered["H0UNVIC0"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
