"""Loading the settings: a TOML file (and what it ``extends``) into a checked `Settings`.

`load_settings` is the one way in: it converts the file strictly (an unknown key is an error
naming its path) and runs the cross-checks of `observer.config.checks`; every failure is a
`ConfigError` naming the file.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from observer.calendar.settings import VenueSettings
from observer.config.checks import check_settings
from observer.config.files import read_toml
from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.supervisor.settings import ProgramSettings

__all__ = ["default_config_path", "load_settings"]


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
    A venue's hours of one's own keep the built-in days of other hours (`_with_builtin_days`).
    """
    path = path or default_config_path()
    raw = _with_builtin_days(read_toml(path))
    try:
        settings = msgspec.convert(raw, Settings)
        check_settings(settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_name_the_program(raw, exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings


def _with_builtin_days(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each ``[venues.<venue>]`` of its own keeping the built-in dated rows.

    Its days of other hours (Nextrade's CSAT day and year's first session), its earlier eras,
    the markets beside its sessions and the measures its after-market excludes, unless it
    lists its own: hours written for an ordinary day would otherwise drop them (an empty list
    drops them on purpose).
    """
    venues = raw.get("venues")
    if not isinstance(venues, dict):
        return raw
    builtin = msgspec.to_builtins(VenueSettings(), builtin_types=(date,))
    for venue, table in venues.items():
        if isinstance(table, dict) and venue in builtin:
            for key in ("days", "before", "beside", "after_market_excludes"):
                table.setdefault(key, builtin[venue][key])
    return raw


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
