"""Where a process keeps its files: data, run (sockets, locks, outboxes) and log folders."""

from __future__ import annotations

from pathlib import Path

from observer.setting_types import Strict

__all__ = ["PathSettings"]


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
