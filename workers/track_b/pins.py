"""Manual slot pins: ``<data_dir>/track_b/pins.json``, written by ``observer track-b slots``.

The file is the whole state (a sorted list of codes), replaced atomically, durably and
owner-only; the Track B worker reads it at every evaluation (`PinFile`), so a pin takes
effect within one. A file that is bad or cannot be read changes nothing: the last pins read
hold, alerted. Pins beyond the slots are named with why (`unplaced`) in the slots shown and
counted in the heartbeat (``pins_unplaced``). A pin is written only into a data folder that
a Track B or a supervisor has used (`used_by_track_b`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from bus.events import Alert, AlertResolved
from observer.errors import ConfigError
from observer.process.private_files import write_private
from observer.process.state_files import unreadable
from workers.track_b.slots import SlotAction

__all__ = [
    "PINS_UNREADABLE",
    "PinFile",
    "pins_path",
    "read_pins",
    "slots_path",
    "unplaced",
    "used_by_track_b",
    "write_pins",
]

log = logging.getLogger(__name__)

PINS_UNREADABLE = "track_b_pins_unreadable"  # the alert of a pins file that does not read

_CODE = re.compile(r"^[0-9A-Z]{6}$")
_NAMED = 10  # the pins an alert names


def pins_path(data_dir: Path) -> Path:
    """Where the pins live."""
    return data_dir / "track_b" / "pins.json"


def slots_path(data_dir: Path) -> Path:
    """Where the Track B worker shows its slots after each evaluation."""
    return data_dir / "track_b" / "slots.json"


def used_by_track_b(data_dir: Path) -> bool:
    """True if a Track B or a supervisor has run with this data folder.

    ``data_dir = "var"`` is relative to the folder a command runs in, so a pin written from
    another folder would land where no Track B reads it. Track B shows its slots in
    ``track_b/slots.json`` after each evaluation; a supervisor (and every program it starts)
    makes ``run/`` for its sockets and ``log/`` for the logs unless ``[paths]`` puts them
    elsewhere.
    """
    return (
        slots_path(data_dir).is_file() or (data_dir / "run").is_dir() or (data_dir / "log").is_dir()
    )


def read_pins(data_dir: Path) -> set[str]:
    """The pinned codes (none when there is no file)."""
    try:
        codes = json.loads(pins_path(data_dir).read_text())
    except FileNotFoundError:
        return set()
    except ValueError as exc:
        raise ConfigError(f"{pins_path(data_dir)} is not a JSON list of codes: {exc}") from exc
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise ConfigError(f"{pins_path(data_dir)} is not a JSON list of codes")
    return set(codes)


def write_pins(data_dir: Path, codes: set[str]) -> None:
    """Replace the pins (atomically, durably, owner-only); refuses all but 6-character codes."""
    bad = sorted(c for c in codes if not _CODE.match(c))
    if bad:
        raise ConfigError(f"not stock codes: {', '.join(bad)}")
    write_private(pins_path(data_dir), json.dumps(sorted(codes)).encode())


class PinFile:
    """The pins as the worker follows them: the file's, or the last read while it is bad.

    A file that is not a list of codes (torn by a power cut, a hand edit with a syntax error)
    is set aside and the last pins read are written back, with one ``state_file_unreadable``
    warning naming them (`observer.process.state_files`). A file that cannot be read at all, or
    written back, holds the last pins read too, with one warning ``track_b_pins_unreadable``,
    resolved when it reads again.

    ``pins`` starts as what is known without the file (the pinned slots a restart took
    back), so that a file already bad at the start releases nothing either.
    """

    def __init__(self, data_dir: Path, send: Callable[[Alert | AlertResolved], object]) -> None:
        self.data_dir = data_dir
        self.send = send
        self.pins: set[str] = set()  # the last pins read
        self.unreadable = ""  # why the file does not read ("": it reads)

    def read(self) -> set[str]:
        """The pins now: the file's, or the last read while it does not read."""
        try:
            pins = read_pins(self.data_dir)
        except ConfigError as exc:  # not a list of codes: the last pins replace it
            if not self.unreadable:
                self._write_back(exc)
            return set(self.pins)
        except OSError as exc:
            self._unreadable(str(exc))
            return set(self.pins)
        if self.unreadable:
            self.unreadable = ""
            message = f"{pins_path(self.data_dir)} reads again: {len(pins)} pins"
            log.info("%s", message)
            self.send(AlertResolved(code=PINS_UNREADABLE, severity="warning", message=message))
        self.pins = pins
        return set(pins)

    def _kept(self) -> str:
        kept = ", ".join(sorted(self.pins)[:_NAMED]) or "none"
        if len(self.pins) > _NAMED:
            kept += f" and {len(self.pins) - _NAMED} more"
        return kept

    def _write_back(self, exc: ConfigError) -> None:
        """Set a copy of the bad file aside (alerted) and write the last pins read over it."""
        path = pins_path(self.data_dir)
        outcome = (
            f"the pins stay as last read ({self._kept()}) and are written back; "
            "what it changed since must be pinned again"
        )
        self.send(unreadable(path, str(exc).removeprefix(f"{path} "), outcome, copy=True))
        try:
            write_pins(self.data_dir, self.pins)
        except (OSError, ConfigError) as write_error:  # a full disk; a hand-edited code
            self._unreadable(f"{exc}; the last pins cannot be written back ({write_error})")

    def _unreadable(self, why: str) -> None:
        """The file cannot be read, or replaced: the last pins hold, alerted once."""
        if not self.unreadable:
            message = f"{why}: the pins stay as last read ({self._kept()}) until it reads again"
            log.warning("%s", message)
            self.send(Alert(severity="warning", code=PINS_UNREADABLE, message=message))
        self.unreadable = why


def unplaced(
    pins: Iterable[str],
    held: Collection[str],
    decisions: Iterable[SlotAction],
    barred: Mapping[str, str],
) -> dict[str, str]:
    """The pins that hold no slot after an evaluation, each with why, by code."""
    why = {d.candidate.symbol: d.reason for d in decisions if d.action == "overflow"}
    return {
        pin: barred.get(pin) or why.get(pin, "no slot") for pin in sorted(pins) if pin not in held
    }
