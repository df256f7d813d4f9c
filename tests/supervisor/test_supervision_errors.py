"""A supervision error (recording a start or an exit, watching a process) is retried like a
failed start: the process it concerned is ended first, then started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from observer.supervisor.program import Launch, Program, State
from observer.supervisor.settings import ProgramSettings
from tests.support import until

READY_THEN_SLEEP = (
    "import os, time; os.write(int(os.environ['OBSERVER_NOTIFY_FD']), b'{\"t\":\"ready\"}\\n');"
    " time.sleep(60)"
)


def test_a_supervision_error_is_retried_like_a_failed_start(tmp_path: Path) -> None:
    """Recording an exit fails once (out of descriptors): the program is started again."""
    settings = ProgramSettings(
        kind="daemon", command=(sys.executable, "-c", READY_THEN_SLEEP), backoff_initial_s=0.05
    )
    launch = Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)
    seen: list[str] = []

    def lifecycle(program: Program, action: str, pid: int, code: int | None, _: str) -> None:
        seen.append(action)
        if action == "exited" and seen.count("exited") == 1:
            raise OSError(24, "Too many open files")

    async def scenario() -> tuple[State, list[str], int]:
        program = Program("p", settings, launch, lifecycle)
        program.launch()
        assert await program.wait_started(30)
        first = program.pid
        os.kill(first, signal.SIGKILL)
        await until(lambda: program.state is State.RUNNING and program.pid != first, timeout=30)
        await program.stop()
        return program.state, seen, program.failures

    state, actions, failures = asyncio.run(scenario())
    assert actions[:3] == ["spawned", "ready", "exited"]
    assert actions.count("ready") == 2 and "parked" not in actions
    assert state is State.STOPPED and failures == 1


def daemon(tmp_path: Path) -> tuple[ProgramSettings, Launch]:
    settings = ProgramSettings(
        kind="daemon", command=(sys.executable, "-c", READY_THEN_SLEEP), backoff_initial_s=0.05
    )
    return settings, Launch(tmp_path, dict(os.environ), tmp_path / "log", 1.0)


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_supervision_error_while_the_process_runs_ends_it_before_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Supervision lost track of a running process: it is ended, never left running twice."""
    settings, launch = daemon(tmp_path)
    watch = Program._watch
    failed: list[int] = []

    async def watch_once_failing(program: Program) -> int | None:
        if not failed:
            await until(lambda: program.state is State.RUNNING)
            failed.append(program.pid)
            raise RuntimeError("a bug in watching")
        return await watch(program)

    monkeypatch.setattr(Program, "_watch", watch_once_failing)

    async def scenario() -> tuple[int, int, int]:
        program = Program("p", settings, launch, lambda *_: None)
        program.launch()
        await until(lambda: bool(failed) and program.state is State.RUNNING, timeout=30)
        second = program.pid
        await program.stop()
        return failed[0], second, program.failures

    first, second, failures = asyncio.run(scenario())
    assert first != second and gone(first) and failures == 1


def test_a_process_that_cannot_be_watched_is_ended_and_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of descriptors just after the spawn (no pidfd): the unwatched child is ended."""
    settings, launch = daemon(tmp_path)
    pidfd_open = os.pidfd_open
    refused: list[int] = []

    def pidfd_open_once_failing(pid: int, flags: int = 0) -> int:
        if not refused:
            refused.append(pid)
            raise OSError(24, "Too many open files")
        return pidfd_open(pid, flags)

    monkeypatch.setattr(os, "pidfd_open", pidfd_open_once_failing)

    async def scenario() -> int:
        program = Program("p", settings, launch, lambda *_: None)
        program.launch()
        await until(lambda: program.state is State.RUNNING, timeout=30)
        second = program.pid
        await program.stop()
        return second

    second = asyncio.run(scenario())
    assert refused and refused[0] != second and gone(refused[0])
