"""CURVE on tcp endpoints: key files, socket options and the writer's allow-list (ZAP).

Over ``tcp://`` every bus socket is CURVE-encrypted and authenticated. A key pair is
``<name>.key`` (public) and ``<name>.key_secret`` (owner-only 0600, refused otherwise). The
writer is the CURVE server of ingest and feed: it admits only allow-listed keys (`Gatekeeper`,
started before any socket binds: without ZAP libzmq accepts any client) and holds each key to
the sources it may send as (`ServerCurve.may_send`, from the message's ``User-Id``).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import zmq
from zmq.auth import load_certificate
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from bus.errors import KeyFileError

__all__ = [
    "PUBLIC_SUFFIX",
    "SECRET_SUFFIX",
    "ClientCurve",
    "Gatekeeper",
    "KeyPair",
    "ServerCurve",
    "generate_key_pair",
    "load_key_pair",
    "load_public_key",
]

log = logging.getLogger(__name__)

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"  # noqa: S105 - a file suffix, not a secret
Z85_KEY_LENGTH = 40  # a 32-byte Curve25519 key in Z85


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A CURVE key pair in Z85; its ``repr`` never shows the secret part."""

    public: bytes
    secret: bytes = field(repr=False)


def _certificate(public: bytes, secret: bytes | None) -> str:
    lines = [
        "#   ZeroMQ CURVE certificate written by `observer keys generate`",
        "metadata",
        "curve",
        f'    public-key = "{public.decode("ascii")}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def generate_key_pair(keys_dir: Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair ``<name>.key`` / ``<name>.key_secret``; return both paths.

    Both are in ZeroMQ's certificate format (`zmq.auth.load_certificate` reads them).

    The secret file is created owner-only (0600) before anything is written into it, and an
    existing pair is never overwritten (`KeyFileError`): replacing a key is a deliberate act.
    Both files and their folder are fsynced before the return: a power cut after it keeps
    the pair whole.
    """
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"invalid key name {name!r}")
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_path = keys_dir / f"{name}{PUBLIC_SUFFIX}"
    secret_path = keys_dir / f"{name}{SECRET_SUFFIX}"
    if public_path.exists() or secret_path.exists():
        raise KeyFileError(f"a key pair named {name!r} already exists in {keys_dir}")
    public, secret = zmq.curve_keypair()
    try:
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{secret_path} already exists") from exc
    _write_durably(fd, _certificate(public, secret))
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    _write_durably(fd, _certificate(public, None))
    public_path.chmod(0o644)  # whatever the umask: the public part is meant to be shared
    folder = os.open(keys_dir, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return public_path, secret_path


def _write_durably(fd: int, text: str) -> None:
    """Write ``text`` to ``fd``, fsync it and close it.

    The bus imports no `observer`, so this is its own small form of
    `observer.process.private_files.write_private`.
    """
    with os.fdopen(fd, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _read(path: Path) -> tuple[bytes, bytes | None]:
    try:
        public, secret = load_certificate(path)
    except OSError as exc:
        reason = exc.strerror or "no such file"  # pyzmq's own OSError for a missing file has none
        raise KeyFileError(f"cannot read the key file {path}: {reason}") from None
    except ValueError:
        raise KeyFileError(f"{path} is not a CURVE key file") from None
    for part in (public, secret):
        if part is not None and not _is_z85_key(part):
            raise KeyFileError(f"{path} holds a malformed CURVE key")
    # A pair edited by hand (or two files pasted together) would pass the handshake's own
    # checks only to be refused later as an unknown key: catch it where the file is named.
    if secret is not None and zmq.curve_public(secret) != public:
        raise KeyFileError(
            f"{path} holds a mismatched CURVE key pair: its public key is not its secret key's"
        )
    return public, secret


def _is_z85_key(part: bytes) -> bool:
    """True for 40 characters of Z85 that decode to a 32-byte key.

    The length alone is not enough: libzmq refuses a non-Z85 key only when the socket binds
    or connects, as an "Invalid argument" that names no file.
    """
    if len(part) != Z85_KEY_LENGTH:
        return False
    try:
        z85.decode(part)
    except (KeyError, ValueError, struct.error):  # a character outside Z85, or an overflow
        return False
    return True


def load_public_key(path: Path) -> bytes:
    """The Z85 public key of a ``.key`` file (or of a secret file's public part)."""
    return _read(path)[0]


def load_key_pair(keys_dir: Path, name: str) -> KeyPair:
    """Load ``<keys_dir>/<name>.key_secret``; `KeyFileError` if others may read it."""
    path = keys_dir / f"{name}{SECRET_SUFFIX}"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"no CURVE key pair {name!r}: {path} ({exc.strerror})") from None
    if mode & 0o077:
        raise KeyFileError(f"{path} may be read by others (mode {mode & 0o777:o}): chmod 600 it")
    public, secret = _read(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key")
    return KeyPair(public, secret)


@dataclass(frozen=True, slots=True)
class ClientCurve:
    """A producer's or subscriber's side: its own pair and the writer's public key."""

    keys: KeyPair
    server_public: bytes

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE client (before it connects)."""
        socket.curve_secretkey = self.keys.secret
        socket.curve_publickey = self.keys.public
        socket.curve_serverkey = self.server_public


@dataclass(frozen=True, slots=True)
class ServerCurve:
    """The writer's side: its own pair and the allow-list.

    ``clients`` maps each admitted client's Z85 public key to the source names it may send
    as (shell-style patterns: ``track_b*``). A key that is not there is refused by ZAP.
    """

    keys: KeyPair
    clients: Mapping[bytes, tuple[str, ...]]

    def apply(self, socket: zmq.Socket[bytes]) -> None:
        """Make ``socket`` a CURVE server (before it binds)."""
        socket.curve_secretkey = self.keys.secret
        socket.curve_publickey = self.keys.public
        socket.curve_server = True

    def may_send(self, user_id: str, source: str) -> bool:
        """True if the client admitted as ``user_id`` (its Z85 key) may send as ``source``."""
        patterns = self.clients.get(user_id.encode("ascii", "replace"), ())
        return any(fnmatchcase(source, pattern) for pattern in patterns)


class Gatekeeper:
    """ZAP for one context: admits the allow-listed keys, refuses and records the others.

    Each refused key is logged once (its public part only) and kept for `take_refused`, so
    that the writer turns it into one alert.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], server: ServerCurve) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._seen: set[bytes] = set()
        self._new: list[str] = []
        self.refusals = 0
        self._auth = ThreadAuthenticator(context, log=logging.getLogger("zmq.auth"))

    def start(self) -> Gatekeeper:
        """Start answering ZAP requests (before any CURVE server socket binds)."""
        self._auth.configure_curve_callback("*", self)
        self._auth.start()
        return self

    def callback(self, domain: str, key: bytes) -> bool:
        """Answer ZAP for one handshake: True if this Z85 client key is admitted."""
        if key in self._server.clients:
            return True
        with self._lock:
            self.refusals += 1
            if key not in self._seen:
                self._seen.add(key)
                self._new.append(key.decode("ascii", "replace"))
                log.warning(
                    "refused a CURVE client with unknown public key %s",
                    key.decode("ascii", "replace"),
                )
        return False

    def take_refused(self) -> list[str]:
        """Public keys refused for the first time since the last call."""
        with self._lock:
            new, self._new = self._new, []
        return new

    def stop(self) -> None:
        """Stop the ZAP thread."""
        self._auth.stop()
