"""A job run that exits 2 before READY (bad arguments or configuration) is not retried.

``observer ctl run backup --extra`` used to be passed through unchecked: the job exited 2
(click's usage error), was started again eight times with backoff, went FATAL with a critical
``program_fatal`` alert, ``ctl status`` said unhealthy, and ctl printed only "did not become
ready: 8 failures in a row"; the cause was in the job's log alone. Now the run is refused with
the job's own words and the job is left as it was; a scheduled run that exits 2 is parked
FATAL at once (one alert, not a retry storm). Other exits, and exits after READY, are
retried as before.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from observer.supervisor.commands import dispatch
from observer.supervisor.control import Reply, Request
from observer.supervisor.program import Launch, Program, State
from observer.supervisor.settings import ProgramSettings
from tests.support import WRITER_PROGRAM, SupervisorProcess, db_rows, wait_until

USAGE = (
    "import sys; print('Usage: job [--count N]', file=sys.stderr); "
    "print('Error: No such option: --bogus', file=sys.stderr); sys.exit(2)"
)
READY_THEN_EXIT_2 = (
    "import os, sys; os.write(int(os.environ['OBSERVER_NOTIFY_FD']), b'{\"t\":\"ready\"}\\n');"
    " sys.exit(2)"
)


class Host:
    """What the commands act on (`observer.supervisor.commands.Supervised`), one program."""

    def __init__(self, program: Program) -> None:
        self.programs = {program.name: program}
        self.launch = Launch(Path.cwd(), {}, Path.cwd(), 1.0)  # for `slots`, not used here

    def in_phase(self, program: Program) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {}


def job(tmp_path: Path, code: str, **settings: Any) -> tuple[Program, list[str]]:
    """A job running ``python -c code`` and the lifecycle actions it reports."""
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    actions: list[str] = []
    program = Program(
        "job",
        ProgramSettings(
            kind="job", command=(sys.executable, "-c", code), backoff_initial_s=0.01, **settings
        ),
        launch,
        lambda _program, action, _pid, _code, _detail: actions.append(action),
    )
    return program, actions


def test_a_command_run_that_exits_2_is_refused_with_its_output(tmp_path: Path) -> None:
    program, actions = job(tmp_path, USAGE)
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "job.log").write_text("Error: an earlier run's line\n")

    async def scenario() -> Reply:
        reply = await dispatch(Host(program), Request("run", ["job", "--bogus"]))
        await program.ended()
        return reply

    reply = asyncio.run(scenario())
    assert not reply.ok and reply.code == "usage_error", reply
    assert reply.reason.endswith("Error: No such option: --bogus")
    assert reply.data["exit"] == 2
    assert reply.data["output"] == "Usage: job [--count N]\nError: No such option: --bogus"
    assert actions == ["spawned", "exited"]  # no "restarting", no "parked"
    assert (program.state, program.failures, program.restarts) == (State.STOPPED, 0, 0)


def test_a_refused_command_run_leaves_a_fatal_job_fatal(tmp_path: Path) -> None:
    program, actions = job(tmp_path, USAGE)

    async def scenario() -> None:
        program.launch()  # scheduled: parked at once
        await program.ended()
        assert (program.state, program.failures) == (State.FATAL, 1)
        fatal = program.detail
        program.launch(["--bogus"], on_demand=True)
        await program.ended()
        assert (program.state, program.failures, program.detail) == (State.FATAL, 1, fatal)
        assert program.refusal.endswith("--bogus")

    asyncio.run(scenario())
    assert actions == ["spawned", "exited", "parked", "spawned", "exited"]


def test_a_scheduled_run_that_exits_2_is_parked_at_once_not_retried(tmp_path: Path) -> None:
    program, actions = job(tmp_path, USAGE, max_failures=8)

    async def scenario() -> None:
        program.launch(["--bogus"])
        await program.ended()

    asyncio.run(scenario())
    assert actions == ["spawned", "exited", "parked"]  # one alert (parked), no retry storm
    assert program.state is State.FATAL and (program.failures, program.restarts) == (1, 0)
    assert program.detail.endswith("not retried: Error: No such option: --bogus")
    assert program.refusal == ""


@pytest.mark.parametrize(
    ("code", "on_demand"),
    [
        (READY_THEN_EXIT_2, True),  # exit 2 after READY: a failure of its work
        ("import sys; sys.exit(3)", True),  # another exit code before READY
        ("import sys; sys.exit(3)", False),
    ],
)
def test_other_failures_are_retried_until_fatal_as_before(
    tmp_path: Path, code: str, on_demand: bool
) -> None:
    program, actions = job(tmp_path, code, max_failures=2)

    async def scenario() -> None:
        program.launch(on_demand=on_demand)
        await program.ended()

    asyncio.run(scenario())
    assert "restarting" in actions and actions[-1] == "parked"
    assert program.state is State.FATAL and program.failures == 2
    assert "2 failures in a row" in program.detail and program.refusal == ""


# ------------------------------------------------------------------ a real supervisor

JOB_SCRIPT = """
import argparse
from observer.process.heartbeat import Heartbeat

