"""The KRX portal login: from the environment or an owner-only file, never from config.toml."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from observer.errors import ConfigError
from observer.kis.credentials import Secret, read_owner_only, refuse_short
from observer.kis.settings import KisSettings
from observer.krx.settings import KrxSettings

__all__ = ["ENV_ID", "ENV_PASSWORD", "KrxCredentials", "krx_credentials"]

ENV_ID = "OBSERVER_KRX_ID"
ENV_PASSWORD = "OBSERVER_KRX_PW"  # noqa: S105 - the variable's name, not a password
_USUAL = "no KRX member id or password is that short"


@dataclass(frozen=True, slots=True)
class KrxCredentials:
    """A KRX Data Marketplace member's id and password (both print as ``***``)."""

    member_id: Secret
    password: Secret


class _CredentialFile(msgspec.Struct, forbid_unknown_fields=True):
    member_id: str
    password: str


def krx_credentials(krx: KrxSettings, kis: KisSettings) -> KrxCredentials:
    """The configured KRX login.

    From ``OBSERVER_KRX_ID`` and ``OBSERVER_KRX_PW`` when both are set, else from
    ``krx.credentials_file`` (TOML with ``member_id`` and ``password``, owner-only). With
    ``kis.environment = "sim"`` and nothing configured, a placeholder the simulator accepts.

    Raises
    ------
    ConfigError
        Nothing configured outside the simulator, a file that is missing, open to others
        or not that TOML (its content is never quoted), or a value too short for the logs
        to mask (under 3 characters).
    """
    member, password = os.environ.get(ENV_ID), os.environ.get(ENV_PASSWORD)
    if member and password:
        refuse_short(f"{ENV_ID}/{ENV_PASSWORD}", member, password, usual=_USUAL)
        return KrxCredentials(Secret(member), Secret(password))
    file = krx.credentials_file
    if not file:
        if kis.environment == "sim" and not (member or password):
            return KrxCredentials(Secret("sim-krx-member"), Secret("sim-krx-password"))
        raise ConfigError(f"no KRX login: set {ENV_ID}/{ENV_PASSWORD} or krx.credentials_file")
    raw = read_owner_only(Path(file), f"KRX credential file {file}")
    try:
        parsed = msgspec.toml.decode(raw, type=_CredentialFile)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = None  # the decoder's message may quote the file: never shown
    if parsed is None or not (parsed.member_id and parsed.password):
        raise ConfigError(f"KRX credential file {file} is not member_id/password TOML")
    refuse_short(f"KRX credential file {file}", parsed.member_id, parsed.password, usual=_USUAL)
    return KrxCredentials(Secret(parsed.member_id), Secret(parsed.password))
