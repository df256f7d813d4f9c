"""Prometheus metrics of the supervisor, read from its state at scrape time.

Per program: up, state, restarts, today's replacements, CPU and RSS, heartbeat age and
timeout, and, while it runs, every counter its heartbeats carry (a stopped program's last
counters are not current figures). Also the phase, the supervisor's bus producer, refused
tcp control handshakes, and `observer.supervisor.families`. On a host with a name
(``[supervisor] host``) every sample carries a ``host`` label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from observer.calendar.clock import Clock
from observer.calendar.phases import Phase
from observer.config.tree import Settings
from observer.supervisor.accounts import accounts_status
from observer.supervisor.families import (
    account_families,
    alert_families,
    disk_families,
    disk_paths,
    named_families,
)
from observer.supervisor.program import Program, State
from observer.supervisor.readings import DatabaseReadings
from observer.supervisor.replacements import CAUSES, Replacements

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from bus.producer import Producer

__all__ = ["Observed", "SupervisorCollector", "serve_metrics"]


class Observed(Protocol):
    """What the metrics read: `observer.supervisor.core.Supervisor` is one."""

    settings: Settings
    clock: Clock
    programs: dict[str, Program]
    samples: dict[str, tuple[float, int]]  # program -> (cpu %, rss)
    phase: Phase | None
    producer: Producer
    readings: DatabaseReadings
    replacements: Replacements

    @property
    def control_refused(self) -> int:
        """Handshakes the tcp control endpoint refused (0 without one)."""


class SupervisorCollector(Collector):
    """Yield the supervisor's metrics on each scrape."""

    def __init__(self, supervisor: Observed) -> None:
        self.supervisor = supervisor
        self.disks = disk_paths(supervisor.settings.paths, supervisor.settings.database)

    def collect(self) -> Iterator[Metric]:
        """The metric families, each sample labelled ``host`` on a host with a name.

        Several hosts' supervisors then keep their series apart in one Prometheus without
        relabelling; a host without a name serves its metrics unchanged.
        """
        host = self.supervisor.settings.supervisor.host
        for family in self._families():
            if host:
                family.samples = [
                    s._replace(labels={**s.labels, "host": host}) for s in family.samples
                ]
            yield family

    def _families(self) -> Iterator[Metric]:
        """The metric families (a consistent-enough copy of state owned by the event loop)."""
        programs = list(self.supervisor.programs.values())
        up = GaugeMetricFamily(
            "observer_process_up", "1 if the program is RUNNING", labels=["program"]
        )
        state = GaugeMetricFamily(
            "observer_process_state",
            "1 for the program's current state",
            labels=["program", "state"],
        )
        restarts = CounterMetricFamily(
            "observer_process_restarts", "restarts after failures or by command", labels=["program"]
        )
        replaced = GaugeMetricFamily(
            "observer_process_replacements_today",
            "times the daemon or session worker was started again today (KST) after it hung "
            "or crashed (program_replaced)",
            labels=["program", "cause"],
        )
        cpu = GaugeMetricFamily(
            "observer_process_cpu_percent", "CPU, % of one core", labels=["program"]
        )
        rss = GaugeMetricFamily("observer_process_rss_bytes", "resident memory", labels=["program"])
        beat = GaugeMetricFamily(
            "observer_process_heartbeat_age_seconds",
            "since the running program's last heartbeat",
            labels=["program"],
        )
        beat_timeout = GaugeMetricFamily(
            "observer_process_heartbeat_timeout_seconds",
            "no heartbeat for this long ends the program (heartbeat_timeout_s)",
            labels=["program"],
        )
        failed_runs = GaugeMetricFamily(
            "observer_job_failed_runs",
            "the job's failed runs in a row; 0 once a run succeeds",
            labels=["program"],
        )
        held = GaugeMetricFamily(
            "observer_program_held",
            "1 while the program is held by a command (`ctl stop`: not run until started)",
            labels=["program"],
        )
        counters = GaugeMetricFamily(
            "observer_program_counter",
            "counters reported by the running program's heartbeats",
            labels=["program", "counter"],
        )
        for program in programs:
            up.add_metric([program.name], 1.0 if program.state is State.RUNNING else 0.0)
            for each in State:
                state.add_metric([program.name, each.value], 1.0 if program.state is each else 0.0)
            restarts.add_metric([program.name], program.restarts)
            held.add_metric([program.name], 1.0 if program.held else 0.0)
            if program.kind != "job":  # a job's failed run is retried, not replaced
                today = self.supervisor.replacements.today(program.name)
                for cause in CAUSES:
                    replaced.add_metric([program.name, cause], today[cause])
            if program.kind == "job":  # one stopped by a command is no longer failing
                failed_runs.add_metric([program.name], 0 if program.held else program.failures)
            sample = self.supervisor.samples.get(program.name)
            cpu.add_metric([program.name], sample[0] if sample else 0.0)
            rss.add_metric([program.name], sample[1] if sample else 0.0)
            age = program.beat_age_s()
            if age is not None:
                beat.add_metric([program.name], age)
            beat_timeout.add_metric([program.name], program.settings.heartbeat_timeout_s)
            if program.state is State.RUNNING:  # a stopped one's counters are history
                for key, value in list(program.counters.items()):
                    counters.add_metric([program.name, key], value)
        phase = GaugeMetricFamily("observer_phase", "1 for the current phase", labels=["phase"])
        for name in Phase:
            phase.add_metric([name.value], 1.0 if self.supervisor.phase is name else 0.0)
        pending = GaugeMetricFamily(
            "observer_bus_pending_events",
            "events the supervisor published that the writer has not acknowledged",
        )
        pending.add_metric([], self.supervisor.producer.pending)
        # Each handshake counts: ZeroMQ retries a refused key, so a rate shows one still trying.
        refused = CounterMetricFamily(
            "observer_control_refused",
            "CURVE handshakes the tcp control endpoint refused (keys not among the operators)",
            value=self.supervisor.control_refused,
        )
        yield from (up, state, restarts, replaced, failed_runs, cpu, rss, beat, beat_timeout)
        yield from (held, counters)
        yield from (phase, pending)
        yield refused
        observed = self.supervisor
        rows = accounts_status(  # as `ctl status` has them: none on a store host
            observed.settings.kis,
            observed.settings.supervisor,
            observed.programs,
            observed.phase,
            observed.clock.now_ns(),
            observed.readings.open_alerts,
        )
        yield from account_families(rows, observed.programs)
        yield from named_families(observed.programs)
        yield from alert_families(observed.readings)
        yield from disk_families(self.disks)


def serve_metrics(supervisor: Observed, host: str, port: int) -> object:
    """Serve ``/metrics`` on ``host:port`` in a thread; return the server (``shutdown()``)."""
    registry = CollectorRegistry()
    registry.register(SupervisorCollector(supervisor))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
