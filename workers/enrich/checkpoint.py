"""The run's checkpoint: what a killed run leaves for the next one to resume from.

Written (atomically and durably) when a run starts and after every batch, removed when it
ends. Rows are per symbol and idempotent, so the checkpoint needs no symbol list: a resumed
run treats every sector stored since the killed run started as fresh (a forced run then asks
only the rest), and counts what the killed run had done. One that does not read is set aside
with a ``state_file_unreadable`` alert (`observer.process.state_files`): the run starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from bus.events import Alert
from observer.process.private_files import write_private
from observer.process.state_files import read_state

__all__ = ["Checkpoint", "clear", "load", "save"]


class Checkpoint(msgspec.Struct, kw_only=True):
    """A run in progress."""

    mode: str  # "incremental" | "force"
    started_ns: int
    regions: tuple[str, ...]
    done: dict[str, int] = {}  # region -> symbols handled so far


def load(path: Path, send: Callable[[Alert], object] | None) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none, or it does not read (alerted)."""
    lost = "a killed run's progress is lost: this run starts afresh, and asks every stock again"
    return read_state(path, _decode, lost, send)


def _decode(data: bytes) -> Checkpoint:
    return msgspec.json.decode(data, type=Checkpoint)


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically and durably: a kill or a power cut leaves the old file or the new one."""
    write_private(path, msgspec.json.encode(checkpoint))


def clear(path: Path) -> None:
    """The run ended: nothing to resume."""
    path.unlink(missing_ok=True)
