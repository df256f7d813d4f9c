"""The supervisor's final stop: a command that gets a program's lock after it starts
nothing, and the writer's acknowledgement is waited for as long as configured.

A ``ctl run`` (or ``start``, ``restart``) accepted just before SIGTERM waits for the
program's lock behind the supervisor's stop of it; it used to start the program once that
stop was done, after the supervisor had stopped it, leaving a process no supervisor
watched (and none recorded to end at the next start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.supervisor.commands import dispatch
from observer.supervisor.control import Reply, Request
from observer.supervisor.core import Supervisor
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


def recording(asked: list[float]) -> Callable[..., bool]:
    """A producer's ``wait_acked`` that records its timeouts and is never acknowledged."""

    def wait_acked(timeout: float, through: int | None = None) -> bool:
        asked.append(timeout)
        return False

    return wait_acked


def test_the_stop_waits_for_the_writer_s_acknowledgement_as_long_as_configured(
    tmp_path: Path,
) -> None:
    """Before stopping the writer (the last layer), the supervisor's own events get
    ``stop_ack_wait_s`` to be acknowledged: 5 s by default, 0 where no writer serves it."""
    waits: dict[str, list[float]] = {}
    for name, line in (("default", ""), ("none", "stop_ack_wait_s = 0\n")):
        config = tmp_path / name / "observer.toml"
        config.parent.mkdir()
        config.write_text(
            f'[paths]\ndata_dir = "{config.parent / "data"}"\n'
            f"[supervisor]\nmetrics_port = 0\n{line}"
            '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
        )
        clock = SimulatedClock(int(datetime(2026, 11, 20, 21, 0, tzinfo=KST).timestamp() * 1e9), 1)
        sup = Supervisor(load_settings(config), config, clock)
        asked: list[float] = []

        try:
            sup.producer.wait_acked = recording(asked)  # type: ignore[method-assign]
            asyncio.run(sup._stop_all())  # the writer, never started: nothing to stop
            waits[name] = list(asked)  # (closing the producer flushes once more)
        finally:
            sup.producer.close(0)
    assert waits == {"default": [5.0], "none": [0.0]}
