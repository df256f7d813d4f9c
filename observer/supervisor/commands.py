"""Control commands: each a small function whose docstring is its help; one reply shape.

A command locks only the program it acts on, so restarting one program never waits for a
slow start of another. Stable error codes: bad_request, unknown_command, unknown_program,
not_a_job, is_a_job, out_of_phase, already_running, busy, failed_to_start, forbidden,
elsewhere, timed_out, usage_error.

``stop`` holds a program stopped: a job's schedule skips it, and a run of it waiting for the
jobs it follows is dropped, until ``run`` (a job) or ``start`` (the others). The hold outlasts
the supervisor's restarts: `observer.supervisor.holds` records each change of ``held``.
``run`` of a job while a job it follows (``after``) runs is refused as ``busy``: it would read
half their work.

``run`` of a job that exits 2 before READY (bad arguments or configuration, the CLI's exit
code for them) is refused as ``usage_error`` with the job's last lines of output, and leaves
the job as it was: no retry, no FATAL, no alert (`observer.supervisor.program.USAGE_EXIT`).

``slots`` runs ``observer track-b slots`` on this host, in a child process as the programs
are run (the supervisor never imports a worker's code), so an operator reaches Track B's
pins and slots over tcp (``observer ctl --endpoint ... slots``). Its arguments are checked
here: an action and stock codes only, never an option such as ``--data-dir`` that would
let a remote operator write elsewhere than this host's data folder.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from observer.notify import BUS_HANDSHAKE_FAILING_S, FAILING_S
from observer.supervisor.control import CommandError, Reply, Request
from observer.supervisor.jobs import running_before
from observer.supervisor.program import Launch, Program, State

__all__ = ["COMMANDS", "HANDSHAKE_GRACE_S", "Supervised", "dispatch"]

# A CURVE handshake with the writer may fail for a moment (a writer restarting mid-handshake);
# failing longer than this, the keys do not match and the host's events only pile up.
HANDSHAKE_GRACE_S = 30.0


class Supervised(Protocol):
    """What the commands act on: `observer.supervisor.core.Supervisor` is one."""

    programs: dict[str, Program]
    launch: Launch  # how the programs are started: the slots command's child runs the same

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


async def _start(
    supervisor: Supervised, program: Program, args: list[str], on_demand: bool = False
) -> Reply:
    began = time.monotonic()
    program.launch(args, on_demand)
    started = await program.wait_started(program.settings.ready_timeout_s + 1)
    if program.refusal:  # exited 2 before READY: its own words say why
        reason = program.refusal.rpartition("\n")[2]
        return Reply(
            False,
            f"{program.name} did not run (exit 2 before READY: bad arguments or configuration): "
            f"{reason}",
            "usage_error",
            data={"exit": program.last_exit, "output": program.refusal},
        )
    if not started:
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
    """Stop NAME: stop a program (SIGTERM, then SIGKILL after its grace); it stays stopped.

    A job's scheduled runs are skipped, and a run waiting for the jobs it follows dropped,
    until it is run again by `run`. The hold outlasts a restart of the supervisor.
    """
    program = _program(supervisor, args[0])
    async with program.lock:
        program.unqueue("stopped by a command")
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
    """Run JOB [ARG...]: run a job now (with extra arguments) and wait for READY.

    Refused (busy) while a job it follows (its after) runs. Ends a stop's hold; takes the
    place of a due run waiting for the jobs it follows.
    """
    program = _program(supervisor, args[0])
    if program.kind != "job":
        raise CommandError("not_a_job", f"{program.name} is a {program.kind}, not a job")
    async with program.lock:
        if program.active:
            raise CommandError("already_running", f"{program.name} is {program.state}")
        if before := running_before(program, supervisor.programs):
            names = ", ".join(p.name for p in before)
            raise CommandError(
                "busy", f"busy: {program.name} waits for {names} to end (after); run it then"
            )
        program.unqueue("run by a command")
        return await _start(supervisor, program, args[1:], on_demand=True)


SLOTS_ACTIONS = ("list", "pin", "unpin")
SLOTS_TIMEOUT_S = 30.0
SLOTS_OUTPUT_BYTES = 64 * 1024  # of each of stdout and stderr (a list is a few KiB)
_WORD = re.compile(r"^[0-9A-Za-z]{1,16}$")  # track-b checks a code's exact form itself
_slots_lock = asyncio.Lock()  # one child at a time, however many operators ask


@command("slots", 1, 34)
async def slots(supervisor: Supervised, args: list[str]) -> Reply:
    """Slots [--json] list | pin CODE... | unpin CODE...: Track B's slots and pins here."""
    as_json = "--json" in args
    action, *codes = [a for a in args if a != "--json"] or [""]
    if action not in SLOTS_ACTIONS or (action == "list") != (not codes):
        raise CommandError(
            "bad_request", "slots: expected [--json] list, pin CODE... or unpin CODE..."
        )
    bad = [c for c in codes if not _WORD.match(c)]
    if bad:
        raise CommandError("bad_request", f"slots: not stock codes: {', '.join(bad)[:200]}")
    if "track_b" not in supervisor.programs:
        raise CommandError(
            "elsewhere", "Track B is not run by this host: ask the supervisor of the host that is"
        )
    argv = ["track-b", "slots", *(["--json"] if as_json else []), action, *codes]
    async with _slots_lock:
        code, out, err = await _observer(supervisor.launch, argv, SLOTS_TIMEOUT_S)
    data = {"exit": code, "stdout": out, "stderr": err}
    return Reply(code == 0, f"observer track-b slots {action}: exit {code}", data=data)


