"""The control socket: one JSON request line in, one JSON reply line out, same user only.

The socket is a Unix socket in the owner-only run directory, itself 0600, and every
connection's peer uid (SO_PEERCRED) must be the supervisor's. The server hands each request
to the function it is given (`observer.supervisor.commands.dispatch`); every reply has the
same shape (`Reply`). Connections are bounded (`ControlServer`) so idle or excess clients
cannot use up the supervisor's file descriptors; warnings are rate-limited to one line of a
kind per `WARN_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec

from observer.errors import ObserverError

__all__ = [
    "CommandError",
    "ControlServer",
    "NoReply",
    "Reply",
    "Request",
    "answer_bytes",
    "request",
]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
WARN_INTERVAL_S = 10.0  # one warning of a kind at most this often; the rest are counted
ACCEPT_RETRY_S = 1.0  # after a failed accept (out of descriptors), as asyncio's servers do
CONNECT_RETRY_S = 0.05  # a client finding the backlog full tries again after this long


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


class NoReply(ConnectionError):
    """The connection ended without a whole reply: the server died, or is no supervisor."""


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Throttled:
    """Warnings of one kind at most once per interval, each saying how many were held back."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(kind, 0.0):
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._next[kind] = now + self.interval_s
        held = self._held.pop(kind, 0)
        if held:
            message, args = message + " (and %d more since the last)", (*args, held)
        log.warning(message, *args)


class ControlServer:
    """Serve `Request`s on a Unix socket at ``path``, each answered by ``answer``.

    At most ``max_connections`` at once: beyond them nothing is accepted, and clients wait
    in the listen backlog (in the kernel, costing this process no descriptor; beyond those a
    client is told to try again, and `request` does). Each must send its request line, and
    take its reply, within ``idle_timeout_s``, or is closed.
    """

    def __init__(
        self,
        answer: Callable[[Request], Awaitable[Reply]],
        path: Path,
        max_connections: int = 32,
        idle_timeout_s: float = 5.0,
    ) -> None:
        self.answer = answer
        self.path = path
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._slots = asyncio.Semaphore(max_connections)
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._throttled = _Throttled(WARN_INTERVAL_S)

    async def start(self) -> None:
        """Listen with mode 0600 in a 0700 directory (replacing a stale socket file).

        The socket is bound and listening under a private name first and then renamed into
        place, so a client that sees the file can connect: a bound socket refuses
        connections until it listens.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # As long as the final name, so it fits wherever that does (a socket path is at
        # most 107 bytes); the supervisor lock proves no other supervisor uses either.
        binding = self.path.with_name(f".{self.path.name[:-1]}")
        with contextlib.suppress(FileNotFoundError):
            binding.unlink()  # left by a supervisor killed while it started
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(binding))
        finally:
            os.umask(old)
        binding.chmod(0o600)
        listener.listen(self.max_connections)
        binding.replace(self.path)  # over a stale file, atomically
        listener.setblocking(False)
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept(listener), name="control-accept")
        log.info("control socket at %s", self.path)

    async def serving(self) -> None:
        """Wait while the accept loop runs (from `start`); raise what ended it, if anything.

        A supervisor runs this beside its other tasks, so that losing its socket ends it
        instead of leaving it unreachable. Cancelling the wait leaves the loop to `close`.
        """
        if self._accepting is None:
            raise RuntimeError("serving() before start()")
        await asyncio.shield(self._accepting)

    async def close(self) -> None:
        """Stop accepting and remove the socket file."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.wait([self._accepting])  # a failure was raised by `serving`
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # a free slot first: the rest wait in the backlog
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as exc:  # out of descriptors: try again in a moment
                self._slots.release()
                self._throttled.warning("accept", "cannot accept a control connection: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._serve(connection), name="control-connection")
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve(self, connection: socket.socket) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_unix_connection(
                sock=connection, limit=MAX_REQUEST_BYTES
            )
            await self._answer(reader, writer)
        except TimeoutError:
            self._throttled.warning(
                "idle", "control connection idle for %gs: closed", self.idle_timeout_s
            )
        except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
            self._throttled.warning("failed", "control connection failed: %s", exc)
        finally:
            if writer is None:
                connection.close()
            else:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), self.idle_timeout_s)
                except (OSError, TimeoutError):
                    writer.transport.abort()  # a peer that takes nothing: drop what is unsent
            self._slots.release()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read first: unread data would reset the reply.
        line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
        if _peer_uid(writer.get_extra_info("socket")) != os.getuid():
            self._throttled.warning("forbidden", "refused a control request from another user")
            reply = Reply(False, "peer is another user", "forbidden")
        else:
            reply = await answer_bytes(self.answer, line)
        writer.write(msgspec.json.encode(reply) + b"\n")
        await asyncio.wait_for(writer.drain(), self.idle_timeout_s)


async def answer_bytes(answer: Callable[[Request], Awaitable[Reply]], data: bytes) -> Reply:
    """Decode one request (a `bad_request` reply if it is not one) and answer it."""
    try:
        req = msgspec.json.decode(data, type=Request)
    except msgspec.DecodeError as exc:
        return Reply(False, f"bad request: {exc}", "bad_request")
    return await answer(req)


def request(path: Path, command: str, args: list[str], timeout_s: float) -> Reply:
    """Send one command to the supervisor at ``path`` and return its reply (client side).

    While the supervisor's backlog is full (it serves its limit of connections and as many
    wait), connecting is tried again until ``timeout_s`` has passed. A connection closed
    without a whole reply (a supervisor that died meanwhile) raises `NoReply`, an `OSError`
    as every other failure to reach one is.
    """
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        while True:
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:  # EAGAIN: the backlog is full
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{path}: the supervisor accepts no connection") from None
                time.sleep(CONNECT_RETRY_S)  # process mechanics: real time
        sock.sendall(msgspec.json.encode(Request(command, args)) + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    if not chunks:
        raise NoReply("the connection was closed without a reply")
    try:
        return msgspec.json.decode(b"".join(chunks), type=Reply)
    except msgspec.DecodeError as exc:  # cut short, or not a supervisor's reply
        raise NoReply(f"not a whole reply ({exc})") from None
