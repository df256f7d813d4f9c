"""A command that gets a program's lock after the supervisor's final stop starts nothing.

A ``ctl run`` (or ``start``, ``restart``) accepted just before SIGTERM waits for the
program's lock behind the supervisor's stop of it; it used to start the program once that
stop was done, after the supervisor had stopped it, leaving a process no supervisor
watched (and none recorded to end at the next start).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from observer.supervisor.commands import dispatch
from observer.supervisor.control import Reply, Request
from tests.supervisor.test_job_usage_error import Host, job


def test_a_command_queued_behind_the_final_stop_starts_nothing(tmp_path: Path) -> None:
    program, actions = job(tmp_path, "import time; time.sleep(60)")

    async def scenario() -> Reply:
        async with program.lock:  # the supervisor's stop holds it
            queued = asyncio.create_task(dispatch(Host(program), Request("run", ["job"])))
            await asyncio.sleep(0)  # the command reaches the lock and waits for it
            assert not queued.done()
            program.closed = True  # as `Supervisor._stop_all` does first
            await program.stop()
        return await queued

    reply = asyncio.run(scenario())
    assert not reply.ok and reply.code == "stopping", reply
    assert actions == [] and program.pid == 0  # nothing was spawned


def test_a_program_that_is_not_closed_still_runs(tmp_path: Path) -> None:
    program, actions = job(tmp_path, "pass")

    async def scenario() -> Reply:
        reply = await dispatch(Host(program), Request("run", ["job"]))
        await program.ended()
        return reply

    reply = asyncio.run(scenario())
    assert reply.ok, reply
    assert actions[0] == "spawned"
