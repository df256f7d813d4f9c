"""Typed, frozen, strict settings loaded once from ``config/observer.toml``.

Unknown keys are errors that name their path; bounds are checked on load. Settings are
passed down to the code that needs them; there is no global config object.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from observer.errors import ConfigError

__all__ = [
    "AccountSettings",
    "BusSettings",
    "DatabaseSettings",
    "KisSettings",
    "PathSettings",
    "Settings",
    "WriterSettings",
    "default_config_path",
    "load_settings",
]

Positive = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class PathSettings(_Strict, frozen=True):
    """Where the processes keep sockets, locks and outboxes."""

    run_dir: str = "var/run"


class DatabaseSettings(_Strict, frozen=True):
    """The writer's database."""

    url: str = "sqlite:///var/observer.db"


class BusSettings(_Strict, frozen=True):
    """Producer tuning shared by every worker."""

    batch_events: Positive = 1000
    linger_ms: Annotated[int, Meta(ge=0)] = 2
    max_in_flight: Positive = 20_000
    ack_timeout_ms: Positive = 5000
    backlog_alert_events: Positive = 1_000_000
    fsync: bool = False


class WriterSettings(_Strict, frozen=True):
    """Writer loop tuning."""

    batch_events: Positive = 20_000
    batch_delay_ms: Annotated[int, Meta(ge=0)] = 5
    retry_max_s: PositiveFloat = 10.0
    drain_s: PositiveFloat = 5.0
    migrate_on_start: bool = True


class AccountSettings(_Strict, frozen=True):
    """One KIS account (its app key is its WebSocket session). Secrets are never here."""

    alias: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
    credentials_file: str = ""  # owner-only TOML; empty: OBSERVER_KIS_<ALIAS>_APP_KEY/SECRET
    rest_per_second: PositiveFloat = 20.0  # the account's REST budget at KIS (UNCONFIRMED)


class KisSettings(_Strict, frozen=True):
    """Where the KIS accounts live and how each process shares their budgets."""

    environment: Literal["real", "paper", "sim"] = "sim"
    sim_url: str = "http://127.0.0.1:8800"  # REST, WebSocket and masters of `observer sim`
    master_url: str = ""  # empty: KIS's public master host (the simulator's in sim)
    token_dir: str = "var/tokens"  # noqa: S105 - a folder name, not a secret
    accounts: tuple[AccountSettings, ...] = (AccountSettings(alias="acct1"),)
    # Fraction of every account's REST budget each kind of process may use; together <= 1.
    process_share: dict[str, Annotated[float, Meta(gt=0, le=1)]] = msgspec.field(
        default_factory=lambda: {"track_a": 0.55, "gap_recovery": 0.25, "jobs": 0.15}
    )


class Settings(_Strict, frozen=True):
    """Everything in ``observer.toml``."""

    paths: PathSettings = PathSettings()
    database: DatabaseSettings = DatabaseSettings()
    bus: BusSettings = BusSettings()
    writer: WriterSettings = WriterSettings()
    kis: KisSettings = KisSettings()

    def __post_init__(self) -> None:
        shares = sum(self.kis.process_share.values())
        if shares > 1.0 + 1e-9:
            raise ValueError(f"kis.process_share adds up to {shares:.2f} > 1 of each account")
        aliases = [a.alias for a in self.kis.accounts]
        if len(set(aliases)) != len(aliases):
            raise ValueError(f"kis.accounts repeat an alias: {aliases}")


def default_config_path() -> Path:
    """``$OBSERVER_CONFIG`` if set, else ``config/observer.toml`` of this checkout."""
    env = os.environ.get("OBSERVER_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "config" / "observer.toml"


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate settings; raise `ConfigError` naming the bad key."""
    path = path or default_config_path()
    try:
        return msgspec.toml.decode(path.read_bytes(), type=Settings)
    except FileNotFoundError as exc:
        raise ConfigError(f"no configuration file at {path}") from exc
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
