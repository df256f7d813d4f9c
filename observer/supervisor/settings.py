"""``[supervisor]`` and ``[programs.*]``: what the supervisor runs, when, and its limits."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from observer.alerts.settings import ThresholdRule, default_rules
from observer.cluster.settings import KeyName
from observer.setting_types import (
    ClockTime,
    Days,
    HostName,
    PhaseName,
    Positive,
    PositiveFloat,
    ProgramName,
    Seconds,
    SecondsOrZero,
    Strict,
)

__all__ = ["ProgramSettings", "ScheduleEntry", "SupervisorSettings", "default_programs"]


class ScheduleEntry(Strict, frozen=True):
    """One scheduled run of a job: a KST time, the days it applies to, extra arguments."""

    at: ClockTime
    days: Days = "sessions"  # "sessions": KRX trading days; "daily"; or one weekday
    args: tuple[str, ...] = ()


class ProgramSettings(Strict, frozen=True):
    """One program the supervisor runs.

    ``daemon``: always on. ``session``: on while the phase is one of ``phases``. ``job``: run
    at each ``schedule`` entry (and by ``observer ctl run``) until it exits.
    """

    kind: Literal["daemon", "session", "job"]
    command: tuple[str, ...]  # a leading "observer" or "python" runs this interpreter
    depends_on: tuple[ProgramName, ...] = ()
    # Jobs: a run that comes due while one of these jobs runs waits for it to end (the
    # sectors after the master files they classify), instead of reading half their work.
    after: tuple[ProgramName, ...] = ()
    phases: tuple[PhaseName, ...] = ()
    schedule: tuple[ScheduleEntry, ...] = ()
    run_on_start: bool = False  # jobs: also once when the supervisor starts
    enabled: bool = True
    # Which host runs it (`observer supervise --role`): "store" beside the database (the
    # writer, DB-only jobs), "collectors" where the market data is fetched (the workers).
    # Unset: the writer's command is "store", every other "collectors".
    role: Literal["store", "collectors"] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    ready_timeout_s: Seconds = 30.0
    heartbeat_timeout_s: Seconds = 15.0
    stop_grace_s: Seconds = 10.0
    backoff_initial_s: Seconds = 0.1
    backoff_max_s: Seconds = 30.0
    max_failures: Positive = 8  # consecutive failed starts or crashes before FATAL
    stable_s: Seconds = 10.0  # running this long forgives earlier failures (a job's: success)

    def __post_init__(self) -> None:
        if not self.command:
            raise ValueError("a program needs a command")
        if (self.kind == "session") != bool(self.phases):
            raise ValueError("session programs, and only they, list phases")
        if self.kind != "job" and (self.schedule or self.run_on_start or self.after):
            raise ValueError("only jobs have a schedule or run after other jobs")

    @property
    def host_role(self) -> Literal["store", "collectors"]:
        """The role of the hosts that run it: ``role``, else by its command."""
        if self.role is not None:
            return self.role
        return "store" if tuple(self.command[:2]) == ("observer", "writer") else "collectors"


def default_programs() -> dict[str, ProgramSettings]:
    """The programs of a configuration that names none: the writer alone."""
    return {"writer": ProgramSettings(kind="daemon", command=("observer", "writer"))}


class SupervisorSettings(Strict, frozen=True):
    """The supervisor's control socket, metrics and resource alerts."""

    control_socket: str = ""  # empty: <run_dir>/control.sock
    # Also serve the control commands on tcp://host:port (CURVE: this host's [bus.curve] key
    # pair), to the operators' public keys listed in ``operators`` (<keys_dir>/<name>.key).
    control_endpoint: str = ""
    control_bind: str = ""  # behind NAT: what to bind instead of control_endpoint
    operators: tuple[KeyName, ...] = ()
    # The programs this host runs (`observer supervise --role` overrides): "all", or only
    # those whose `role` is "store" or "collectors".
    role: Literal["all", "store", "collectors"] = "all"
    # Before starting anything, a host whose programs talk to KIS checks that they can: the
    # credentials of every account (real, paper), or that the simulator answers at its URL
    # (sim; one connection attempt, a few retries within 2 wall seconds). False: skip it.
    kis_preflight: bool = True
    # This host's name. Set, every bus source produced here is qualified with it
    # (``track_b@c2``, ``supervisor@c2``, each with its outbox): two or more collectors
    # hosts then send to one writer without mixing their sequences. Empty (the default):
    # the sources are the programs' names, as on one host. Unique per host.
    host: HostName = ""
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 9108  # 0: no metrics endpoint
    metrics_retry_s: Seconds = 60.0  # a metrics port refused (busy) is tried again this often
    sample_interval_s: Seconds = 1.0
    heartbeat_interval_s: Seconds = 1.0  # how often children report
    cpu_alert_percent: PositiveFloat = 85.0  # all programs together, % of one core
    rss_alert_bytes: Positive = 2_684_354_560  # 2.5 GiB, all programs together
    # Control connections served at once, so that a flood of connections cannot use up the
    # supervisor's file descriptors; more wait in the listen backlog (in the kernel) until
    # one ends, and beyond it `connect` says try again. None is answered "busy".
    control_max_connections: Annotated[int, Meta(ge=1, le=1024)] = 32
    control_idle_timeout_s: Seconds = 5.0  # to send the request line, or to take the reply
    rules: tuple[ThresholdRule, ...] = msgspec.field(default_factory=default_rules)
    data_age_s: Seconds = 60.0  # how often the ages of data (age_h.*) are read
    # A job's run that came due while no supervisor ran is run at its start if due within
    # this (0: never): a backup missed over a restart at 21:00, not last week's.
    catch_up_s: SecondsOrZero = 21_600.0
    # At stop, before stopping the writer, how long to wait for it to acknowledge the
    # supervisor's own events (0: not at all; what is not acknowledged stays in the outbox
    # and is sent at the next start).
    stop_ack_wait_s: SecondsOrZero = 5.0
    # Each program rotates its log file (<log_dir>/<program>.log) past log_max_bytes and
    # keeps log_keep rotated files (.1 newest).
    log_max_bytes: Annotated[int, Meta(ge=4096)] = 50 * 1024 * 1024
    log_keep: Annotated[int, Meta(ge=1, le=1000)] = 5
