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
    A table of one's own keeps the built-in values of the keys it leaves out (`_with_builtins`).
    """
    path = path or default_config_path()
    raw = _with_builtins(read_toml(path), Settings())
    try:
        settings = msgspec.convert(raw, Settings)
        check_settings(settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_name_the_program(raw, exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return settings


def _with_builtins(raw: dict[str, Any], builtin: msgspec.Struct) -> dict[str, Any]:
    """``raw`` with each table of its own keeping the built-in values of the keys it leaves out.

    A table's built-in value may differ from its type's defaults (the venues' days of other
    hours, eras and measures; each Track B trigger's thresholds): msgspec builds a table the
    file writes from its type's defaults, so a table setting one key would drop the other
    keys' built-in values (a volatility spike's ``weight`` alone made its threshold 3.0, not
    2.0). Filled as ``extends`` merges: key by key, a value or an array replacing the
    built-in's whole (an empty list drops built-in rows on purpose). ``builtin``: the values
    ``raw`` would stand for if it were empty (`Settings()` at the root).
    """
    for field in msgspec.structs.fields(builtin):
        table, value = raw.get(field.encode_name), getattr(builtin, field.name)
        if not (isinstance(table, dict) and isinstance(value, msgspec.Struct)):
            continue
        for key in msgspec.structs.fields(value):
            own = getattr(value, key.name)
            if key.encode_name not in table and (key.required or own != _default_of(key)):
                table[key.encode_name] = msgspec.to_builtins(own, builtin_types=(date,))
        _with_builtins(table, value)
    return raw


def _default_of(field: msgspec.structs.FieldInfo) -> Any:
    """A field's default as its type gives it."""
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


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
