"""The arguments a job is run with: a start-up run's, refused ones, and over tcp.

* A ``run_on_start`` job's start-up run that takes the place of a missed or interrupted
  scheduled run carries that entry's ``args``. Before, it ran without them and the entry
  was recorded as done: the token's 08:30 ``--renew``, the master files' Sunday ``--force``
  never ran that day.
* ``ctl run JOB`` with an argument no process can take (a NUL byte, an unencodable
  character) is refused ``bad_request``; a command line that cannot be spawned is a usage
  error, not a failure to retry. Before, ``Popen``'s ValueError was retried until the job
  was parked FATAL with a critical alert.
* Over tcp, ``run`` takes no option that names another configuration file.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.curve import generate_key_pair
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.cluster.transport import operator_curve
from observer.config.load import load_settings
from observer.runtime import ShortTasks
from observer.supervisor.commands import dispatch
from observer.supervisor.control import Reply, Request
from observer.supervisor.control_tcp import request_tcp
from observer.supervisor.jobs import Jobs
from observer.supervisor.program import Launch, Program, State
from tests.supervisor.test_job_usage_error import Host, job
from tests.support import WRITER_PROGRAM, SupervisorProcess, free_port, wait_until

# ------------------------------------------------------------------ the start-up run's args

JOBS = """
[programs.token]
kind = "job"
command = ["observer", "token", "run"]
run_on_start = true
schedule = [
  { at = "03:20", days = "daily" }, { at = "08:30", days = "sessions", args = ["--renew"] }
]
[programs.master_file]
kind = "job"
command = ["observer", "master-file", "update", "--all"]
run_on_start = true
schedule = [{ at = "06:00", days = "daily" }, { at = "03:00", days = "sun", args = ["--force"] }]
"""


def kst(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=KST)  # 20: a Friday, 22: a Sunday


@pytest.mark.parametrize(
    ("name", "record", "now", "args"),
    [
        # missed while no supervisor ran: the 03:20 run was the last one done
        ("token", '{"token": "2026-11-20T03:20:00+09:00"}', kst(20, 8, 31), ("--renew",)),
        # interrupted by the supervisor's restart
        (
            "token",
            '{"token": {"pending": "2026-11-20T08:30:00+09:00",'
            ' "done": "2026-11-20T03:20:00+09:00"}}',
            kst(20, 8, 31),
            ("--renew",),
        ),
        (
            "master_file",
            '{"master_file": "2026-11-21T06:00:00+09:00"}',
            kst(22, 3, 5),
            ("--force",),
        ),
        # nothing owed: the start-up run as configured
        ("token", '{"token": "2026-11-20T08:30:00+09:00"}', kst(20, 8, 40), ()),
    ],
)
def test_a_start_up_run_in_place_of_an_owed_run_has_its_args(
    tmp_path: Path, name: str, record: str, now: datetime, args: tuple[str, ...]
) -> None:
    config = tmp_path / "observer.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n{JOBS}')
    settings = load_settings(config)
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    program = Program(name, settings.programs[name], launch, lambda *_: None)
    launched: list[tuple[str, ...]] = []

    def launcher(args: Sequence[str] = (), on_demand: bool = False) -> bool:
        launched.append(tuple(args))
        return True

    program.launch = launcher  # type: ignore[method-assign]
    path = tmp_path / "schedule.json"
    path.write_text(record)
    timeline = timeline_from(settings.phases, settings.calendar)
    jobs = Jobs({name: program}, timeline, path, ShortTasks(), lambda _: None, timedelta(hours=6))
    jobs.start(now)
    assert launched == [args]
    if args:  # the run under way is the owed one: done once it exits 0
        program.state = State.EXITED
        jobs.ended(program, "exited", 0)
        due = "2026-11-22T03:00:00+09:00" if name == "master_file" else "2026-11-20T08:30:00+09:00"
        assert json.loads(path.read_text()) == {name: due}


# ------------------------------------------------------------------ arguments no process takes


def popen_refuses(args: list[str]) -> bool:
    """True if ``Popen`` itself raises on ``args`` (the old supervisor's retried failure)."""
    try:
        subprocess.run(["true", *args], check=True, timeout=30)
    except ValueError:  # UnicodeEncodeError is one
        return True
    return False


def refused(given: list[str]) -> bool:
    """True if ``run`` refuses ``given`` before starting anything (bad_request)."""
    program, _ = job(Path("/nonexistent"), "pass")  # never spawned: launch only records
    launched: list[tuple[str, ...]] = []

    def launcher(args: Sequence[str] = (), on_demand: bool = False) -> bool:
        launched.append(tuple(args))
        return True

    program.launch = launcher  # type: ignore[method-assign]
    reply = asyncio.run(_reply(program, given))
    assert (reply.code == "bad_request") != (launched == [tuple(given)])
    return reply.code == "bad_request"


async def _reply(program: Program, args: list[str]) -> Reply:
    return await dispatch(Host(program), Request("run", ["job", *args]))


# Any character, lone surrogates too (a JSON request may carry "\ud800"), and NUL often.
ARG = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from("\x00\ud800\udc80")),
    max_size=8,
)


