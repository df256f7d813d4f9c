"""Minutes without trades: recovered as such at once, when KIS's answer proves them quiet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from bus.events import GapDetected
from bus.producer import Producer
from observer.phases import KST
from tests.support import db_rows, wait_until
from tests.test_gap_recovery import MARKET, STOCKS, Rig

S = 1_000_000_000
DAY = (2026, 11, 20)


def _at(hour: int, minute: int, second: int = 0) -> int:
    return int(datetime(*DAY, hour, minute, second, tzinfo=KST).timestamp()) * S


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)  # the simulator at 10:30, 1x
    yield made
    made.close()


def _gap(symbol: str, start: int, end: int) -> GapDetected:
    return GapDetected(gap_id=f"acct1:{symbol}:{start}", symbol=symbol, start_ns=start,
                       end_ns=end, reason="disconnect", account="acct1")  # fmt: skip


@pytest.mark.slow
def test_a_gap_in_minutes_without_trades_is_recovered_at_once_and_an_empty_answer_is_retried(
    rig: Rig,
) -> None:
    quiet, silent = STOCKS[0], STOCKS[1]
    # ``quiet`` does not trade at 10:05 and 10:06; ``silent`` not from 09:30 to 10:15, so
    # that KIS's answer for a gap at 10:10 holds no bar at all (nothing proves the gap quiet).
    rig.sim.sim.faults.no_trades = {
        quiet: {"1005", "1006"},
        silent: {f"{m // 60:02d}{m % 60:02d}" for m in range(9 * 60 + 30, 10 * 60 + 16)},
    }
    rig.start()
    calm = _gap(quiet, _at(10, 5, 20), _at(10, 6, 10))
    empty = _gap(silent, _at(10, 10), _at(10, 10, 30))
    with Producer("track_b", rig.writer.ingest, rig.outbox) as producer:
        producer.send(calm)
        producer.send(empty)
        assert producer.wait_acked(30)
    url = rig.url
    done = wait_until(
        lambda: db_rows(url, "select state, bars, detail from gaps where gap_id = "
                             f"'{calm.gap_id}' and state = 'recovered'"),
        60, "the quiet gap recovered",
    )  # fmt: skip
    assert done == [("recovered", 0, "no trades in 10:05-10:06")]
    history = db_rows(url, f"select state from gap_events where gap_id = '{calm.gap_id}' "
                           "order by seq")  # fmt: skip
    assert [s for (s,) in history] == ["detected", "recovering", "recovered"]  # one attempt
    assert not db_rows(url, f"select 1 from minute_bars where gap_id = '{calm.gap_id}'")
    # The empty answer is a failed attempt, retried; once KIS has the bar, it is recovered.
    wait_until(
        lambda: f"gap {empty.gap_id}: attempt 1 failed (KIS answered no minute bars up to "
        "10:10)" in rig.log.read_text(),
        60, "the empty answer retried",
    )  # fmt: skip
    assert db_rows(url, f"select state from gaps where gap_id = '{empty.gap_id}'") == [
        ("recovering",)
    ]
    rig.sim.sim.faults.no_trades.pop(silent)
    wait_until(
        lambda: db_rows(url, f"select state from gaps where gap_id = '{empty.gap_id}'")
        == [("recovered",)],
        60, "the bar recovered once KIS has it",
    )  # fmt: skip
    path = MARKET.day_path(silent, datetime(*DAY).date())
    i = 70  # 10:10 is the 71st minute of the session
    assert db_rows(url, f"select volume from minute_bars where gap_id = '{empty.gap_id}'") == [
        (int(path.volume[i]),)
    ]
