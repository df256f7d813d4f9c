"""Manual slot pins: ``<data_dir>/track_b/pins.json``, written by ``observer track-b slots``.

The file is the whole state (a sorted list of codes), replaced atomically and owner-only;
the Track B worker reads it at every evaluation, so a pin takes effect within one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from observer.errors import ConfigError
from observer.private_files import write_private

__all__ = ["pins_path", "read_pins", "slots_path", "write_pins"]

_CODE = re.compile(r"^[0-9A-Z]{6}$")


def pins_path(data_dir: Path) -> Path:
    """Where the pins live."""
    return data_dir / "track_b" / "pins.json"


def slots_path(data_dir: Path) -> Path:
    """Where the Track B worker shows its slots after each evaluation."""
    return data_dir / "track_b" / "slots.json"


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
    """Replace the pins (atomically, owner-only); refuses anything but 6-character codes."""
    bad = sorted(c for c in codes if not _CODE.match(c))
    if bad:
        raise ConfigError(f"not stock codes: {', '.join(bad)}")
    write_private(pins_path(data_dir), json.dumps(sorted(codes)).encode())
