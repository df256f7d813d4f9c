"""The owner-only files caching each account's access token and approval key.

One file per account, environment and kind (``<alias>-<environment>-<kind>.json``, 0600),
replaced atomically, so a reader sees the old entry or the new one. Every process of an
account shares them (`observer.kis.auth.TokenManager`); status pages read only when an entry
was issued and when it expires (`cached_validity`), never the token; what must tell two
entries apart without keeping one holds their `key_digest`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from observer.errors import KisProtocolError
from observer.kis.parse import decode_json
from observer.private_files import write_private

__all__ = [
    "Cached",
    "cache_path",
    "cached_validity",
    "key_digest",
    "load_cached",
    "newer_than",
    "other_key",
    "other_than",
    "save_cached",
]

log = logging.getLogger(__name__)


class Cached(msgspec.Struct):
    """A cached token or key, when it was issued and when it expires (UTC ns)."""

    value: str
    issued_ns: int
    expires_ns: int


class _Validity(msgspec.Struct):
    issued_ns: int
    expires_ns: int


def cache_path(cache_dir: Path, alias: str, environment: str, kind: str) -> Path:
    """The owner-only file caching one account's ``access_token`` or ``approval_key``."""
    return cache_dir / f"{alias}-{environment}-{kind}.json"


def cached_validity(
    cache_dir: Path, alias: str, environment: str, kind: str = "access_token"
) -> tuple[int, int] | None:
    """When the cached token was issued and when it expires (UTC ns); None without one.

    The token itself is never decoded: status pages read this, and it must not travel.
    """
    try:
        found = msgspec.json.decode(
            cache_path(cache_dir, alias, environment, kind).read_bytes(), type=_Validity
        )
    except (OSError, msgspec.DecodeError):
        return None
    return found.issued_ns, found.expires_ns


def load_cached(path: Path) -> Cached | None:
    """The entry in ``path``; None without one, or if it cannot be read (logged)."""
    try:
        return decode_json(path.read_bytes(), Cached, str(path))
    except FileNotFoundError:
        return None
    except KisProtocolError:
        log.warning("ignoring unreadable token cache %s", path)
        return None


def save_cached(path: Path, cached: Cached) -> None:
    """Replace ``path`` with ``cached`` (owner-only, atomically)."""
    write_private(path, msgspec.json.encode(cached))


def key_digest(key: str) -> bytes:
    """A digest that tells approval keys (or tokens) apart without keeping one."""
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


# What an issuance or a wait accepts as the entry it is after (`observer.kis.auth`):


def newer_than(cached: Cached | None) -> Callable[[Cached], bool]:
    """Accepts an entry issued after ``cached`` (any entry if there was none)."""
    since = cached.issued_ns if cached is not None else -1
    return lambda c: c.issued_ns > since


def other_than(value: str) -> Callable[[Cached], bool]:
    """Accepts an entry holding another token than ``value``."""
    return lambda c: c.value != value


def other_key(stale: bytes, now_ns: int) -> Callable[[Cached], bool]:
    """Accepts an unexpired entry holding another key than the one ``stale`` digests."""
    return lambda c: key_digest(c.value) != stale and now_ns < c.expires_ns
