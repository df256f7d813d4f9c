"""The control socket: one JSON request line in, one JSON reply line out, same user only.

The socket is a Unix socket in the owner-only run directory, itself 0600, and every
connection's peer uid (SO_PEERCRED) must be the supervisor's. Commands are small functions
in `observer.supervisor.commands`; every reply has the same shape (`Reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from observer.errors import ObserverError

if TYPE_CHECKING:
    from observer.supervisor.core import Supervisor

__all__ = ["CommandError", "ControlServer", "Reply", "Request", "request"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


class Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A command and its arguments."""

    command: str
    args: list[str] = []


class Reply(msgspec.Struct, frozen=True):
    """Every reply: ``ok``, a human ``reason``, a stable ``code`` and command ``data``."""

    ok: bool
    reason: str = ""
    code: str = "ok"
    data: dict[str, Any] = {}


class CommandError(ObserverError):
    """A command refused, with its stable code (unknown_program, not_a_job, ...)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class ControlServer:
    """Serve `Request`s for a supervisor on a Unix socket at ``path``."""

    def __init__(self, supervisor: Supervisor, path: Path) -> None:
        self.supervisor = supervisor
        self.path = path
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind (replacing a stale socket file) with mode 0600 in a 0700 directory."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # the supervisor lock proves no other supervisor uses it
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST_BYTES
            )
        finally:
            os.umask(old)
        self.path.chmod(0o600)
        log.info("control socket at %s", self.path)

    async def close(self) -> None:
        """Stop accepting and remove the socket file."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from observer.supervisor.commands import dispatch

        try:
            line = await reader.readline()  # read first: unread data would reset the reply
            if _peer_uid(writer.get_extra_info("socket")) != os.getuid():
                log.warning("refused a control request from another user")
                reply = Reply(False, "peer is another user", "forbidden")
            else:
                try:
                    req = msgspec.json.decode(line, type=Request)
                except msgspec.DecodeError as exc:
                    reply = Reply(False, f"bad request: {exc}", "bad_request")
                else:
                    reply = await dispatch(self.supervisor, req)
            writer.write(msgspec.json.encode(reply) + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            log.warning("control connection failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def request(path: Path, command: str, args: list[str], timeout_s: float) -> Reply:
    """Send one command to the supervisor at ``path`` and return its reply (client side)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(msgspec.json.encode(Request(command, args)) + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return msgspec.json.decode(b"".join(chunks), type=Reply)
