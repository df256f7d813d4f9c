"""No task dies unseen: a failing long-lived task ends its process, which is restarted.

`observer.runtime.alongside` runs the supervisor's scheduler, sampler and control socket,
gap recovery's servers and heartbeat, and Track B's heartbeat and sessions in one TaskGroup.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from bus.events import GapDetected
from bus.producer import Producer
from harness.sim.server import SimConfig
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar, _xkrx_sessions
from observer.errors import ConfigError
from observer.runtime import ShortTasks, alongside
from tests.gap_recovery.conftest import MARKET, STOCKS
from tests.support import SimThread, SupervisorProcess, db_rows, wait_until

S = 1_000_000_000
HALF_TEN = datetime(2026, 11, 20, 10, 30, tzinfo=KST)


# ------------------------------------------------------------------ the helper


async def _forever() -> None:
    await asyncio.Event().wait()


def test_a_failing_task_cancels_the_body_and_its_error_leaves_the_block() -> None:
    reached: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise OSError("disk full")

    async def main() -> None:
        sibling = asyncio.ensure_future(asyncio.sleep(0))  # not ours: untouched
        async with alongside(failing(), _forever()) as (_, other):
            await _forever()  # the body would wait for ever
            reached.append("body")
        assert other.cancelled() and not sibling.cancelled()

    with pytest.raises(OSError, match="disk full"):  # unwrapped: ``except OSError`` sees it
        asyncio.run(main())
    assert reached == []


def test_the_body_ending_cancels_the_tasks_and_several_failures_leave_together() -> None:
    async def ends() -> bool:
        async with alongside(_forever()) as (task,):
            await asyncio.sleep(0)
        return task.cancelled()

    assert asyncio.run(ends())

    async def both() -> None:
        async def fail(text: str) -> None:
            raise ValueError(text)

        async with alongside(fail("a"), fail("b")):
            await _forever()

    with pytest.raises(ExceptionGroup) as caught:
        asyncio.run(both())
    assert sorted(str(e) for e in caught.value.exceptions) == ["a", "b"]


def test_a_short_task_that_fails_ends_the_block_and_one_cancelled_or_done_does_not() -> None:
    """The supervisor's short tasks (a phase's start, a job waiting for another)."""
    reached: list[str] = []

    async def failing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("launch failed")

    async def main() -> None:
        tasks = ShortTasks()
        async with alongside(tasks.failures()):
            done = tasks.spawn(asyncio.sleep(0), "done")
            cancelled = tasks.spawn(_forever(), "cancelled")
            cancelled.cancel()
            await asyncio.wait({done, cancelled})
            for _ in range(3):  # the failures task's turns: had either been queued, it raises
                await asyncio.sleep(0)
            reached.append("after the done and the cancelled")
            tasks.spawn(failing(), "failing")
            await _forever()  # ended by the failure

    with pytest.raises(RuntimeError, match="launch failed"):
        asyncio.run(asyncio.wait_for(main(), 30))  # a failure not raised: TimeoutError
    assert reached == ["after the done and the cancelled"]


# ------------------------------------------------------------------ real processes

GAP_RECOVERY = """
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]