parser = argparse.ArgumentParser(prog="job")
parser.add_argument("--count", type=int, default=1)
args = parser.parse_args()
Heartbeat.from_env().ready()
with open("ran", "a") as out:
    out.write(f"{args.count}\\n")
"""

JOBS = """
[programs.job]
kind = "job"
command = ["python", "job.py"]
backoff_initial_s = 0.05

[programs.broken]
kind = "job"
command = ["python", "job.py", "--nope"]
run_on_start = true
backoff_initial_s = 0.05
"""


@pytest.mark.slow
def test_ctl_run_with_a_bad_argument_is_refused_and_the_job_runs_later(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(JOB_SCRIPT)
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + JOBS).start(healthy=False)
    # A scheduled run (at start) with a bad argument: parked FATAL at once, one alert.
    broken = wait_until(
        lambda: (p := sup.program("broken"))["state"] == "fatal" and p, 30, "broken fatal"
    )
    assert (broken["failures"], broken["restarts"]) == (1, 0)
    assert "unrecognized arguments: --nope" in broken["detail"]
    alerts = "select message from alerts where code = 'program_fatal' and subject = '{}'"
    found = wait_until(lambda: db_rows(sup.url, alerts.format("broken"), until_schema=True), 30)
    assert len(found) == 1

    ctl = [sys.executable, "-m", "observer", "ctl", "--data-dir", str(sup.data_dir)]
    refused = subprocess.run(
        [*ctl, "run", "job", "--bogus"], capture_output=True, text=True, timeout=90
    )
    assert refused.returncode == 1, refused
    assert "unrecognized arguments: --bogus (usage_error)" in refused.stderr
    assert "usage: job [-h] [--count COUNT]" in refused.stderr  # the job's own output
    assert "Traceback" not in refused.stderr
    reply = sup.ctl("run", "job", "--bogus")
    assert not reply.ok and reply.code == "usage_error"
    assert "unrecognized arguments: --bogus" in reply.reason
    after = sup.program("job")
    assert (after["state"], after["failures"], after["restarts"]) == ("stopped", 0, 0)
    assert not any(p.startswith("job") for p in sup.status()["problems"])

    # The next run with good arguments works (a scheduled one would too).
    assert sup.ctl("run", "job", "--count", "5").ok
    wait_until(lambda: sup.program("job")["state"] == "exited", 30, "the good run")
    assert (tmp_path / "ran").read_text() == "5\n"
    spawned = "select count(*) from worker_events where worker = '{}' and action = 'spawned'"
    finished = "select count(*) from worker_events where worker = 'job' and detail = 'finished'"
    wait_until(lambda: sup.rows(finished)[0][0] == 1, 30, "the good run's events committed")
    assert sup.rows(spawned.format("job"))[0][0] == 3  # the two refused runs and the good one
    assert sup.rows(spawned.format("broken"))[0][0] == 1  # never retried
    assert sup.rows(alerts.format("job")) == []  # committed before the later events, if sent
    assert len(sup.rows(alerts.format("broken"))) == 1
