"""The Track A worker in Nextrade's after-market: after KRX's closing cycle, Nextrade's cycles
ask the members it trades for its prices (FID NX), each stored with its venue and session;
without a word of which those are, they are empty.
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import pytest

from observer.calendar.phases import KST
from tests.support import wait_until
from tests.track_a.conftest import DAY, NEXTRADE, STOCKS, Session

# Each test starts a worker a few wall seconds before the simulated boundary it is tested at:
# at the lower priority, on a slow or loaded machine, it was not up in time (`timed`).
pytestmark = pytest.mark.timed


def test_nextrade_cycles_ask_its_names_after_krx_s_close(tmp_path: Path) -> None:
    # 15:22 at 100x: the 15:20 cycle in force first, then KRX's closing cycle at 15:30 (4.8
    # wall seconds after the clock starts), Nextrade's at 15:40, 15:50 and 16:00.
    start = datetime.combine(DAY, time(15, 22), tzinfo=KST)
    session = Session(tmp_path, start, 100, accounts=1, track_a="nextrade = true\n")
    members = STOCKS[:60]
    listed = sorted(s for s in members if s in NEXTRADE)
    assert 0 < len(listed) < len(members)
    try:
        session.publish_universe(members)
        session.start()
        query = (
            "select cycle_id, venue, universe_size, succeeded, overran from track_a_cycles "
            "where cycle_id >= '20261120-1530'"
        )
        cycles = wait_until(
            lambda: (
                (rows := session.rows(f"{query} order by scheduled_ns")) and len(rows) >= 4 and rows
            ),
            60,
            "KRX's closing cycle and three of Nextrade's",
        )
        assert [(*c[:4], bool(c[4])) for c in cycles[:4]] == [
            ("20261120-1530", "KRX", 60, 60, False),
            ("20261120-1540", "NXT", len(listed), len(listed), False),
            ("20261120-1550", "NXT", len(listed), len(listed), False),
            ("20261120-1600", "NXT", len(listed), len(listed), False),
        ]
        rows = session.rows(
            "select venue, trading_session, symbol from price_snapshots "
            "where cycle_id = '20261120-1550'"
        )
        assert sorted(symbol for _, _, symbol in rows) == listed
        assert {(venue, trading) for venue, trading, _ in rows} == {("NXT", "after_market")}
        krx = session.rows(
            "select distinct venue from price_snapshots where cycle_id = '20261120-1530'"
        )
        assert krx == [("KRX",)]
        # A universe that does not know which names Nextrade trades (a paper account, or
        # CTPF1002R failing): Nextrade's cycles are empty at once, said once in the log.
        session.publish_universe(members, nextrade=False)
        empty = wait_until(
            lambda: session.rows(f"{query} and universe_size = 0 and venue = 'NXT'"),
            60,
            "an empty Nextrade cycle",
        )
        assert all(not overran for *_, overran in empty), empty
        said = "is known to trade on Nextrade: its cycles are empty"
        assert session.log.read_text().count(said) == 1
    finally:
        session.close()
