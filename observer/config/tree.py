"""Typed, frozen, strict settings loaded once from ``config/observer.toml``.

Unknown keys are errors that name their path; bounds are checked on load. Settings are
passed down to the code that needs them; there is no global config object.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from bus.codec import MAX_FRAME_BYTES
from observer.alerts.settings import (
    ChannelSettings,
    NotifierSettings,
    ThresholdRule,
    default_rules,
)
from observer.cluster.settings import (
    CurveSettings,
    KeyName,
    check_control_endpoint,
    check_endpoints,
)
from observer.cluster.shards import Shard
from observer.config.checks import check_settings
from observer.config.files import config_files, read_toml
from observer.config.workers import (
    BackupSettings,
    EnrichSettings,
    EtfSettings,
    GapRecoverySettings,
    MasterFileSettings,
    ReadinessSettings,
    RetentionSettings,
    TokenSettings,
    TrackASettings,
    TrackBSettings,
    TriggerSettings,
    UniverseSettings,
)
from observer.db.settings import DatabaseSettings
from observer.errors import ConfigError
from observer.process.disk import DiskSettings
from observer.tables import (
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

__all__ = [
    "REST_PER_SECOND",
    "AccountSettings",
    "BusSettings",
    "CalendarSettings",
    "ChannelSettings",
    "CurveSettings",
    "DatabaseSettings",
    "DiskSettings",
    "EtfSettings",
    "GapRecoverySettings",
    "KisSettings",
    "KrxSettings",
    "LateDay",
    "MasterFileSettings",
    "NotifierSettings",
    "PathSettings",
    "PhaseSettings",
    "ProgramSettings",
    "ReadinessSettings",
    "ScheduleEntry",
    "Settings",
    "SupervisorSettings",
    "ThresholdRule",
    "TokenSettings",
    "TrackASettings",
    "TrackBSettings",
    "TriggerSettings",
    "UniverseSettings",
    "WriterSettings",
    "config_files",
    "default_config_path",
    "env_prefix",
    "load_settings",
]


class PathSettings(Strict, frozen=True):
    """Where the processes keep their files; relative paths are from the working directory."""

    data_dir: str = "var"
    run_dir: str = ""  # sockets, locks and outboxes; empty: <data_dir>/run
    log_dir: str = ""  # one log file per supervised program; empty: <data_dir>/log

    @property
    def run(self) -> Path:
        """The run directory (sockets, locks, outboxes)."""
        return Path(self.run_dir or Path(self.data_dir) / "run")

    @property
    def log(self) -> Path:
        """The folder of the supervised programs' log files."""
        return Path(self.log_dir or Path(self.data_dir) / "log")


class BusSettings(Strict, frozen=True):
    """Producer tuning shared by every worker."""

    batch_events: Positive = 1000
    linger_ms: Annotated[int, Meta(ge=0)] = 2
    # The largest frame (one ZeroMQ message): producers cut frames below it and refuse a
    # larger event; the writer drops a peer that sends more (ZMQ_MAXMSGSIZE).
    max_frame_bytes: Annotated[int, Meta(ge=64 * 1024)] = MAX_FRAME_BYTES
    max_in_flight: Positive = 20_000
    ack_timeout_ms: Positive = 5000
    backlog_alert_events: Positive = 1_000_000
    # What the writer acknowledges survives a power cut: it commits with fsync (SQLite
    # synchronous=FULL; PostgreSQL synchronous_commit=on) and producers send a frame only
    # once it is fsynced in their outbox. False survives kill -9 only (see the README).
    fsync: bool = True
    # Empty: ipc:// under the run directory. tcp://host:port (the writer's host) needs CURVE.
    ingest_endpoint: str = ""
    feed_endpoint: str = ""
    # Behind NAT: what the writer binds when the endpoints name an address it does not have
    # (tcp://10.0.0.2:5701, tcp://*:5701). Empty: the endpoint itself.
    ingest_bind: str = ""
    feed_bind: str = ""
    curve: CurveSettings = CurveSettings()

    def __post_init__(self) -> None:
        check_endpoints(
            self.ingest_endpoint, self.feed_endpoint, self.curve, self.ingest_bind, self.feed_bind
        )


class WriterSettings(Strict, frozen=True):
    """Writer loop tuning."""

    batch_events: Positive = 20_000
    batch_delay_ms: Annotated[int, Meta(ge=0)] = 5
    retry_max_s: Seconds = 10.0
    drain_s: Seconds = 5.0
    migrate_on_start: bool = True
    # Distinct sources the writer tracks (marks, ack routes): a frame from a source beyond
    # them is refused, so a peer inventing names cannot grow the writer's memory.
    max_sources: Positive = 1000