[programs.gap_recovery]
kind = "daemon"
command = ["observer", "gap-recovery", "run"]
depends_on = ["writer"]
backoff_initial_s = 0.2
"""


@pytest.mark.slow
def test_a_gap_recovery_server_that_fails_ends_the_process_which_is_restarted(
    tmp_path: Path,
) -> None:
    # A real fault in a server task: the token cache cannot be written (a directory stands
    # where the file goes, as a full disk or a read-only folder would fail the write; this
    # one holds as root too). Before, the servers died one by one while the process went on
    # heart-beating, and the gap waited for ever.
    sim = SimThread(MARKET, HALF_TEN, SimConfig(token_min_interval_s=0))
    tokens = tmp_path / "tokens"
    try:
        settings = (
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tokens}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 60\n'
        )
        sup = SupervisorProcess(
            tmp_path, GAP_RECOVERY, clock=sim.sim.clock.spec, settings=settings
        ).start()
        url = sup.url
        log = sup.data_dir / "log" / "gap_recovery.log"
        wait_until(lambda: log.exists() and "gap recovery ready" in log.read_text(), 60, "ready")
        blocker = tokens / "acct1-sim-access_token.json"
        blocker.mkdir(parents=True)
        symbol, start = STOCKS[0], int((HALF_TEN - timedelta(minutes=20)).timestamp()) * S
        gap = GapDetected(
            gap_id=f"acct1:{symbol}:{start}",
            symbol=symbol,
            start_ns=start,
            end_ns=start + 3 * S,
            reason="disconnect",
            account="acct1",
        )
        with Producer(
            "track_b", f"ipc://{sup.data_dir / 'run' / 'ingest.sock'}", tmp_path / "outbox"
        ) as producer:
            producer.send(gap)
            assert producer.wait_acked(30)
        exits = wait_until(
            lambda: db_rows(
                url,
                "select action, exit_code from worker_events where "
                "worker = 'gap_recovery' and action in ('exited', 'restarting') "
                "order by seq",
            ),
            60,
            "gap recovery ended by its failed server",
        )
        assert exits[0] == ("exited", 1)
        failed = [json.loads(line) for line in log.read_text().splitlines() if '"exc"' in line]
        assert failed and failed[0]["level"] == "CRITICAL"
        assert "IsADirectoryError" in failed[0]["exc"] and "Traceback" in failed[0]["exc"]
        blocker.rmdir()  # the fault is mended: the next instance recovers the gap
        wait_until(
            lambda: (
                db_rows(url, f"select state from gaps where gap_id = '{gap.gap_id}'")
                == [("recovered",)]
            ),
            90,
            "the gap recovered by a restarted instance",
        )
        assert sup.program("gap_recovery")["restarts"] >= 1
        assert sup.terminate() == 0
    finally:
        sim.close()


@pytest.mark.slow
def test_the_supervisor_exits_1_when_its_scheduler_fails_and_stops_its_children(
    tmp_path: Path,
) -> None:
    # A real fault in the scheduler: the simulated clock runs past the end of the XKRX
    # calendar, so no phase or job time can be worked out. Before, the scheduler died and
    # the supervisor went on without phases; now it stops its programs and exits 1.
    start = datetime.combine(_last_session(), time(23, 59, 59), tzinfo=KST)
    config = tmp_path / "observer.toml"
    data = tmp_path / "data"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\n[database]\nurl = "sqlite:///{data / "observer.db"}"\n'
        "[supervisor]\nmetrics_port = 0\n"
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
    )
    log = tmp_path / "supervisor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "observer",
                "supervise",
                "--config",
                str(config),
                "--clock",
                f"{start.isoformat()}@1x",
            ],
            stdout=out,
            stderr=out,
            cwd=tmp_path,
        )
    try:
        assert proc.wait(60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    text = log.read_text()
    assert "the supervisor failed" in text and "outside the XKRX calendar's range" in text
    assert "Traceback" in text and "_follow_schedule" in text  # the scheduler's own failure
    # Its child was stopped before it exited, not left behind.
    assert json.loads((data / "run" / "supervisor-children.json").read_text()) == {}
    # Stopped by SIGTERM: its own clean exit, or, when the signal came while it was still
    # loading its modules (its handler not set yet), the signal's default ending.
    assert re.search(r"writer pid \d+ ended: (exit code 0|killed by SIGTERM)", text), text


def _last_session() -> date:
    """The calendar's last session, as a process started now reads it: the day after it is
    beyond its range.

    The library's range ends a year after the day it is built, and this process keeps the
    sessions it built first: in a suite that ran past midnight, its range ended a day before
    the supervisor's, whose scheduler then slept through the test's minute and never failed.
    """
    _xkrx_sessions.cache_clear()
    calendar, day = TradingCalendar(), date(2026, 1, 2)
    while True:
        try:
            day = calendar.next_session(day)
        except ConfigError:
            return day
