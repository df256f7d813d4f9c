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
from observer.kis.settings import KisSettings, env_prefix
from observer.process.logs import MIN_SECRET_LENGTH, register_secret

__all__ = [
    "Credentials",
    "Secret",
    "account_credentials",
    "configured_credentials",
    "load_credentials",
    "read_key_pairs",
    "read_owner_only",
    "refuse_short",
]


class Secret:
    """A string that never shows itself; ``reveal()`` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value, short_too=True)  # masked in every log line from now on

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
        Neither source has them, or the file is missing, unreadable, readable by others,
        or not TOML with both values, or a value is too short to be masked in logs.
    """
    prefix = env_prefix(alias)
    key, secret = os.environ.get(prefix + "APP_KEY"), os.environ.get(prefix + "APP_SECRET")
    if key and secret:
        refuse_short(f"{prefix}APP_KEY/APP_SECRET", key, secret)
        return Credentials(alias, Secret(key), Secret(secret))
    if file is None:
        raise ConfigError(f"no credentials for {alias!r}: set {prefix}APP_KEY/APP_SECRET")
    raw = read_owner_only(file, f"credential file {file} for {alias!r}")
    try:
        parsed = msgspec.toml.decode(raw, type=_CredentialFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = None  # the decoder's message may quote the file's content: never shown
    if parsed is None or not (parsed.app_key and parsed.app_secret):
        raise ConfigError(f"credential file {file} for {alias!r} is not app_key/app_secret TOML")
    refuse_short(f"credential file {file} for {alias!r}", parsed.app_key, parsed.app_secret)
    return Credentials(alias, Secret(parsed.app_key), Secret(parsed.app_secret))


def refuse_short(
    where: str, *values: str, usual: str = "KIS app keys have 36, secrets 180"
) -> None:
    """`ConfigError` naming ``where`` (never a value) if a value is too short to be masked.

    The log masker ignores values shorter than MIN_SECRET_LENGTH (as words, they would hide
    ordinary text); a credential that short is a mistake (``usual`` says what is issued).
    """
    if any(len(value) < MIN_SECRET_LENGTH for value in values):
        raise ConfigError(
            f"{where}: a value shorter than {MIN_SECRET_LENGTH} characters, which logs could "
            f"not mask ({usual})"
        )


def read_owner_only(file: Path, what: str) -> bytes:
    """The bytes of ``file``, which must be owner-only; `ConfigError` naming ``what`` if not."""
    try:
        mode = stat.S_IMODE(file.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(f"{what} must be owner-only (chmod 600), is {mode:o}")
        return file.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"{what}: {exc.strerror}") from exc


def read_key_pairs(file: Path | None, text: str | None) -> dict[str, str] | None:
    """App keys and their secrets, from an owner-only ``file`` or from ``text``.

    ``KEY:SECRET`` per line of the file (blank lines and ``#`` comments skipped), or
    separated by spaces, commas or newlines in ``text`` (an environment variable); never
    from a command line, which every local user can read (``/proc/<pid>/cmdline``). Each
    secret is registered for masking. None when neither is given.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or open to others, a line is not ``KEY:SECRET``
        or its secret is too short to be masked in logs (named by its number, never
        shown), or there is no pair at all.
    """
    if file is not None:
        where = f"app keys file {file}"
        content = read_owner_only(file, where).decode(errors="replace")
        entries = [
            (f"line {n}", line.strip())
            for n, line in enumerate(content.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    elif text is not None:
        where = "the app keys variable"
        pairs = text.replace(",", " ").split()
        entries = [(f"entry {n}", pair) for n, pair in enumerate(pairs, start=1)]
    else:
        return None
    keys: dict[str, str] = {}
    for place, entry in entries:
        key, _, secret = entry.partition(":")
        if not key or not secret or any(c.isspace() for c in entry):
            raise ConfigError(f"{where}, {place}: not KEY:SECRET")
        refuse_short(f"{where}, {place}", secret)
        keys[key] = Secret(secret).reveal()  # registered: masked in every log line
    if not keys:
        raise ConfigError(f"{where} holds no KEY:SECRET pair")
    return keys


def account_credentials(kis: KisSettings, alias: str) -> Credentials:
    """The credentials of configured account ``alias`` (see `load_credentials`).

    With ``environment = "sim"`` and nothing configured for the account (no file, neither
    variable), placeholder keys, which the simulator accepts. Anything configured and refused
    is an error in every environment: silently replacing it would hide the mistake.

    Raises
    ------
    ConfigError
        No such account, or its credentials are missing or refused.
    """
    account = next((a for a in kis.accounts if a.alias == alias), None)
    if account is None:
        raise ConfigError(f"no kis.accounts entry with alias {alias!r}")
    file = account.credentials_file
    prefix = env_prefix(alias)
    configured = file or os.environ.get(prefix + "APP_KEY") or os.environ.get(prefix + "APP_SECRET")
    if kis.environment == "sim" and not configured:
        # The simulator accepts any key unless told otherwise; real hosts never get these.
        return Credentials(alias, Secret(f"sim-{alias}-app-key"), Secret(f"sim-{alias}-secret"))
    return load_credentials(alias, Path(file) if file else None)


def configured_credentials(kis: KisSettings) -> dict[str, Credentials]:
    """Every configured account's credentials, by alias.

    A worker calls this before READY, so that refused credentials stop it at start (exit 2,
    a failed start to the supervisor) and not in the middle of its day.

    Raises
    ------
    ConfigError
        For the first account whose credentials are missing or refused, or two accounts
        with one app key.
    """
    found = {a.alias: account_credentials(kis, a.alias) for a in kis.accounts}
    owners: dict[Secret, str] = {}
    for alias, credentials in found.items():
        other = owners.setdefault(credentials.app_key, alias)
        if other != alias:
            raise ConfigError(
                f"accounts {other!r} and {alias!r} have the same app key: one app key is one "
                "account (its REST budget and its one WebSocket session at KIS)"
            )
    return found