async def _observer(launch: Launch, argv: list[str], timeout_s: float) -> tuple[int, str, str]:
    """Run ``observer ARGV`` as the programs run; its exit code, stdout and stderr."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "observer",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=launch.cwd,
        env=dict(launch.env),
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), timeout_s)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise CommandError("timed_out", f"observer {argv[0]} took over {timeout_s:g}s") from None
    assert child.returncode is not None

    def text(raw: bytes) -> str:
        return raw[:SLOTS_OUTPUT_BYTES].decode(errors="replace")

    return child.returncode, text(out), text(err)


def problems(programs: list[Program], wanted: Callable[[Program], bool]) -> list[str]:
    """What keeps the programs from working, one line each; healthy when there is none.

    A program parked FATAL; a daemon or session worker that should run and does not; a job
    whose last run failed, until a run succeeds (a job retried for hours is not working, even
    though each try lasted long enough to forgive a daemon); a running program whose last
    heartbeat is older than half its ``heartbeat_timeout_s`` (it hangs: it will be ended),
    or whose heartbeat says it fails its work (``failing_s``: the writer whose database
    refuses commits), or that its CURVE handshake with the writer has failed for more than
    `HANDSHAKE_GRACE_S` (``bus_handshake_failing_s``: the keys do not match). A program
    stopped by a command is the operator's choice, not a problem.
    """
    found = []
    for program in programs:
        name, state = program.name, program.state
        if state is State.FATAL:
            found.append(f"{name} is fatal: {program.detail}")
        elif program.held:
            continue
        elif program.kind == "job" and program.failures:
            runs = "1 run" if program.failures == 1 else f"{program.failures} runs"
            found.append(f"{name}: {runs} failed in a row (last: {program.last_failure}); {state}")
        elif program.kind != "job" and wanted(program) and state is not State.RUNNING:
            found.append(f"{name} is {state}" + (f": {program.detail}" if program.detail else ""))
        elif (silent := program.beat_age_s() or 0.0) > program.settings.heartbeat_timeout_s / 2:
            found.append(
                f"{name}: no heartbeat for {silent:.0f} s (hung? ended at "
                f"{program.settings.heartbeat_timeout_s:g} s without one)"
            )
        elif state is State.RUNNING:
            if (failing := program.counters.get(FAILING_S, 0.0)) > 0:
                found.append(f"{name}: failing its work for {failing:.0f} s (see its log)")
            refused = program.counters.get(BUS_HANDSHAKE_FAILING_S, 0.0)
            if refused > HANDSHAKE_GRACE_S:
                found.append(
                    f"{name}: bus: the CURVE handshake with the writer has failed for "
                    f"{refused:.0f} s (this host's keys and the writer's do not match; "
                    "see its log)"
                )
    return found
