"""Control commands: each a small function whose docstring is its help; one reply shape.

A command locks only the program it acts on, so restarting one program never waits for a
slow start of another. Stable error codes: bad_request, unknown_command, unknown_program,
not_a_job, is_a_job, out_of_phase, already_running, busy, failed_to_start, forbidden,
elsewhere, timed_out, usage_error. A ``stop``'s hold outlasts the supervisor's restarts
(`observer.supervisor.holds`).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bus.events import EVENTS_LOST
from observer.process.heartbeat import (
    BUS_HANDSHAKE_FAILING_S,
    BUS_LOST_EVENTS,
    BUS_UNACKED_S,
    FAILING_S,
)
from observer.supervisor.control import CommandError, Reply, Request
from observer.supervisor.jobs import running_before
from observer.supervisor.program import Launch, Program, State

if TYPE_CHECKING:
    from observer.alerts.states import Notice

__all__ = [
    "COMMANDS",
    "HANDSHAKE_GRACE_S",
    "UNACKED_GRACE_S",
    "Supervised",
    "dispatch",
    "held_warnings",
    "problems",
]

# A CURVE handshake with the writer may fail for a moment (a writer restarting mid-handshake);
# failing longer than this, the keys do not match and the host's events only pile up.
HANDSHAKE_GRACE_S = 30.0
# The writer acknowledges within a second, and a restart of it (or of its host: the demo's
# link cut) within a minute or two; events waiting longer are not being stored.
UNACKED_GRACE_S = 120.0


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


async def dispatch(supervisor: Supervised, req: Request, remote: bool = False) -> Reply:
    """Run one request; our errors become replies with their codes.

    ``remote``: it came over tcp, from an operator on another host, who runs a job as this
    host configures it: options naming a configuration file (``--config``, ``-c``) are
    ``forbidden``. Arguments no process can take (a NUL byte, a character the file system's
    encoding cannot write) are a ``bad_request`` before anything starts.
    """
    cmd = COMMANDS.get(req.command)
    if cmd is None:
        return Reply(False, f"unknown command {req.command!r}", "unknown_command")
    if not cmd.min_args <= len(req.args) <= cmd.max_args:
        return Reply(False, f"{cmd.name}: wrong number of arguments; {cmd.help}", "bad_request")
    if remote and cmd.name == "run" and (named := _config_options(req.args[1:])):
        return Reply(
            False,
            f"run: {', '.join(named)[:200]}: a job run over tcp takes this host's configuration",
            "forbidden",
        )
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


# Options of the jobs' commands that name a configuration file (`observer.cli.main`'s ``--config``).
_CONFIG_OPTIONS = ("--config", "-c")


def _config_options(args: list[str]) -> list[str]:
    """The arguments among ``args`` that give a command another configuration file."""
    return [a for a in args if a in _CONFIG_OPTIONS or a.startswith(("--config=", "-c"))]


def _check_args(args: list[str]) -> None:
    """Refuse arguments no process can take: ``Popen`` would raise on them, not the job."""
    for arg in args:
        try:
            if b"\0" not in os.fsencode(arg):
                continue
            what = "a NUL byte"
        except UnicodeEncodeError:
            what = "a character this host's file names cannot hold"
        raise CommandError("bad_request", f"run: an argument holds {what}: {arg[:100]!r}")


def _out_of_phase(supervisor: Supervised, program: Program) -> Reply | None:
    """Out of its phase, a session worker is not started: a hold on it ends, else refused.

    Held (stopped by a command), the hold ends and its phase starts it; not held, there is
    nothing to do before its phase (``out_of_phase``). None: in its phase, or no session.
    """
    if program.kind != "session" or supervisor.in_phase(program):
        return None
    phases = ", ".join(program.settings.phases)
    if not program.held:
        raise CommandError("out_of_phase", f"{program.name} runs in {phases}")
    program.held = False
    program.detail = f"held no more: starts in {phases}"
    return Reply(
        True,
        f"{program.name} is held no more: it starts when its phase comes ({phases})",
        data={"pid": 0, "phases": list(program.settings.phases)},
    )


async def _start(
    supervisor: Supervised, program: Program, args: list[str], on_demand: bool = False
) -> Reply:
    began = time.monotonic()
    if not program.launch(args, on_demand) and program.closed:
        raise CommandError("stopping", f"the supervisor is stopping: {program.name} not started")
    started = await program.wait_started(program.settings.ready_timeout_s + 1)
    if program.refusal:  # exited 2 before READY, or could not start: its own words say why
        reason = program.refusal.rpartition("\n")[2]
        return Reply(
            False,
            f"{program.name} did not run ({program.refusal_cause}): {reason}",
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
    """status: the phase and every program's state, pid, restarts, replacements, CPU, memory."""
    report = supervisor.status()
    return Reply(True, "healthy" if report["healthy"] else "unhealthy", data=report)