# KIS publishes no figure: its own samples pace 0.05 s a call on real hosts and 0.5 s on
# paper ones, python-kis allows 19/s and 2/s.
REST_PER_SECOND = {"real": 20.0, "paper": 2.0, "sim": 20.0}


class AccountSettings(Strict, frozen=True):
    """One KIS account (its app key is its WebSocket session). Secrets are never here."""

    alias: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
    credentials_file: str = ""  # owner-only TOML; empty: OBSERVER_KIS_<ALIAS>_APP_KEY/SECRET
    # The account's REST budget at KIS (UNCONFIRMED); 0: its environment's, `REST_PER_SECOND`.
    rest_per_second: Annotated[float, Meta(ge=0, le=10_000)] = 0.0


class KisSettings(Strict, frozen=True):
    """Where the KIS accounts live and how each process shares their budgets."""

    environment: Literal["real", "paper", "sim"] = "sim"
    sim_url: str = "http://127.0.0.1:8800"  # REST, WebSocket and masters of `observer sim`
    master_url: str = ""  # empty: KIS's public master host (the simulator's in sim)
    token_dir: str = "var/tokens"  # noqa: S105 - a folder name, not a secret
    accounts: tuple[AccountSettings, ...] = (AccountSettings(alias="acct1"),)
    # Fraction of every account's REST budget each kind of process may use; together <= 1.
    # "manual": `gap-recovery verify` run by hand while the daemon holds "gap_recovery".
    process_share: dict[str, Annotated[float, Meta(gt=0, le=1)]] = msgspec.field(
        default_factory=lambda: dict(track_a=0.55, gap_recovery=0.25, jobs=0.15, manual=0.05)
    )
    # Who issues tokens and approval keys: "job", only the `token` job (the workers read the
    # owner-only cache and wait for it); "any", every process when it needs one (a worker
    # run on its own, without the supervisor's token job).
    token_issuer: Literal["any", "job"] = "any"  # noqa: S105 - a mode, not a secret
    token_wait_s: Seconds = 300.0  # a worker waits this long for the job's token (clock s)
    # A pace slowed by EGW00201 refusals climbs back a tenth of its share after this many
    # wall seconds without one (`observer.kis.pacing`).
    pace_recover_s: Seconds = 1.0

    def __post_init__(self) -> None:
        # An account without a budget of its own gets its environment's: a paper account
        # asked at the real one's 20/s would be refused nine calls in ten.
        default = REST_PER_SECOND[self.environment]
        accounts = tuple(
            a if a.rest_per_second else msgspec.structs.replace(a, rest_per_second=default)
            for a in self.accounts
        )
        msgspec.structs.force_setattr(self, "accounts", accounts)


class KrxSettings(Strict, frozen=True):
    """The KRX data portal (the ETF list and table). Its login is never here."""

    url: str = "https://data.krx.co.kr"  # with kis.environment = "sim": kis.sim_url
    # Owner-only TOML with member_id and password; empty: OBSERVER_KRX_ID / OBSERVER_KRX_PW.
    credentials_file: str = ""
    # The portal publishes no limit; heavy calling gets an IP blocked (pykrx #164).
    calls_per_second: PositiveFloat = 1.0
    session_ttl_s: Seconds = 3300.0  # pykrx: a session lasts 1 h; log in again 5 min before
    timeout_s: Seconds = 30.0
    attempts: Positive = 4  # per request, for 5xx and timeouts
    backoff_s: Seconds = 1.0
    backoff_cap_s: Seconds = 30.0
    # CD011 (logged in elsewhere): log in anyway with skipDup=Y, which ends the other session.
    skip_duplicate: bool = True


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


def _default_programs() -> dict[str, ProgramSettings]:
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
    # This host's name. Set, every bus source produced here is qualified with it
    # (``track_b@c2``, ``supervisor@c2``, each with its outbox): two or more collectors
    # hosts then send to one writer without mixing their sequences. Empty (the default):
    # the sources are the programs' names, as on one host. Unique per host.
    host: HostName = ""
    metrics_host: str = "127.0.0.1"
    metrics_port: Annotated[int, Meta(ge=0, le=65535)] = 9108  # 0: no metrics endpoint
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
    # Each program rotates its log file (<log_dir>/<program>.log) past log_max_bytes and
    # keeps log_keep rotated files (.1 newest).
    log_max_bytes: Annotated[int, Meta(ge=4096)] = 50 * 1024 * 1024
    log_keep: Annotated[int, Meta(ge=1, le=1000)] = 5


