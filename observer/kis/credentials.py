"""App keys and secrets: from the environment or an owner-only file, never from config.toml.

Every value here prints as ``'***'``: reprs, f-strings and exceptions never show a secret.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import msgspec

from observer.errors import ConfigError
from observer.logs import register_secret

__all__ = ["Credentials", "Secret", "load_credentials"]


class Secret:
    """A string that never shows itself; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)  # masked in every log line from now on

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One account's app key and secret (alias is the name used in logs and events)."""

    alias: str
    app_key: Secret
    app_secret: Secret


class _CredentialFile(msgspec.Struct, forbid_unknown_fields=True):
    app_key: str
    app_secret: str


def load_credentials(alias: str, file: Path | None = None) -> Credentials:
    """Read an account's credentials.

    From ``OBSERVER_KIS_<ALIAS>_APP_KEY`` and ``..._APP_SECRET`` when both are set, else from
    ``file`` (TOML with ``app_key`` and ``app_secret``), which must be owner-only (0600).

    Raises
    ------
    ConfigError
        Neither source has them, or the file is readable by others.
    """
    prefix = f"OBSERVER_KIS_{alias.upper().replace('-', '_')}_"
    key, secret = os.environ.get(prefix + "APP_KEY"), os.environ.get(prefix + "APP_SECRET")
    if key and secret:
        return Credentials(alias, Secret(key), Secret(secret))
    if file is None:
        raise ConfigError(f"no credentials for {alias!r}: set {prefix}APP_KEY/APP_SECRET")
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
    except FileNotFoundError as exc:
        raise ConfigError(f"credential file {file} for {alias!r} does not exist") from exc
    if mode & 0o077:
        raise ConfigError(f"credential file {file} must be owner-only (chmod 600), is {mode:o}")
    try:
        parsed = msgspec.toml.decode(file.read_bytes(), type=_CredentialFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # The decoder's message may quote the file's content: neither show nor chain it.
        raise ConfigError(f"credential file {file} is not app_key/app_secret TOML") from None
    return Credentials(alias, Secret(parsed.app_key), Secret(parsed.app_secret))
