"""The owner-only files caching each account's access token and approval key.

One file per account, environment and kind (``<alias>-<environment>-<kind>.json``, 0600),
replaced atomically and durably, so a reader sees the old entry or the new one. Every
process of an account shares them (`observer.kis.auth.TokenManager`); status pages read
only when an entry was issued and when it expires (`cached_validity`), never the token;
what must tell two entries apart without keeping one holds their `key_digest`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from bus.events import Alert
from bus.lock import InstanceLock, LockHeld
from observer.process.private_files import write_private
from observer.process.state_files import reason, unreadable

__all__ = [
    "Cached",
    "cache_path",
    "cached_validity",
    "decode_cached",
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


def decode_cached(data: bytes) -> Cached:
    """An entry from a cache file's bytes; `msgspec.DecodeError` if they are none.

    The error names a position and a type, never the token.
    """
    return msgspec.json.decode(data, type=Cached)


def load_cached(
    path: Path, lock: Path, on_unreadable: Callable[[Alert], object] | None
) -> Cached | None:
    """The entry in ``path``; None without one, or if it does not read.

    A file that does not read (a power cut) is set aside with a ``state_file_unreadable``
    alert given to ``on_unreadable`` (`observer.process.state_files`), under the account's issuance
    ``lock``, so that an entry another process writes meanwhile is never the one moved. If
    another process holds that lock, the file is left to it: its issuance replaces it.
    A file that cannot be read at all is None as well, logged; nothing is moved.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # its contents unknown: nothing to set aside
        log.warning("cannot read the token cache %s: %s", path, exc)
        return None
    try:
        return decode_cached(data)
    except ValueError as exc:
        why = reason(data, exc)
    try:
        held = InstanceLock(lock)
    except (LockHeld, OSError):
        return None
    with contextlib.closing(held):
        try:
            still = path.read_bytes() == data  # not replaced since: still the bad one
        except OSError:
            still = False
        if still:
            outcome = "a new entry is issued (by the token job, where it is the issuer)"
            alert = unreadable(path, why, outcome)
            if on_unreadable is not None:
                on_unreadable(alert)
    return None


def save_cached(path: Path, cached: Cached) -> None:
    """Replace ``path`` with ``cached`` (owner-only, atomically and durably)."""
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
