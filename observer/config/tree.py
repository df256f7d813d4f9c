"""The root settings tree: every wing's table under one `Settings`, loaded from a TOML file.

`load_settings` is the one way in: it reads the file (and what it ``extends``), converts it
strictly (an unknown key is an error naming its path) and runs the cross-checks of
`observer.config.checks`. Building a `Settings` by hand checks each table alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from observer.alerts.settings import NotifierSettings
from observer.calendar.settings import CalendarSettings, PhaseSettings
from observer.cluster.settings import BusSettings, check_control_endpoint
from observer.cluster.shards import Shard
from observer.config.checks import check_settings
from observer.config.files import read_toml
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
    UniverseSettings,
)
from observer.db.settings import DatabaseSettings
from observer.errors import ConfigError
from observer.kis.settings import KisSettings
from observer.krx.settings import KrxSettings
from observer.process.disk import DiskSettings
from observer.process.paths import PathSettings
from observer.supervisor.settings import ProgramSettings, SupervisorSettings, default_programs
from observer.tables import ProgramName, Strict
from observer.writer.settings import WriterSettings

__all__ = ["Settings", "default_config_path", "load_settings"]


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
    programs: dict[ProgramName, ProgramSettings] = msgspec.field(default_factory=default_programs)

    @property
    def control_socket(self) -> Path:
        """The supervisor's control socket (default ``<run_dir>/control.sock``)."""
        return Path(self.supervisor.control_socket or self.paths.run / "control.sock")

    def __post_init__(self) -> None:
        supervisor = self.supervisor
        if Shard.parse(self.track_b.shard).count > 1 and not supervisor.host:
            raise ValueError("track_b.shard splits the symbols between hosts: set supervisor.host")
        check_control_endpoint(
            supervisor.control_endpoint,
            self.bus.curve,
            supervisor.operators,
            supervisor.control_bind,
        )


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
        settings = msgspec.convert(raw, Settings)
        check_settings(settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_name_the_program(raw, exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings


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
