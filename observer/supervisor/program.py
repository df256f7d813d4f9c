"""One supervised program: spawn, READY handshake, heartbeats, backoff, FATAL, stop.

A program's *runner* task owns its process from spawn to exit: its own process group and the
parent-death signal (`observer.supervisor.spawn`), its exit seen through a pidfd and reaped
at once. Failures (a crash, an unexpected exit, no READY or heartbeat in time) restart it
after an exponential, jittered backoff; ``max_failures`` in a row park it FATAL (`Program`
states when a count is forgiven and what is never retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from observer.process.heartbeat import FAILING_S, HeartbeatLine
from observer.process.retry import backoff_s
from observer.supervisor.settings import ProgramSettings
from observer.supervisor.spawn import Launch, spawn

__all__ = ["Dependency", "Launch", "Program", "State"]

log = logging.getLogger(__name__)

USAGE_EXIT = 2  # bad arguments or configuration: click's usage errors, `observer.cli.main.main`


class State(StrEnum):
    """Where a program is in its life (supervisord's names where they mean the same)."""

    STOPPED = "stopped"  # not running and not wanted now
    WAITING = "waiting"  # wanted, waiting for its dependencies to be ready
    STARTING = "starting"  # spawned, no READY yet
    RUNNING = "running"  # READY and beating
    BACKOFF = "backoff"  # failed; waiting to be started again
    STOPPING = "stopping"  # asked to stop; within its grace period
    EXITED = "exited"  # a job that finished successfully
    FATAL = "fatal"  # failed max_failures times in a row; parked until started by hand


Lifecycle = Callable[["Program", str, int, int | None, str], None]


class Dependency(Protocol):
    """What a program waits for: another `Program`, or one on another host (`roles`)."""

    name: str
    running: asyncio.Event


class Program:
    """Supervise one program: run, restart after failures, park FATAL.

    A daemon or session worker whose run beat for ``stable_s`` after READY has its failure
    count forgiven (one that hung after READY has not worked); a job only by a run that
    succeeds. A daemon started again from FATAL gets ``max_failures`` tries anew; a job
    parked FATAL stays parked until a run succeeds. Not retried, since retrying cannot mend
    them: a job that exits 2 before READY (`USAGE_EXIT`: a command's run is refused,
    `refusal`; a scheduled run parked FATAL at once, one alert), and any program's command
    line no process can take (``Popen``'s ValueError or TypeError).

    Parameters
    ----------
    name, settings:
        The program's name and configuration.
    launch:
        Working directory, environment and log folder shared by all programs.
    on_lifecycle:
        Called with (program, action, pid, exit code, detail) at each transition worth an
        event: spawned, ready, exited, restarting, parked, stopped.
    """

    def __init__(
        self, name: str, settings: ProgramSettings, launch: Launch, on_lifecycle: Lifecycle
    ) -> None:
        self.name = name
        self.settings = settings
        self._launch = launch
        self._on_lifecycle = on_lifecycle
        self.lock = asyncio.Lock()  # one command at a time for this program, not for all
        # The supervisor stops: nothing starts it again (a command that waited for the lock
        # behind the final stop would have left a process no supervisor watches).
        self.closed = False
        self.state = State.STOPPED
        self.detail = ""
        self.pid = 0
        self.pgid = 0
        self.restarts = 0
        self.failures = 0
        self.last_failure = ""  # why the last failed run ended ("exit code 1", "no READY ...")
        self.last_exit: int | None = None
        self.counters: dict[str, float] = {}
        self.started_at = 0.0  # monotonic seconds of the last spawn
        self.ready_at = 0.0
        self.ready_s = 0.0  # spawn to READY of the last start
        self._held = False
        # Told of each change of `held`: the supervisor keeps the holds across its restarts.
        self.on_held: Callable[[Program], None] | None = None
        self.parked = False  # a job parked FATAL and no run succeeded since: a failure parks
        self.refusal = ""  # the output of a command's run that exited 2 before READY
        self.refusal_cause = ""  # why that run was refused, in words
        # A job's due run waiting for the jobs it follows (`after`) to end: the scheduler's.
        self.queued: asyncio.Task[None] | None = None
        self.running = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._exited: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._last_beat = 0.0
        self._stop_requested = False
        self.hung = False  # its run was ended for a missed READY or heartbeat: a failure
        self._kill_handle: asyncio.TimerHandle | None = None
        self._dependencies: list[Dependency] = []
        self._decoder = msgspec.json.Decoder(HeartbeatLine)

    def __repr__(self) -> str:
        return (
            f"<Program {self.name} {self.state} pid={self.pid} restarts={self.restarts} "
            f"failures={self.failures}>"
        )

    @property
    def held(self) -> bool:
        """Stopped by a command: stays stopped until started (a job: run) by one."""
        return self._held

    @held.setter
    def held(self, value: bool) -> None:
        if value != self._held:
            self._held = value
            if self.on_held is not None:
                self.on_held(self)

    @property
    def kind(self) -> str:
        """daemon, session or job."""
        return self.settings.kind

    @property
    def active(self) -> bool:
        """True while a runner supervises this program (running, starting or backing off)."""
        return self._runner is not None and not self._runner.done()

    async def ended(self) -> None:
        """Return once no runner supervises this program (a job's run has ended)."""
        while (runner := self._runner) is not None and not runner.done():
            await asyncio.wait({runner})

    def unqueue(self, why: str) -> bool:
        """Drop the due run waiting for the jobs this one follows; True if one waited."""
        queued, self.queued = self.queued, None
        if queued is None or queued.done():
            return False
        queued.cancel()
        log.info("%s: its run waiting for the jobs it follows is dropped (%s)", self.name, why)
        self.detail = f"its due run dropped: {why}"
        return True

    def depend_on(self, programs: Sequence[Dependency]) -> None:
        """Spawn only once each of ``programs`` is running (its ``running`` is set)."""
        self._dependencies = list(programs)

    def uptime_s(self) -> float:
        """Seconds since READY, 0 when not running."""
        return time.monotonic() - self.ready_at if self.state is State.RUNNING else 0.0

    def beat_age_s(self) -> float | None:
        """Seconds since the last heartbeat (or the spawn); None when not running."""
        return time.monotonic() - self._last_beat if self.state is State.RUNNING else None

    # ------------------------------------------------------------------ commands

    def launch(self, args: Sequence[str] = (), on_demand: bool = False) -> bool:
        """Start supervising (spawn, respawn on failure); False if it runs, or ``closed``."""
        if self.active or self.closed:
            return False
        self._before = (self.state, self.detail, self.failures, self.held) if on_demand else None
        self.refusal = self.refusal_cause = ""
        if self.state is State.FATAL and self.kind != "job":
            self.failures = 0  # a job's failures count on until a run succeeds
        self._stop_requested = False
        self.held = False
        self.running.clear()
        self._runner = asyncio.create_task(self._supervise(tuple(args)), name=f"run-{self.name}")
        return True

    async def wait_started(self, timeout: float) -> bool:
        """Wait until READY, or until the runner gave up; True if RUNNING (or a job exited 0)."""
        runner = self._runner
        if runner is None:
            return self.state is State.EXITED
        ready = asyncio.ensure_future(self.running.wait())
        try:
            await asyncio.wait({ready, runner}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            ready.cancel()
        return self.state is State.RUNNING or (runner.done() and self.state is State.EXITED)

    async def stop(self) -> None:
        """Stop: SIGTERM to the group, SIGKILL after the grace period; return once reaped."""
        self._stop_requested = True
        runner = self._runner
        if runner is None or runner.done():
            if self.state not in (State.EXITED, State.FATAL):
                self.state = State.STOPPED
            return
        if self._proc is not None and self._proc.returncode is None:
            self._terminate("stop requested")
            await asyncio.shield(runner)
        else:  # waiting for dependencies or backing off: nothing to signal
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            self.state = State.STOPPED
            self.running.clear()

    def hold(self) -> None:
        """Held by a command's stop (once stopped): a FATAL program is parked no more.

        The operator took it over: stopped, not failing, until started (a job: run) again; a
        daemon then gets ``max_failures`` tries anew, a job's failures count on.
        """
        if self.state is State.FATAL and not self.active:
            self.state, self.detail = State.STOPPED, "held: stopped by a command while fatal"
            if self.kind != "job":
                self.failures = 0
        self.held = True

    def park(self, detail: str) -> None:
        """Take a job over as parked FATAL (its predecessor's alert is open): not while active."""
        if self.kind == "job" and not self.active and self.state is State.STOPPED:
            self.state, self.parked, self.detail = State.FATAL, True, detail
            self.failures = self.settings.max_failures

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the program's process group (it and anything it started)."""
        if self.pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signum)

    # ------------------------------------------------------------------ runner

    async def _supervise(self, args: tuple[str, ...]) -> None:
        while True:
            try:
                await self._supervise_loop(args)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # out of descriptors, say: it may pass, so retried
                log.exception("%s: supervision failed", self.name)
                self._abandon()
                self.detail = f"supervision failed: {exc}"
                if not await self._back_off(None):
                    return

    def _abandon(self) -> None:
        """End the process whose supervision failed: nothing would watch it any more."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self.signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)  # SIGKILLed: reaped at once
        if self._kill_handle is not None:
            self._kill_handle.cancel()
            self._kill_handle = None

    def _lifecycle(self, action: str, code: int | None, detail: str) -> None:
        """Report a transition; a report that fails (no descriptor left) stops nothing."""
        try:
            self._on_lifecycle(self, action, self.pid, code, detail)
        except Exception:
            log.exception("%s: cannot report %s", self.name, action)

    async def _supervise_loop(self, args: tuple[str, ...]) -> None:
        while True:
            if self._dependencies and not all(d.running.is_set() for d in self._dependencies):
                self.state = State.WAITING
                self.detail = "waiting for " + ", ".join(d.name for d in self._dependencies)
                await asyncio.gather(*(d.running.wait() for d in self._dependencies))
            try:
                self._spawn(args)
            except (ValueError, TypeError) as exc:  # a NUL byte, an unencodable argument
                self._not_retried(None, f"cannot start: {exc}", "", "its command line cannot run")
                return
            except OSError as exc:
                self.detail = f"cannot start: {exc}"
                log.error("%s: %s", self.name, self.detail)
                code: int | None = None
            else:
                code = await self._watch()
            self.running.clear()
            if self._stop_requested:
                self.state = State.STOPPED
                self.detail = "stopped"
                self._lifecycle("stopped", code, "")
                return
            if self.kind == "job" and code == 0 and not self.hung:
                self.state = State.EXITED
                self.detail = "finished"
                self.failures = 0
                self.parked = False
                self._lifecycle("exited", code, "finished")
                return
            if self._usage_error(code):
                return
            self._lifecycle("exited", code, self.detail)
            if not await self._back_off(code):
                return

    def _usage_error(self, code: int | None) -> bool:
        """True if a job exited 2 before READY: a command's run refused, a scheduled one parked."""
        if code != USAGE_EXIT or self.kind != "job" or self.ready_at or self.hung:
            return False
        text, path = "", self._launch.log_dir / f"{self.name}.log"
        with contextlib.suppress(OSError), path.open("rb") as file:  # moved away: no output
            file.seek(max(self._log_offset, file.seek(0, os.SEEK_END) - 4096))
            text = file.read().decode(errors="replace")
        output = "\n".join([s.strip()[:300] for s in text.splitlines() if s.strip()][-5:])
        last = output.rpartition("\n")[2] or "no output"
        detail = f"exit code {code} before READY, not retried: {last}"
        self._lifecycle("exited", code, detail)
        cause = "exit 2 before READY: bad arguments or configuration"
        self._not_retried(code, detail, output or last, cause)
        return True

    def _not_retried(self, code: int | None, detail: str, output: str, cause: str) -> None:
        """A usage error: a command's run refused (the job as it was), else parked FATAL."""
        self.detail = detail
        log.error("%s: %s", self.name, detail)
        if self._before is not None:  # asked for by a command: refused, the job as it was
            self.refusal, self.refusal_cause = output or detail, cause
            self.state, self.detail, self.failures, self.held = self._before
            return
        self.failures, self.last_failure, self.state = self.failures + 1, detail, State.FATAL
        self.parked = self.kind == "job"
        self.running.clear()
        self._lifecycle("parked", code, detail)

    async def _back_off(self, code: int | None) -> bool:
        """Count a failure: park in FATAL after ``max_failures`` (False), else back off."""
        self.running.clear()
        # Stable: it beat for stable_s after READY. A run that hung after READY did not work,
        # though the heartbeat timeout (15 s) that ended it outlasts stable_s (10 s).
        stable = self.ready_at and self._last_beat - self.ready_at >= self.settings.stable_s
        if stable and self.kind != "job":
            self.failures = 0  # it ran long enough: this is a fresh failure
        self.failures += 1
        self.last_failure = self.detail
        if self.failures >= self.settings.max_failures or (self.kind == "job" and self.parked):
            self.state, self.parked = State.FATAL, self.kind == "job"
            self.detail = f"{self.failures} failures in a row; last: {self.detail}"
            log.error("%s is FATAL: %s", self.name, self.detail)
            self._lifecycle("parked", code, self.detail)
            return False
        delay = backoff_s(
            self.failures, self.settings.backoff_initial_s, self.settings.backoff_max_s
        ) * random.uniform(0.8, 1.0)
        self.state = State.BACKOFF
        log.warning("%s failed (%s); restart in %.2fs", self.name, self.detail, delay)
        self._lifecycle("restarting", code, f"in {delay:.2f}s")
        await asyncio.sleep(delay)  # process mechanics run on real time, not market time
        self.restarts += 1
        return True

    def _spawn(self, args: tuple[str, ...]) -> None:
        spawned = spawn(self.name, self.settings, self._launch, args)
        self._proc, read_fd, self._log_offset = spawned.proc, spawned.notices, spawned.log_offset
        self.pid = self.pgid = self._proc.pid
        self.started_at = time.monotonic()
        self.ready_at = 0.0
        self._last_beat = self.started_at
        self.state = State.STARTING
        self.detail = ""
        self.hung = False
        self.counters = {}
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        try:
            pidfd = os.pidfd_open(self.pid)
        except BaseException:  # out of descriptors: a process nobody watches must not run
            self._abandon()
            os.close(read_fd)
            raise
        exited = self._exited

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        os.set_blocking(read_fd, False)
        loop.add_reader(read_fd, self._on_notify, read_fd, bytearray())
        log.info("%s spawned pid %d", self.name, self.pid)
        self._lifecycle("spawned", None, " ".join(args))

    async def _watch(self) -> int | None:
        """Wait for the process to exit, ending it if READY or a heartbeat is late."""
        assert self._exited is not None and self._proc is not None
        exited = self._exited
        while not exited.done():
            now = time.monotonic()
            if self.state is State.STARTING:
                deadline = self.started_at + self.settings.ready_timeout_s
                late = f"no READY within {self.settings.ready_timeout_s:g}s"
            else:
                deadline = self._last_beat + self.settings.heartbeat_timeout_s
                late = f"no heartbeat for {self.settings.heartbeat_timeout_s:g}s"
            if now >= deadline and self.state is not State.STOPPING:
                log.error("%s: %s; ending it", self.name, late)
                self._terminate(late)
                continue
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            waiters: list[asyncio.Future[Any]] = [exited, changed]
            await asyncio.wait(
                waiters,
                timeout=max(0.0, deadline - now) if self.state is not State.STOPPING else None,
                return_when="FIRST_COMPLETED",
            )
            changed.cancel()
        code = self._proc.wait()  # already exited: reaps at once, no zombie
        if self._kill_handle is not None:
            self._kill_handle.cancel()
            self._kill_handle = None
        self.signal_group(signal.SIGKILL)  # anything it started and left behind goes too
        self.last_exit = code
        if not self.detail:
            self.detail = f"exit code {code}" if code >= 0 else f"killed by {_signame(-code)}"
        log.info("%s pid %d ended: %s", self.name, self.pid, self.detail)
        return code

    def _terminate(self, why: str) -> None:
        """SIGTERM to the group now, SIGKILL after the grace period."""
        if self.state is not State.STOPPING:
            self.hung = not self._stop_requested
            self.detail = why if self.hung else ""
            self.state = State.STOPPING
            self.signal_group(signal.SIGTERM)
            loop = asyncio.get_running_loop()
            self._kill_handle = loop.call_later(
                self.settings.stop_grace_s, self.signal_group, signal.SIGKILL
            )
        self._changed.set()

    def _on_notify(self, fd: int, pending: bytearray) -> None:
        loop = asyncio.get_running_loop()
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            loop.remove_reader(fd)
            os.close(fd)
            return
        pending.extend(chunk)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            try:
                notice = self._decoder.decode(line)
            except msgspec.DecodeError:
                log.warning("%s wrote a bad notice: %r", self.name, line[:200])
                continue
            self._last_beat = time.monotonic()
            self.counters = notice.counters or self.counters
            if notice.t == "ready" and self.state is State.STARTING:
                self.ready_at = self._last_beat
                self.ready_s = self.ready_at - self.started_at
                self.state = State.RUNNING
                log.info("%s ready in %.3fs", self.name, self.ready_s)
                self._lifecycle("ready", None, f"{self.ready_s:.3f}s")
            # What depends on it starts once it works: a writer waiting for its database
            # says READY (so that the wait is not taken for a hang) with ``failing_s``, and
            # its dependents, started then, met the same outage (jobs parked FATAL). As a
            # remote dependency is met once the writer acknowledges (`roles`).
            if self.state is State.RUNNING and not self.counters.get(FAILING_S):
                self.running.set()
        self._changed.set()


def _signame(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
