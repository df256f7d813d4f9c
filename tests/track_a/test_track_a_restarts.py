"""A Track A killed or restarted mid-cycle: it resumes without a duplicate, asks no symbol
twice while the writer is down, and summarises a cycle no run finished.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import timing_over, wait_until
from tests.track_a.conftest import NINE, STOCKS, Session


def test_a_killed_worker_resumes_its_cycle_without_a_duplicate(tmp_path: Path) -> None:
    # Real time, one account at 40/s x 0.55 (22/s): 120 symbols take about 5.5 s.
    session = Session(
        tmp_path,
        NINE + timedelta(seconds=1),
        1,
        accounts=1,
        rate=40,
        track_a="nextrade = false\nuniverse_alert_s = 1\n",
    )
    try:
        session.start()
        # No universe yet: the worker waits for it and says so.
        wait_until(
            lambda: (
                session.rows("select count(*) from alerts where code = 'track_a_no_universe'")
                == [(1,)]
            ),
            60,
            "the missing-universe alert",
        )
        # Killed while its alert is open: the next run resolves it when the universe comes.
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        session.start()
        session.publish_universe(STOCKS[:120])
        wait_until(
            lambda: session.rows("select count(*) from price_snapshots")[0][0] >= 30,
            60,
            "a third of the cycle",
        )
        # The universe came: the alert's condition is over, and Track A says so, once.
        wait_until(
            lambda: (
                session.rows("select code from alert_resolutions") == [("track_a_no_universe",)]
            ),
            60,
            "the alert resolved",
        )
        assert session.rows("select count(*) from alerts where code = 'track_a_no_universe'") == [
            (1,)
        ]
        session.proc.kill()
        session.proc.wait(30)
        before = session.rows("select count(*) from price_snapshots")[0][0]
        assert before < 120
        session.start()
        cycle = wait_until(
            lambda: session.rows(
                "select carried, succeeded, failed, universe_size, requested from track_a_cycles"
            ),
            60,
            "the resumed cycle's summary",
        )[0]
        carried, succeeded, failed, size, requested = cycle
        assert size == 120 and failed == 0
        assert carried >= before and carried + succeeded == 120 and requested == succeeded
        stored = session.rows("select count(*), count(distinct symbol) from price_snapshots")
        assert stored == [(120, 120)]  # every symbol once: nothing lost, nothing twice
        session.proc.send_signal(signal.SIGTERM)
        assert session.proc.wait(30) == 0
    finally:
        session.close()


@pytest.mark.timed
def test_a_restart_while_the_writer_is_down_asks_no_symbol_twice(tmp_path: Path) -> None:
    """Killed mid-cycle with the writer down, restarted, the writer back only after the cycle:
    the cycle is not resumed blind, so no symbol of it is asked and stored twice (the restart
    says so: a fixed wait for the writer, of any length, would resume instead, or time out
    and resume blind); the next cycle runs whole."""
    session = Session(tmp_path, NINE + timedelta(minutes=7, seconds=30), 4, accounts=1, rate=40)
    try:
        session.publish_universe(STOCKS[:120])
        session.writer.kill()
        session.start()
        asked = session.sim.sim.calls
        wait_until(lambda: asked["FHKST01010100"] >= 10, 60, "ten symbols asked")
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        session.start()
        ten = int((NINE + timedelta(minutes=10, seconds=3)).timestamp() * 1e9)
        wait_until(lambda: session.clock.now_ns() > ten, 120, "the 09:00 cycle over")
        session.writer.start()
        wait_until(
            lambda: (
                session.rows("select count(*) from track_a_cycles where cycle_id = '20261120-0910'")
                == [(1,)]
            ),
            60,
            "the 09:10 cycle summarised",
        )
        twice = session.rows(
            "select cycle_id, symbol from price_snapshots group by 1, 2 having count(*) > 1"
        )
        assert twice == []
        assert "nothing is resumed" in session.log.read_text()
        # The 09:00 cycle the killed run began is summarised once the writer is back (cut
        # off, its stored symbols carried, the rest missing and alerted), not never.
        query = (
            "select carried, universe_size, overran, length(missing) > 0 from track_a_cycles "
            "where cycle_id = '20261120-0900'"
        )
        [(carried, size, overran, listed)] = wait_until(lambda: session.rows(query), 60, "09:00")
        [(stored,)] = session.rows(
            "select count(*) from price_snapshots where cycle_id = '20261120-0900'"
        )
        # (Asked ten; an answer within the outbox's linger when killed is not stored.)
        assert stored > 0 and (carried, size, overran, listed) == (stored, 120, 1, 1)
        alerts = "select message from alerts where code = 'track_a_missing'"
        missing = f"cycle 20261120-0900: {120 - stored} of 120 symbols missing (cut off"
        wait_until(
            lambda: [m for (m,) in session.rows(alerts) if m.startswith(missing)],
            30,
            "the 09:00 cycle's missing symbols alerted",
        )
    finally:
        session.close()


# Timed: ten of the 09:00 cycle must be stored in the 30 wall seconds before 09:10, which a
# start at the lower priority beside a timed day did not always reach (180 s once in CI).
@pytest.mark.timed
def test_a_cycle_no_run_finished_is_summarised_when_the_next_run_starts(tmp_path: Path) -> None:
    """Killed in the 09:00 cycle's last minute and started again after 09:10: the
    09:00 cycle gets its summary (cut off, the stored symbols carried, the rest missing,
    alerted) instead of none at all."""
    # From 09:09 (30 wall seconds before 09:10): a start slowed by a busy machine still
    # stores ten of the 09:00 cycle.
    session = Session(tmp_path, NINE + timedelta(minutes=9), 2, accounts=1, rate=4)
    nine = "select count(*) from price_snapshots where cycle_id = '20261120-0900'"
    try:
        session.publish_universe(STOCKS[:120])
        session.start()
        wait_until(lambda: session.rows(nine)[0][0] >= 10, 60, "ten snapshots stored")
        assert session.proc is not None
        session.proc.kill()
        session.proc.wait(30)
        ten = int((NINE + timedelta(minutes=10, seconds=2)).timestamp() * 1e9)
        wait_until(lambda: session.clock.now_ns() > ten, 60, "09:10")
        timing_over()  # what follows waits for the summary, whenever it comes
        session.start()
        query = (
            "select carried, universe_size, overran, length(missing) > 0 from track_a_cycles "
            "where cycle_id = '20261120-0900'"
        )
        [(carried, size, overran, listed)] = wait_until(lambda: session.rows(query), 60, "09:00")
        # What the killed run sent (its outbox delivered before the summary was written).
        [(stored,)] = session.rows(nine)
        assert stored >= 10 and (carried, size, overran, listed) == (stored, 120, 1, 1)

        def missing_alert() -> list[str]:  # published after the summary: stored a bit later
            alerts = session.rows("select message from alerts where code = 'track_a_missing'")
            return [m for (m,) in alerts if "20261120-0900" in m and f"{120 - stored} of 120" in m]

        assert wait_until(missing_alert, 30, "the 09:00 cycle's missing-symbols alert")
    finally:
        session.close()
