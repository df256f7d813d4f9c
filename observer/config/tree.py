"""The root settings tree: every wing's table under one `Settings`.

Building a `Settings` by hand checks each table alone; `observer.config.load.load_settings`
reads a file into one and runs the cross-checks of `observer.config.checks`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from observer.alerts.settings import NotifierSettings
from observer.calendar.settings import CalendarSettings, PhaseSettings, VenueSettings
from observer.cluster.settings import BusSettings, check_control_endpoint
from observer.cluster.shards import Shard
from observer.config.workers import (
    BackupSettings,
    EnrichSettings,
    EtfSettings,
    FlowsSettings,
    GapRecoverySettings,
    InvestorSettings,
    MasterFileSettings,
    ReadinessSettings,
    RetentionSettings,
    TokenSettings,
    TrackASettings,
    TrackBSettings,
    UniverseSettings,
)
from observer.db.settings import DatabaseSettings
from observer.kis.settings import KisSettings
from observer.krx.settings import KrxSettings
from observer.process.disk import DiskSettings
from observer.process.paths import PathSettings
from observer.setting_types import ProgramName, Strict
from observer.supervisor.settings import ProgramSettings, SupervisorSettings, default_programs
from observer.writer.settings import WriterSettings

__all__ = ["Settings"]


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
    venues: VenueSettings = VenueSettings()
    master_file: MasterFileSettings = MasterFileSettings()
    universe: UniverseSettings = UniverseSettings()
    track_a: TrackASettings = TrackASettings()
    track_b: TrackBSettings = TrackBSettings()
    gap_recovery: GapRecoverySettings = GapRecoverySettings()
    backup: BackupSettings = BackupSettings()
    etf: EtfSettings = EtfSettings()
    investor: InvestorSettings = InvestorSettings()
    flows: FlowsSettings = FlowsSettings()
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