@given(st.lists(ARG, max_size=3))
def test_run_refuses_exactly_the_arguments_a_process_cannot_take(args: list[str]) -> None:
    assert refused(args) == popen_refuses(args)


def test_a_run_with_a_nul_byte_is_refused_and_the_job_left_as_it_was(tmp_path: Path) -> None:
    program, actions = job(tmp_path, "pass")
    reply = asyncio.run(_reply(program, ["--renew\x00"]))
    assert (reply.ok, reply.code) == (False, "bad_request")
    assert reply.reason == "run: an argument holds a NUL byte: '--renew\\x00'"
    lone = asyncio.run(_reply(program, ["\ud800"]))
    assert (lone.ok, lone.code) == (False, "bad_request") and "file names" in lone.reason
    assert actions == [] and (program.state, program.failures) == (State.STOPPED, 0)


def test_a_command_line_that_cannot_run_is_not_retried(tmp_path: Path) -> None:
    # A NUL in the configured command: Popen raises ValueError, which used to be retried.
    program, actions = job(tmp_path, "pass\x00", max_failures=8)

    async def scenario() -> Reply:
        reply = await _reply(program, [])  # a command's run: refused, the job as it was
        await program.ended()
        return reply

    reply = asyncio.run(scenario())
    assert (reply.ok, reply.code) == (False, "usage_error")
    assert reply.reason == "job did not run (its command line cannot run): cannot start: " + (
        "embedded null byte"
    )
    assert actions == [] and (program.state, program.failures) == (State.STOPPED, 0)

    async def scheduled() -> None:
        program.launch()
        await program.ended()

    asyncio.run(scheduled())  # a scheduled run: parked at once, one alert, no retry storm
    assert actions == ["parked"]
    assert (program.state, program.failures, program.restarts) == (State.FATAL, 1, 0)
    assert program.detail == "cannot start: embedded null byte"


# ------------------------------------------------------------------ over tcp

RECORDER = """
import json, os, sys
from observer.process.heartbeat import Heartbeat
with open(os.environ["ARGV_RECORD"], "a") as record:
    record.write(json.dumps(sys.argv[1:]) + "\\n")
Heartbeat.from_env().ready()
"""


def test_a_run_over_tcp_cannot_name_another_configuration(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    for name in ("store", "alice"):
        generate_key_pair(keys, name)
    port = free_port()
    settings = (
        f'control_endpoint = "tcp://127.0.0.1:{port}"\noperators = ["alice"]\n'
        f"[bus]\nack_timeout_ms = 1000\n"
        f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "store"\nserver_key = "store"\n'
    )
    record, script = tmp_path / "argv.txt", tmp_path / "recorder.py"
    script.write_text(RECORDER)
    programs = WRITER_PROGRAM + (
        f'[programs.job]\nkind = "job"\ncommand = ["python", "{script}"]\n'
        f'env = {{ ARGV_RECORD = "{record}" }}\n'
    )
    sup = SupervisorProcess(tmp_path, programs, settings=settings).start()
    alice = operator_curve(keys, "alice", "store")
    endpoint = f"tcp://127.0.0.1:{port}"

    def remote(*args: str) -> Any:
        return request_tcp(endpoint, alice, "run", ["job", *args], 60)

    for args in (["--config", "/etc/x.toml"], ["--config=/etc/x.toml"], ["-c", "/x"], ["-c/x"]):
        reply = remote(*args)
        assert (reply.ok, reply.code) == (False, "forbidden"), reply
        assert "takes this host's configuration" in reply.reason
    assert not record.exists()
    assert remote("--count", "3").ok  # other arguments are the operator's
    wait_until(lambda: sup.program("job")["state"] == "exited", 30, "the run's end")
    # On this host's own socket the operator may name one (they could run it by hand).
    assert sup.ctl("run", "job", "--config", "/etc/x.toml").ok
    lines = wait_until(lambda: record.exists() and record.read_text().splitlines(), 30, "runs")
    assert [json.loads(line) for line in lines] == [["--count", "3"], ["--config", "/etc/x.toml"]]
    assert sup.terminate() == 0
