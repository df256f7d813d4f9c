"""The programs held stopped by a command, kept across the supervisor's restarts.

``ctl stop NAME`` holds a program: a daemon or session worker is not started again, a job's
schedule skips it, until ``ctl start`` (``ctl run`` for a job). The held names are kept in
``<run_dir>/holds.json`` (owner-only, replaced atomically and durably) at each change; a
supervisor that starts holds them again, each logged, and drops (logged) a hold of a program
no longer run on this host. A file that does not read is set aside with a
``state_file_unreadable`` alert (`observer.process.state_files`): nothing is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from bus.events import Alert
from observer.process.private_files import write_private
from observer.process.state_files import read_state
from observer.supervisor.program import Program

__all__ = ["Holds"]

log = logging.getLogger(__name__)


def _names(data: bytes) -> list[str]:
    return msgspec.json.decode(data, type=list[str])


class Holds:
    """Keep which of ``programs`` are held in the file ``path`` (see the module docstring)."""

    def __init__(self, path: Path, programs: Mapping[str, Program]) -> None:
        self._path = path
        self._programs = programs

    def restore(self, on_change: Callable[[Program], None]) -> Alert | None:
        """Hold the programs held when the last supervisor stopped; then record each change.

        ``on_change`` is called after each later change of a program's ``held`` has been
        recorded. Returns the alert of a file that does not read (set aside), or None.
        """
        found: list[Alert] = []
        lost = "no program is held from before: `ctl stop` holds again what must stay stopped"
        names = read_state(self._path, _names, lost, found.append) or []
        dropped = False
        for name in names:
            program = self._programs.get(name)
            if program is None:
                log.warning(
                    "%s was held by a command; it is no longer run here: hold dropped", name
                )
                dropped = True
                continue
            program.held = True
            program.detail = "held: stopped by a command before the supervisor restarted"
            how = "ctl run" if program.kind == "job" else "ctl start"
            log.warning(
                "%s stays stopped: held by a command before the supervisor restarted, until %s",
                name,
                how,
            )

        def changed(program: Program) -> None:
            self.write()
            on_change(program)

        for program in self._programs.values():
            program.on_held = changed
        if dropped or found:
            self.write()
        return found[0] if found else None

    def write(self) -> None:
        """Record the names of the programs held now."""
        names = sorted(name for name, program in self._programs.items() if program.held)
        try:
            write_private(self._path, msgspec.json.encode(names))
        except OSError as exc:  # the hold holds until this supervisor stops
            log.error("cannot record the held programs %s in %s: %s", names, self._path, exc)