@command("start", 1, 1)
async def start(supervisor: Supervised, args: list[str]) -> Reply:
    """Start NAME: start a stopped or FATAL daemon or session worker and wait for READY.

    A held session worker out of its phase is held no more: its phase starts it.
    """
    program = _startable(supervisor, args[0])
    async with program.lock:
        if (later := _out_of_phase(supervisor, program)) is not None:
            return later
        if program.active:
            raise CommandError("already_running", f"{program.name} is {program.state}")
        return await _start(supervisor, program, [])


@command("stop", 1, 1)
async def stop(supervisor: Supervised, args: list[str]) -> Reply:
    """Stop NAME: stop a program (SIGTERM, then SIGKILL after its grace); it stays stopped.

    A job's scheduled runs are skipped, and a run waiting for the jobs it follows dropped,
    until it is run again by `run`. The hold outlasts a restart of the supervisor. A FATAL
    program is parked no more (its alert is resolved): it is held, stopped.
    """
    program = _program(supervisor, args[0])
    async with program.lock:
        program.unqueue("stopped by a command")
        await program.stop()
        program.hold()
        return Reply(True, f"{program.name} {program.state}", data={"pid": 0})


@command("restart", 1, 1)
async def restart(supervisor: Supervised, args: list[str]) -> Reply:
    """Restart NAME: stop a daemon or session worker (if running) and start it again."""
    program = _startable(supervisor, args[0])
    async with program.lock:
        if (later := _out_of_phase(supervisor, program)) is not None:
            return later
        await program.stop()
        program.restarts += 1
        return await _start(supervisor, program, [])


@command("run", 1, 32)
async def run(supervisor: Supervised, args: list[str]) -> Reply:
    """Run JOB [ARG...]: run a job now (with extra arguments) and wait for READY.

    Refused (busy) while a job it follows (its after) runs: it would read half their work.
    Ends a stop's hold; takes the place of a due run waiting for the jobs it follows. A job
    that exits 2 before READY is refused (usage_error) with its last lines of output, left as
    it was: no retry, no FATAL, no alert.
    """
    program = _program(supervisor, args[0])
    if program.kind != "job":
        raise CommandError("not_a_job", f"{program.name} is a {program.kind}, not a job")
    _check_args(args[1:])
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
    """Slots [--json] list | pin CODE... | unpin CODE...: Track B's slots and pins here.

    Runs ``observer track-b slots`` in a child process (the supervisor never imports a
    worker's code). Only an action and stock codes pass, never an option such as
    ``--data-dir`` that would let a remote operator write elsewhere than this host's data.
    """
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
    `HANDSHAKE_GRACE_S` (``bus_handshake_failing_s``: the keys do not match), or whose
    events have waited longer than `UNACKED_GRACE_S` for the writer's acknowledgement
    (``bus_unacked_s``: a writer stopped or out of this host's reach; the process beats on,
    its events and its alerts only pile up in its outbox), or whose producer declared events
    lost (``bus_lost_events``: the writer's database lost them after acknowledging them). A
    program stopped by a command is the operator's choice, not a problem (`held_warnings`
    names it).
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
            if (waiting := program.counters.get(BUS_UNACKED_S, 0.0)) > UNACKED_GRACE_S:
                pending = program.counters.get("bus_pending", 0.0)
                found.append(
                    f"{name}: bus: {pending:.0f} events have waited {waiting:.0f} s for the "
                    "writer to acknowledge them (is it running, and reachable from this host?)"
                )
            if lost := program.counters.get(BUS_LOST_EVENTS, 0.0):
                found.append(
                    f"{name}: bus: declared {lost:.0f} events lost: the writer's database no "
                    "longer holds what it acknowledged (see `observer audit`)"
                )
    return found


def alerted_problems(open_alerts: Iterable[Notice]) -> list[str]:
    """The open alerts that keep the status unhealthy until acknowledged, one line each.

    ``bus_events_lost``: a producer declared events lost that the writer had acknowledged;
    the data is gone for good, so only an operator's acknowledgement ends it.
    """
    return [
        f"bus: {notice.message} (`observer alerts ack {notice.id}` once understood)"
        for notice in open_alerts
        if notice.code == EVENTS_LOST
    ]


def held_warnings(programs: list[Program], due: Callable[[Program], bool]) -> list[str]:
    """The held jobs, and the daemons and session workers held while ``due`` says they run.

    An operator's stop is their choice, so it leaves the status healthy; but a worker held
    through its session collects nothing, and a held job's runs are skipped (a backup, the
    archive), so ``status`` says so, one line each.
    """
    warnings = []
    for p in programs:
        if not p.held:
            continue
        if p.kind == "job":
            warnings.append(
                f"{p.name} is held by a command: its scheduled runs are skipped until "
                f"`observer ctl run {p.name}`"
            )
        elif due(p):
            state = "during its phase" if p.kind == "session" else "(stopped)"
            warnings.append(
                f"{p.name} is held by a command {state}: `observer ctl start {p.name}` runs it"
            )
    return warnings