class PhaseSettings(Strict, frozen=True):
    """When each phase of a session day starts (KST)."""

    warmup: ClockTime = "08:00"
    track_a_only: ClockTime = "09:00"
    full_operation: ClockTime = "09:30"
    track_a_closing: ClockTime = "15:00"
    shutdown: ClockTime = "15:30"
    idle: ClockTime = "21:00"


class LateDay(Strict, frozen=True):
    """A session day with shifted hours (CSAT: 10:00-16:30; the year's first: 10:00-15:30)."""

    day: date
    minutes: int  # its open (warmup to full_operation), and its close unless close_minutes
    close_minutes: int | None = None  # its close (track_a_closing on): the year's first, 0


class CalendarSettings(Strict, frozen=True):
    """Corrections to exchange_calendars' XKRX."""

    extra_closed: tuple[date, ...] = (date(2026, 6, 3),)
    extra_open: tuple[date, ...] = ()
    late_days: tuple[LateDay, ...] = ()


class Settings(Strict, frozen=True):
    """Everything in ``observer.toml``."""

    paths: PathSettings = PathSettings()
    database: DatabaseSettings = DatabaseSettings()
    bus: BusSettings = BusSettings()
    writer: WriterSettings = WriterSettings()
    kis: KisSettings = KisSettings()
    krx: KrxSettings = KrxSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    phases: PhaseSettings = PhaseSettings()
    calendar: CalendarSettings = CalendarSettings()
    master_file: MasterFileSettings = MasterFileSettings()
    universe: UniverseSettings = UniverseSettings()
    track_a: TrackASettings = TrackASettings()
    track_b: TrackBSettings = TrackBSettings()
    gap_recovery: GapRecoverySettings = GapRecoverySettings()
    backup: BackupSettings = BackupSettings()
    etf: EtfSettings = EtfSettings()
    retention: RetentionSettings = RetentionSettings()
    token: TokenSettings = TokenSettings()
    readiness: ReadinessSettings = ReadinessSettings()
    enrich: EnrichSettings = EnrichSettings()
    notifier: NotifierSettings = NotifierSettings()
    disk: DiskSettings = DiskSettings()
    programs: dict[ProgramName, ProgramSettings] = msgspec.field(default_factory=_default_programs)

    @property
    def control_socket(self) -> Path:
        """The supervisor's control socket (default ``<run_dir>/control.sock``)."""
        return Path(self.supervisor.control_socket or self.paths.run / "control.sock")

    def __post_init__(self) -> None:
        check_settings(self)
        supervisor = self.supervisor
        if Shard.parse(self.track_b.shard).count > 1 and not supervisor.host:
            raise ValueError("track_b.shard splits the symbols between hosts: set supervisor.host")
        check_control_endpoint(
            supervisor.control_endpoint,
            self.bus.curve,
            supervisor.operators,
            supervisor.control_bind,
        )


def env_prefix(alias: str) -> str:
    """The prefix of the variables holding account ``alias``'s keys (``OBSERVER_KIS_ACCT_1_``)."""
    return f"OBSERVER_KIS_{alias.upper().replace('-', '_')}_"


def default_config_path() -> Path:
    """``$OBSERVER_CONFIG`` if set, else ``config/observer.toml`` of this checkout."""
    env = os.environ.get("OBSERVER_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "config" / "observer.toml"


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate settings; raise `ConfigError` naming the bad key.

    A file may start from another: ``extends = "observer.toml"`` (relative to the file)
    takes that file's settings and changes only what this one says. Tables merge key by
    key; a value or an array (``[[kis.accounts]]``, a schedule) replaces the base's whole.
    """
    path = path or default_config_path()
    raw = read_toml(path)
    try:
        return msgspec.convert(raw, Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_name_the_program(raw, exc)}") from exc


def _name_the_program(settings: dict[str, Any], exc: msgspec.ValidationError) -> str:
    """Name the program: msgspec says ``$.programs[...]`` for a dict value."""
    message = str(exc)
    if "$.programs[...]" not in message:
        return message
    raw = settings.get("programs", {})
    for name, program in raw.items():
        try:
            msgspec.convert(program, ProgramSettings)
        except msgspec.ValidationError as inner:
            text = str(inner)
            where = f"$.programs.{name}"
            return text.replace("`$", f"`{where}") if "`$" in text else f"{text} - at `{where}`"
    return message
