"""The universe's references as Track B last read them today, for a start the database fails.

The day's universe (market caps, previous closes, volumes, ranges) is built before the
session, so each read of it from the database is kept in ``<data_dir>/track_b/references.json``
(owner-only, replaced whole and durably), and a start whose read fails (PostgreSQL down, a
collectors host cut from the store) streams from that day's copy instead of waiting. A copy
that does not read is set aside with a ``state_file_unreadable`` alert
(`observer.process.state_files`): the start waits for the database, and the next read keeps
a new copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

import msgspec

from bus.events import Alert
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from workers.track_b.triggers import Reference

__all__ = ["KeptReferences"]

log = logging.getLogger(__name__)


class _Kept(msgspec.Struct, frozen=True):
    day: date
    references: list[Reference]


def _decode(data: bytes) -> _Kept:
    return msgspec.json.decode(data, type=_Kept)


class KeptReferences:
    """One day's references on this host's disk (see the module)."""

    def __init__(self, data_dir: Path, day: date, send: Callable[[Alert], object]) -> None:
        self.path = data_dir / "track_b" / "references.json"
        self.day = day
        self.send = send  # the alert of a copy that does not read

    def read(self) -> dict[str, Reference] | None:
        """The day's references read earlier; None if there are none (another day's, none)."""
        lost = "the references read earlier are lost: a start the database fails waits for it"
        try:
            kept = read_state(self.path, _decode, lost, self.send)
        except OSError as exc:
            log.warning("%s does not read: %s", self.path, exc)
            return None
        if kept is None or kept.day != self.day or not kept.references:
            return None
        return {r.symbol: r for r in kept.references}

    def write(self, references: dict[str, Reference]) -> bool:
        """Keep ``references``; False, logged, if the disk refuses them (they are a fallback)."""
        try:
            kept = _Kept(self.day, list(references.values()))
            write_private(self.path, msgspec.json.encode(kept))
        except OSError as exc:
            log.warning("cannot keep the universe's references in %s: %s", self.path, exc)
            return False
        return True
