"""Control commands: each a small function whose docstring is its help; one reply shape.

A command locks only the program it acts on, so restarting one program never waits for a
slow start of another. Stable error codes: bad_request, unknown_command, unknown_program,
not_a_job, is_a_job, out_of_phase, already_running, failed_to_start, forbidden.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from observer.supervisor.control import CommandError, Reply, Request
from observer.supervisor.program import Program, State

__all__ = ["COMMANDS", "Supervised", "dispatch"]


class Supervised(Protocol):
    """What the commands act on: `observer.supervisor.core.Supervisor` is one."""

    programs: dict[str, Program]

    def in_phase(self, program: Program) -> bool:
        """True if a session program's phases include the current one."""

    def status(self) -> dict[str, Any]:
        """The ``status`` command's data."""


Handler = Callable[[Supervised, list[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Command:
    """A control command: name, argument count bounds, handler (its docstring is the help)."""

    name: str
    min_args: int
    max_args: int
    handler: Handler

    @property
    def help(self) -> str:
        """The handler's docstring."""
        return (self.handler.__doc__ or "").strip()


COMMANDS: dict[str, Command] = {}


def command(name: str, min_args: int = 0, max_args: int = 0) -> Callable[[Handler], Handler]:
    """Register a handler under ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, min_args, max_args, handler)
        return handler

    return register


async def dispatch(supervisor: Supervised, req: Request) -> Reply:
    """Run one request; our errors become replies with their codes."""
    cmd = COMMANDS.get(req.command)
    if cmd is None:
        return Reply(False, f"unknown command {req.command!r}", "unknown_command")
    if not cmd.min_args <= len(req.args) <= cmd.max_args:
        return Reply(False, f"{cmd.name}: wrong number of arguments; {cmd.help}", "bad_request")
    try:
        return await cmd.handler(supervisor, req.args)
    except CommandError as exc:
        return Reply(False, exc.reason, exc.code)


def _program(supervisor: Supervised, name: str) -> Program:
    program = supervisor.programs.get(name)
    if program is None:
        raise CommandError("unknown_program", f"no program {name!r}")
    return program


def _startable(supervisor: Supervised, name: str) -> Program:
    program = _program(supervisor, name)
    if program.kind == "job":
        raise CommandError("is_a_job", f"{program.name} is a job: use run")
    return program


def _check_phase(supervisor: Supervised, program: Program) -> None:
    if program.kind == "session" and not supervisor.in_phase(program):
        phases = ", ".join(program.settings.phases)
        raise CommandError("out_of_phase", f"{program.name} runs in {phases}")


async def _start(supervisor: Supervised, program: Program, args: list[str]) -> Reply:
    began = time.monotonic()
    program.launch(args)
    if not await program.wait_started(program.settings.ready_timeout_s + 1):
        raise CommandError(
            "failed_to_start", f"{program.name} did not become ready: {program.detail}"
        )
    return Reply(
        True,
        f"{program.name} {program.state}",
        data={"pid": program.pid, "ready_s": round(time.monotonic() - began, 4)},
    )


@command("status")
async def status(supervisor: Supervised, _args: list[str]) -> Reply:
    """status: the phase and every program's state, pid, restarts, CPU and memory."""
    report = supervisor.status()
    return Reply(True, "healthy" if report["healthy"] else "unhealthy", data=report)


@command("start", 1, 1)
async def start(supervisor: Supervised, args: list[str]) -> Reply:
    """Start NAME: start a stopped or FATAL daemon or session worker and wait for READY."""
    program = _startable(supervisor, args[0])
    async with program.lock:
        _check_phase(supervisor, program)
        if program.active:
            raise CommandError("already_running", f"{program.name} is {program.state}")
        return await _start(supervisor, program, [])


@command("stop", 1, 1)
async def stop(supervisor: Supervised, args: list[str]) -> Reply:
    """Stop NAME: stop a program (SIGTERM, then SIGKILL after its grace); it stays stopped."""
    program = _program(supervisor, args[0])
    async with program.lock:
        await program.stop()
        program.held = True
        return Reply(True, f"{program.name} {program.state}", data={"pid": 0})


@command("restart", 1, 1)
async def restart(supervisor: Supervised, args: list[str]) -> Reply:
    """Restart NAME: stop a daemon or session worker (if running) and start it again."""
    program = _startable(supervisor, args[0])
    async with program.lock:
        _check_phase(supervisor, program)
        await program.stop()
        program.restarts += 1
        return await _start(supervisor, program, [])


@command("run", 1, 32)
async def run(supervisor: Supervised, args: list[str]) -> Reply:
    """Run JOB [ARG...]: run a scheduled job now (with extra arguments) and wait for READY."""
    program = _program(supervisor, args[0])
    if program.kind != "job":
        raise CommandError("not_a_job", f"{program.name} is a {program.kind}, not a job")
    async with program.lock:
        if program.active:
            raise CommandError("already_running", f"{program.name} is {program.state}")
        return await _start(supervisor, program, args[1:])


def healthy(programs: list[Program], wanted: Callable[[Program], bool]) -> bool:
    """Nothing FATAL, and every program that should run is running."""
    for program in programs:
        if program.state is State.FATAL:
            return False
        if program.kind != "job" and wanted(program) and program.state is not State.RUNNING:
            return False
    return True
