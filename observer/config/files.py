"""Reading configuration files: a file's tables over the file it ``extends``.

Old names are read with a warning each: a renamed table under its new name, a moved key in its
new table (`_MOVED_KEYS`), Track B's switches as the ``[track_b.feeds]`` rows they meant
(`_switches`, once the files are merged); a key no longer read is left out (`_RETIRED_KEYS`).
Validation is the settings' (`observer.config.load.load_settings`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec

from observer.config.workers import OLD_SWITCHES, feeds_of_switches
from observer.errors import ConfigError

__all__ = ["config_files", "read_toml"]

log = logging.getLogger(__name__)


def read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's tables, merged over the file it ``extends`` (if any)."""
    try:
        raw: dict[str, Any] = msgspec.toml.decode(path.read_bytes())
    except FileNotFoundError as exc:
        raise ConfigError(f"no configuration file at {path}") from exc
    except OSError as exc:  # a folder, or unreadable
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw = _renamed(raw, path)
    base = raw.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: extends must be the path of a configuration file")
        parent = (path.parent / base).resolve()
        if parent in seen or parent == path.resolve():
            raise ConfigError(f"{path}: extends {parent}, which extends it again")
        raw = _merged(read_toml(parent, (*seen, path.resolve())), raw)
    return raw if seen else _switches(raw, path)


def _switches(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """Track B's old switches as the ``[track_b.feeds]`` rows they meant (a warning).

    Read once the files are merged: a switch a base file set and one its extension set
    together make the rows. Beside a ``[track_b.feeds]`` table: an error, never a guess.
    """
    track_b = raw.get("track_b")
    if not isinstance(track_b, dict):
        return raw
    old = {key: track_b[key] for key in OLD_SWITCHES if key in track_b}
    if not old:
        return raw
    named = ", ".join(old)
    if "feeds" in track_b:
        raise ConfigError(
            f"{path}: [track_b] {named} and [track_b.feeds] both: the rows replace the "
            "switches, keep the rows"
        )
    try:
        rows = feeds_of_switches(old)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    shown = "\n".join(f"{row} = {value!r}" for row, value in rows.items()).replace("'", '"')
    log.warning(
        "%s: [track_b] %s are now the rows of [track_b.feeds]; these do the same:\n"
        "[track_b.feeds]\n%s",
        path,
        named,
        shown,
    )
    kept = {key: value for key, value in track_b.items() if key not in old}
    return {**raw, "track_b": {**kept, "feeds": rows}}


def config_files(path: Path) -> list[Path]:
    """``path`` and each file it ``extends``, in that order, found as `load_settings` does.

    A base is relative to the folder of the path as given (a link's, not its target's).
    Raises `ConfigError` for a file that is missing or not TOML.
    """
    files: list[Path] = []
    current: Path | None = path.absolute()
    while current is not None and current not in files:
        files.append(current)
        try:
            base = msgspec.toml.decode(current.read_bytes()).get("extends")
        except (OSError, msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{current}: {exc}") from exc
        current = (current.parent / base).resolve() if isinstance(base, str) else None
    return files


# Tables that were renamed, and keys no longer read (with why): a file written for an
# earlier release keeps working.
_OLD_TABLE_NAMES = {"masterfile": "master_file"}
_RETIRED_KEYS = {
    ("supervisor", "open_alerts_lookback_s"): "open alerts are counted whatever their age",
    ("etf", "holdings_max_pages"): "FHKST121600C0 cannot be paged: one answer is read",
}
# Keys that moved to another table: (table, key) -> (table path, key).
_STREAM = ("kis", "stream")
_MOVED_KEYS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("track_b", "registrations_per_account"): (_STREAM, "max_registrations"),
    ("track_b", "reconnects_per_hour"): (_STREAM, "reconnects_per_hour"),
    ("track_b", "idle_silence_s"): (_STREAM, "idle_silence_s"),
    ("track_b", "identify_idle"): (_STREAM, "identify_idle"),
    ("track_b", "pingpong_answer"): (_STREAM, "pingpong_answer"),
    ("track_b", "silence_factor"): (_STREAM, "silence_factor"),
    ("track_b", "max_frame_bytes"): (_STREAM, "max_frame_bytes"),
    ("track_b", "bad_frames_per_minute"): (_STREAM, "bad_frames_per_minute"),
}


def _renamed(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """``raw`` with every table under its current name and no retired key (warnings)."""
    for old, new in _OLD_TABLE_NAMES.items():
        if old not in raw:
            continue
        if new in raw:
            raise ConfigError(f"{path}: [{old}] is the old name of [{new}]: keep one of them")
        log.warning("%s: [%s] is now [%s]", path, old, new)
        raw[new] = raw.pop(old)
    for (table, key), why in _RETIRED_KEYS.items():
        section = raw.get(table)
        if isinstance(section, dict) and key in section:
            log.warning("%s: [%s] %s is no longer read (%s): remove it", path, table, key, why)
            raw[table] = {k: v for k, v in section.items() if k != key}
    for (table, key), (path_to, new_key) in _MOVED_KEYS.items():
        section = raw.get(table)
        if not (isinstance(section, dict) and key in section):
            continue
        where = f"[{'.'.join(path_to)}] {new_key}"
        target = raw
        for name in path_to:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{path}: {'.'.join(path_to)} must be a table")
        if new_key in target:
            raise ConfigError(f"{path}: [{table}] {key} is the old place of {where}: keep one")
        log.warning("%s: [%s] %s is now %s", path, table, key, where)
        target[new_key] = section[key]
        raw[table] = {k: v for k, v in section.items() if k != key}
    return raw


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
