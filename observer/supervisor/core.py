"""The supervisor: programs in dependency order, phases, the job schedule, samples, stop.

It owns one asyncio loop. Market time (phases, job times) comes from the configured `Clock`,
shared with every child through ``OBSERVER_CLOCK``; process mechanics (backoff, grace,
heartbeat deadlines) run on real time. At its first reading (`DatabaseReadings`) it takes
over the alerts its predecessor (the same bus source) left open: resolved when they clear.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bus.errors import BusError
from bus.events import Alert, Event, PhaseChanged, WorkerLifecycle
from bus.lock import InstanceLock, LockHeld
from observer.alerts.states import Notice
from observer.calendar.clock import CLOCK_ENV, Clock, now_utc
from observer.calendar.phases import KST, Phase
from observer.calendar.timeline import timeline_from
from observer.cluster.transport import control_curve
from observer.config.tree import Settings
from observer.errors import ObserverError
from observer.runtime import ShortTasks, alert_book, alongside, producer_for
from observer.supervisor.accounts import accounts_status
from observer.supervisor.commands import (
    HANDSHAKE_GRACE_S,
    alerted_problems,
    dispatch,
    held_warnings,
    problems,
)
from observer.supervisor.control import ControlServer
from observer.supervisor.control_tcp import TcpControlServer
from observer.supervisor.crash_loops import CRASH_LOOP_CODE
from observer.supervisor.holds import Holds
from observer.supervisor.jobs import JOB_OVERLAP, Jobs
from observer.supervisor.leftovers import ChildRecord, end_leftovers
from observer.supervisor.program import Launch, Program, State
from observer.supervisor.readings import DatabaseReadings, Reading
from observer.supervisor.replacements import REPLACED_CODE, Replacements
from observer.supervisor.roles import connect, elsewhere, runs_here, supervisor_source
from observer.supervisor.rosters import RosterDuty
from observer.supervisor.rule_counters import RULE_METRIC_UNKNOWN
from observer.supervisor.sampler import Sampler

__all__ = ["Supervisor", "SupervisorLocked"]

log = logging.getLogger(__name__)

MAX_SCHEDULER_SLEEP_S = 60.0  # of market time: bounds the effect of a clock jump


class SupervisorLocked(ObserverError):
    """Another supervisor runs with this run directory."""


class Supervisor:
    """Run the configured programs until stopped (see the module docstring).

    Parameters
    ----------
    settings:
        The whole configuration; ``programs`` says what to run.
    config_path:
        Handed to every child as ``OBSERVER_CONFIG``.
    clock:
        Market time, shared with children by its spec.
    """

    def __init__(self, settings: Settings, config_path: Path, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.run_dir = settings.paths.run
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.control_path = settings.control_socket
        self.timeline = timeline_from(settings.phases, settings.calendar)
        self.phase: Phase | None = None
        # age_h.*, open alerts
        self.readings = DatabaseReadings(settings.database, clock, settings.supervisor.data_age_s)
        self._inherited = False  # the predecessor's open alerts taken over (first reading)
        self._tasks = ShortTasks()  # a phase's start or stop, a job waiting for others
        self._lock = self._take_lock()
        self._children = ChildRecord(self.run_dir / "supervisor-children.json")
        self.launch = launch = Launch(
            cwd=Path.cwd(),
            env={
                **os.environ,
                # As given, not resolved: a link's `extends` is found next to the link.
                "OBSERVER_CONFIG": str(config_path.absolute()),
                CLOCK_ENV: clock.spec,
                "OBSERVER_LOG_FORMAT": "json",
                "PYTHONUNBUFFERED": "1",
            },
            log_dir=settings.paths.log,
            heartbeat_interval_s=settings.supervisor.heartbeat_interval_s,
            log_max_bytes=settings.supervisor.log_max_bytes,
            log_keep=settings.supervisor.log_keep,
        )
        self.role = settings.supervisor.role
        self.programs = {
            name: Program(name, program, launch, self._lifecycle)
            for name, program in settings.programs.items()
            if runs_here(program, self.role)
        }
        self.producer = producer_for(
            settings, supervisor_source(self.role, settings.supervisor.host), clock.now_ns
        )
        # Its open alerts; a failed send is logged, and supervising goes on.
        self.alerts = alert_book(self.producer)
        self.alerts.publish = self._publish
        # Programs replaced after a hang or a crash: alerted, counted per day; and crash loops.
        # Their counts, like the record of the jobs' runs, are read here: an alert about an
        # unreadable file needs the producer.
        self.replacements = Replacements(self.alerts, clock, self.run_dir / "replacements.json")
        self.jobs = Jobs(
            self.programs,
            self.timeline,
            self.run_dir / "schedule.json",
            self._tasks,
            self._publish,
            timedelta(seconds=settings.supervisor.catch_up_s),
            self.alerts,
        )
        # Dependencies on programs of another host's role: met through the bus.
        self._remote = connect(self.programs, lambda: self.producer.acked)
        self._rosters = RosterDuty(settings, self.role, self.programs, self._publish, self.alerts)
        self.sampler = Sampler(settings, self.programs, self.readings, self.alerts)
        self.samples = self.sampler.samples  # program -> (cpu %, rss)
        self.readings.on_read = self._on_read
        self._tcp = self._tcp_control()
        self._metrics: object | None = None  # the /metrics server, once served
        self.holds = Holds(self.run_dir / "holds.json", self.programs)  # `ctl stop`'s, kept
        if unreadable := self.holds.restore(self._held_changed):
            self._publish(unreadable)

    def _take_lock(self) -> InstanceLock:
        try:
            return InstanceLock(self.run_dir / "supervisor.lock")
        except LockHeld as exc:
            raise SupervisorLocked(
                f"another supervisor (pid {exc.holder}) runs in {self.run_dir}"
            ) from None

    # ------------------------------------------------------------------ queries

    def in_phase(self, program: Program) -> bool:
        """True if a session program's phases include the current one."""
        return self.phase is not None and self.phase.value in program.settings.phases

    @property
    def control_refused(self) -> int:
        """Handshakes the tcp control endpoint refused (0 without one)."""
        return self._tcp.refusals if self._tcp is not None else 0

    def wanted(self, program: Program) -> bool:
        """True if this daemon or session worker should be running now."""
        return not program.held and self.due(program)

    def due(self, program: Program) -> bool:
        """True if this daemon or session worker would run now if no command held it."""
        return program.kind == "daemon" or (program.kind == "session" and self.in_phase(program))

    def status(self) -> dict[str, Any]:
        """The ``status`` command's data: programs, and each account's functional health."""
        programs = list(self.programs.values())
        now = now_utc(self.clock).astimezone(KST)
        accounts = accounts_status(  # none on a store host: the collectors' to show
            self.settings.kis,
            self.settings.supervisor,
            self.programs,
            self.phase,
            self.clock.now_ns(),
            self.readings.open_alerts,
        )
        found = problems(programs, self.wanted) + [
            f"account {a['account']}: {p}" for a in accounts for p in a["problems"]
        ]
        found += alerted_problems(self.readings.open_alerts)
        if (failing := self.producer.handshake_failing_s) > HANDSHAKE_GRACE_S:  # its own
            found.append(
                f"supervisor: bus: the CURVE handshake with the writer has failed for "
                f"{failing:.0f} s (this host's keys and the writer's do not match)"
            )
        return {
            "phase": self.phase.value if self.phase else None,
            "time": now.isoformat(timespec="seconds"),
            "healthy": not found,
            "problems": found,
            "warnings": held_warnings(programs, self.due),  # seen, yet healthy
            "accounts": accounts,
            "bus_pending": self.producer.pending,
            "role": self.role,
            "host_name": self.settings.supervisor.host,  # "" unless several hosts share a bus
            "bus_source": self.producer.source,
            "elsewhere": elsewhere(self.settings.programs, self.role),
            "control_refused": self.control_refused,
            "programs": [
                {
                    "name": p.name,
                    "kind": p.kind,
                    "state": p.state.value,
                    "pid": p.pid
                    if p.state in (State.STARTING, State.RUNNING, State.STOPPING)
                    else 0,
                    "restarts": p.restarts,
                    "replaced": self.replacements.today(p.name),  # today, by cause
                    "failures": p.failures,
                    "cpu_percent": self.samples.get(p.name, (0.0, 0))[0],
                    "rss_bytes": self.samples.get(p.name, (0.0, 0))[1],
                    "uptime_s": round(p.uptime_s(), 1),
                    "last_exit": p.last_exit,
                    "detail": p.detail,
                    "counters": p.counters,
                }
                for p in programs
            ],
        }

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> int:
        """Start everything, follow the phases and the schedule until ``stop``; then stop all."""
        await asyncio.to_thread(self.timeline.phase_at, now_utc(self.clock))  # loads XKRX once
        unreadable: list[Event] = []  # published here, not from the thread
        ended = await asyncio.to_thread(end_leftovers, self._children, unreadable.append)
        for alert in unreadable:
            self._publish(alert)
        if ended:
            message = f"ended {len(ended)} processes of a previous supervisor"
            self._publish(Alert(severity="warning", code="leftover_processes", message=message))
        limits = self.settings.supervisor
        control = ControlServer(
            functools.partial(dispatch, self),
            self.control_path,
            limits.control_max_connections,
            limits.control_idle_timeout_s,
        )
        await control.start()
        servers = [control.serving()]
        if self._tcp is not None:
            self._tcp.start()
            servers.append(self._tcp.serving())
        self._metrics = self._serve_metrics()
        reads = (  # for the rules that name ages of data, Prometheus, and the hosts' rosters
            [self.readings.follow(stop)]
            if self.settings.supervisor.metrics_port
            or self.role != "collectors"
            or any(r.metric.startswith(("age_h.", "enrichment.")) for r in self.sampler.rules.rules)
            else []
        )
        self.sampler.after_reading = bool(reads)
        try:
            # The scheduler, the sampler and the control socket's accept loop live as long
            # as the supervisor: one of them failing ends it (exit 1, supervisord restarts
            # it) instead of leaving it up without phases, samples or commands.
            async with alongside(
                self._follow_schedule(stop),
                self.sampler.follow(stop),
                *servers,
                *reads,
                self._keep_metrics(stop),
                *(remote.follow() for remote in self._remote),
                self._tasks.failures(),
            ):
                for program in self.programs.values():
                    if program.kind == "daemon" and not program.held:
                        program.launch()
                await stop.wait()
        finally:
            log.info("stopping")
            self.jobs.drop_queued()  # a job due after another: not now
            await control.close()
            if self._tcp is not None:
                await self._tcp.close()
            await self._stop_all()
            if self._metrics is not None:
                self._metrics.shutdown()  # type: ignore[attr-defined]
            await asyncio.to_thread(self.producer.close, 0)
            self._children.write({})
            self._lock.close()
        log.info("stopped")
        return 0

    def _tcp_control(self) -> TcpControlServer | None:
        """The control commands over tcp+CURVE, when ``control_endpoint`` is set."""
        curve = control_curve(self.settings.bus, self.settings.supervisor)
        if curve is None:
            return None
        limits = self.settings.supervisor
        return TcpControlServer(
            functools.partial(dispatch, self, remote=True),  # an operator on another host
            limits.control_bind or limits.control_endpoint,  # behind NAT: a local address
            curve,
            self._refused,
            limits.control_max_connections,
            limits.control_idle_timeout_s,
        )

    def _refused(self, key: str) -> None:
        message = f"the control endpoint refused an unknown operator key {key}"
        self._publish(
            Alert(severity="warning", code="control_key_refused", message=message, subject=key)
        )

    def _serve_metrics(self) -> object | None:
        """``/metrics`` served, or None: not configured, or its port refused (alerted once)."""
        port = self.settings.supervisor.metrics_port
        if not port:
            return None
        # deferred: prometheus_client (about 0.05 s) only where metrics are served
        from observer.supervisor.metrics import serve_metrics

        try:
            served = serve_metrics(self, self.settings.supervisor.metrics_host, port)
        except OSError as exc:  # a busy port must not keep the market data from flowing
            if self.alerts.raise_(
                METRICS_UNAVAILABLE,
                "",
                "error",
                f"no /metrics on port {port} ({exc}); tried again every "
                f"{self.settings.supervisor.metrics_retry_s:g} s",
            ):
                log.error("no metrics endpoint on port %d: %s", port, exc)
            return None
        self.alerts.resolve(METRICS_UNAVAILABLE, "", f"/metrics is served on port {port}")
        return served

    async def _keep_metrics(self, stop: asyncio.Event) -> None:
        """Try a refused metrics port again every ``metrics_retry_s`` (wall) until served."""
        while self.settings.supervisor.metrics_port and self._metrics is None:
            try:
                await asyncio.wait_for(stop.wait(), self.settings.supervisor.metrics_retry_s)
                return
            except TimeoutError:
                self._metrics = self._serve_metrics()
        await stop.wait()

    async def _stop_all(self) -> None:
        """Stop dependents before what they depend on; the writer (depended on) last.

        Every program is closed first: a command or a job run that gets a program's lock
        after its stop starts nothing.
        """
        for program in self.programs.values():
            program.closed = True
        layers: list[list[Program]] = []
        remaining = set(self.programs)
        while remaining:
            needed = {
                d for name in remaining for d in self.programs[name].settings.depends_on
            } & remaining
            names = sorted(remaining - needed) or sorted(remaining)
            layers.append([self.programs[name] for name in names])
            remaining -= set(names)
        for i, layer in enumerate(layers):
            if i == len(layers) - 1:  # our own events reach the writer while it still runs
                await asyncio.to_thread(
                    self.producer.wait_acked, self.settings.supervisor.stop_ack_wait_s
                )
            await asyncio.gather(*(self._stop_one(p) for p in layer))

    async def _stop_one(self, program: Program) -> None:
        async with program.lock:
            await program.stop()

    # ------------------------------------------------------------------ phases and jobs

    async def _follow_schedule(self, stop: asyncio.Event) -> None:
        last = seen = now_utc(self.clock)
        self.jobs.start(last)  # the start-up runs, and the runs missed while none ran
        while not stop.is_set():
            now = now_utc(self.clock)
            if now < seen:  # an NTP step, a VM resumed: what ran until `last` does not again
                log.warning(
                    "the clock went back: %s, %.0f s before the last pass; jobs due until %s "
                    "are not run again",
                    now.astimezone(KST).isoformat(timespec="seconds"),
                    (seen - now).total_seconds(),
                    last.astimezone(KST).isoformat(timespec="seconds"),
                )
            seen = now
            self._rosters.publish_for(now)  # at the start, then on each day's first pass
            phase = self.timeline.phase_at(now)
            if phase is not self.phase:
                await self._enter_phase(phase, now)
            self.jobs.run_due(last, now)
            last = max(last, now)
            wake = self.jobs.next_due(now, self.timeline.next_transition(now))
            wait = min((wake - now).total_seconds(), MAX_SCHEDULER_SLEEP_S)
            await self.clock.sleep(max(wait, 0.0) + 1e-3)

    async def _enter_phase(self, phase: Phase, now: datetime) -> None:
        previous, self.phase = self.phase, phase
        local = now.astimezone(KST)
        log.info("phase %s -> %s at %s", previous, phase, local.isoformat(timespec="seconds"))
        self._publish(
            PhaseChanged(
                phase=phase.value,
                trade_date=local.date(),
                scheduled_ns=self._phase_start_ns(local, phase),
            )
        )
        for program in self.programs.values():
            if program.kind == "session":
                self._tasks.spawn(self._apply_phase(program), f"phase-{program.name}")

    def _phase_start_ns(self, local: datetime, phase: Phase) -> int:
        start = local
        for at, each in self.timeline.schedule.starts(local.date()):
            if each is phase and at <= local:
                start = at
        return int(start.timestamp()) * 1_000_000_000

    async def _apply_phase(self, program: Program) -> None:
        async with program.lock:
            if self.wanted(program) and not program.active:
                program.launch()
            elif not self.wanted(program) and program.active:
                await program.stop()

    # ------------------------------------------------------------------ lifecycle and samples

    def _lifecycle(
        self, program: Program, action: str, pid: int, code: int | None, detail: str
    ) -> None:
        self._publish(
            WorkerLifecycle(
                worker=program.name,
                action=action,  # type: ignore[arg-type]
                pid=pid,
                exit_code=code,
                detail=detail,
            )
        )
        self.replacements.seen(program, action)
        if action == "parked":
            message = f"{program.name} is FATAL: {detail}"
            context = {"program": program.name}
            self.alerts.raise_(FATAL, program.name, "critical", message, context, again=True)
        elif self.alerts.is_open(FATAL, program.name) and _recovered(program, action):
            self._resolve_fatal(program.name, f"{program.name} {_RECOVERED[program.kind == 'job']}")
        if program.kind == "job":
            self.jobs.ended(program, action, code)  # its due run dealt with, or not yet
        live = {p.name: p.pgid for p in self.programs.values() if p.pid and p.active}
        self._children.write(live)

    def _held_changed(self, program: Program) -> None:
        """A hold recorded: a job stopped by a command has its due run under way dealt with.

        A program parked FATAL and then stopped by a command is the operator's: its
        ``program_fatal`` is resolved.
        """
        if program.held and program.kind == "job":
            self.jobs.settle(program)
        fatal = self.alerts.is_open(FATAL, program.name)
        if program.held and fatal and program.state is not State.FATAL:
            self._resolve_fatal(program.name, HELD)
        self.replacements.held(program)

    def _resolve_fatal(self, name: str, message: str) -> None:
        self.alerts.resolve(FATAL, name, message)

    def _on_read(self, reading: Reading) -> None:
        """Each successful reading: the first takes over what the predecessor alerted."""
        if not self._inherited:
            self._inherited = True
            source = self.producer.source
            self._take_over([n for n in reading.open_alerts if n.source == source])
        if self.role != "collectors":  # the store host compares the hosts' rosters
            self._rosters.judge(reading)

    def _take_over(self, notices: list[Notice]) -> None:
        """Take over what its source left open of what it judges; its own alerts stay its own."""
        judged = {
            FATAL,
            REPLACED_CODE,
            CRASH_LOOP_CODE,
            METRICS_UNAVAILABLE,
            JOB_OVERLAP,
            *self.sampler.codes,
        }
        notices = [n for n in notices if n.code in judged]
        fresh = [n.condition for n in notices if not self.alerts.is_open(*n.condition)]
        taken = self.alerts.take_over(notices)
        if taken:
            said = sorted({f"{n.code}({n.subject})" if n.subject else n.code for n in taken})
            log.info("open alerts taken over: %s", ", ".join(said))
        self.sampler.taken_over({n.subject for n in taken if n.code == RULE_METRIC_UNKNOWN})
        if self._metrics is not None or not self.settings.supervisor.metrics_port:
            served = "served" if self._metrics is not None else "not configured"
            self.alerts.resolve(METRICS_UNAVAILABLE, "", f"/metrics is {served} now")
        replaced = {subject for code, subject in fresh if code == REPLACED_CODE}
        loops = {subject for code, subject in fresh if code == CRASH_LOOP_CODE}
        self.replacements.taken_over(replaced, loops, self.programs)  # after a quiet hour
        for name in sorted({n.subject for n in taken if n.code == JOB_OVERLAP}):
            if name not in self.programs:  # nothing of it runs here to end it
                self.alerts.resolve(JOB_OVERLAP, name, f"{name} is not supervised here")
        for name in sorted({n.subject for n in taken if n.code == FATAL}):
            program = self.programs.get(name)
            if program is None:  # its program_fatal would stay open for ever
                self._resolve_fatal(name, f"{name} is no longer supervised on this host")
                continue
            if program.held:  # stopped by a command since: nothing resolves it later
                self._resolve_fatal(name, HELD)
                continue
            program.park("parked when the supervisor last ran (its program_fatal is open)")
            if _recovered(program, None):  # it worked before the first reading
                self._resolve_fatal(name, f"{name} {_RECOVERED[program.kind == 'job']}")

    def _publish(self, event: Event) -> None:
        try:
            self.producer.send(event)
        except BusError as exc:  # the outbox failed (full, broken): say so, keep supervising
            log.error("cannot publish %s: %s", type(event).__name__, exc)


_RECOVERED = {False: "is running again", True: "ran successfully"}
HELD = "held by a command"  # a parked program's resolution when an operator stopped it
FATAL = "program_fatal"  # the alert of a program parked FATAL (subject: the program)
METRICS_UNAVAILABLE = "metrics_unavailable"  # /metrics refused its port (tried again)


def _recovered(program: Program, action: str | None) -> bool:
    """True if a parked program works again: a daemon's READY, a job's run that exited 0.

    ``action``: the lifecycle transition, or None to judge the program's state as it is.
    READY is no success for a job: a run that fails after it leaves the job parked.
    """
    if program.kind == "job":
        return action in (None, "exited") and program.state is State.EXITED
    return action in (None, "ready") and program.state is State.RUNNING
