"""The run's checkpoint: what a killed run leaves for the next one to resume from.

Written when a run starts and after every batch, removed when it ends. Rows are per symbol
and idempotent, so the checkpoint needs no symbol list: a resumed run treats every sector
stored since the killed run started as fresh (a forced run then asks only the rest), and
counts what the killed run had done.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

__all__ = ["Checkpoint", "clear", "load", "save"]


class Checkpoint(msgspec.Struct, kw_only=True):
    """A run in progress."""

    mode: str  # "incremental" | "force"
    started_ns: int
    regions: tuple[str, ...]
    done: dict[str, int] = {}  # region -> symbols handled so far


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none (or it is unreadable)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=Checkpoint)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError):
        return None  # a torn file cannot happen (atomic replace); a foreign one is ignored


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically: a kill leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(msgspec.json.encode(checkpoint))
    os.replace(partial, path)


def clear(path: Path) -> None:
    """The run ended: nothing to resume."""
    path.unlink(missing_ok=True)
