"""The control socket under a flood of connections: it appears only once it listens, idle
connections are timed out, those beyond the limit wait unaccepted, and a flood neither
exhausts the supervisor's descriptors nor floods its log with warnings.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from observer.supervisor import control
from observer.supervisor.control import ControlServer, Reply, Request, request
from tests.support import WRITER_PROGRAM, SupervisorProcess, load_program, wait_until

LIMITS = "control_max_connections = 8\ncontrol_idle_timeout_s = 1.0\n"


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[SupervisorProcess]:
    sup = SupervisorProcess(
        tmp_path, WRITER_PROGRAM + load_program(rate=20), settings=LIMITS
    ).start()
    yield sup
    sup.terminate()


def connect(path: Path) -> socket.socket | None:
    """An idle connection (nothing sent), or None once the backlog is full."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.connect(str(path))
    except BlockingIOError:
        sock.close()
        return None
    return sock


def closed_by_peer(sock: socket.socket) -> bytes | None:
    """What the supervisor sent before closing ``sock``; None while it is still open."""
    chunks = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return chunks
        if not chunk:
            return chunks
        chunks += chunk


def test_the_socket_file_appears_only_once_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sees the file can connect: a bound socket refuses until it listens.

    A stale file (a killed supervisor's) stays in place until the new socket listens, and
    is then replaced; nothing else is left in the folder.
    """
    path = tmp_path / "run" / "control.sock"
    path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))
    at_listen: list[tuple[str, bool]] = []  # where the socket is bound; the stale file there?

    class Recording(socket.socket):
        def listen(self, backlog: int = 0) -> None:
            at_listen.append((self.getsockname(), path.exists()))
            super().listen(backlog)

    async def answer(request: Request) -> Reply:
        return Reply(ok=True, data={"command": request.command})

    async def serve() -> Reply:
        server = ControlServer(answer, path)
        monkeypatch.setattr(control.socket, "socket", Recording)
        try:
            await server.start()
        finally:
            monkeypatch.undo()
        try:
            return await asyncio.to_thread(request, path, "status", [], 10)
        finally:
            await server.close()

    reply = asyncio.run(serve())
    [(bound, stale_kept)] = at_listen
    assert bound != str(path) and stale_kept  # not yet at the path, the stale file still there
    assert reply.ok and reply.data == {"command": "status"}
    assert list(path.parent.iterdir()) == []  # closed: no socket file, no private name


def test_idle_connections_are_timed_out(sup: SupervisorProcess) -> None:
    sock = connect(sup.socket)
    assert sock is not None
    try:
        wait_until(lambda: closed_by_peer(sock) is not None, 10, "the idle connection closed")
    finally:
        sock.close()


def descriptors(sup: SupervisorProcess) -> int:
    assert sup.proc is not None
    return psutil.Process(sup.proc.pid).num_fds()


def control_connections(sup: SupervisorProcess) -> int:
    """The supervisor's accepted control connections (its other descriptors come and go).

    An accepted Unix socket carries its listener's bound name: the private one it had
    before it was renamed into place.
    """
    assert sup.proc is not None
    bound = str(sup.socket.with_name(f".{sup.socket.name[:-1]}"))
    sockets = psutil.Process(sup.proc.pid).net_connections(kind="unix")
    return sum(1 for conn in sockets if conn.laddr == bound) - 1  # less the listener


def test_connections_beyond_the_limit_wait_unaccepted(sup: SupervisorProcess) -> None:
    """Eight idle connections take every slot; the rest wait in the backlog, not as fds."""
    wait_until(lambda: control_connections(sup) == 0, 10, "the start's queries closed")
    socks = [s for s in (connect(sup.socket) for _ in range(8)) if s is not None]
    try:
        wait_until(lambda: control_connections(sup) == 8, 10, "the slots taken")
        socks += [s for s in (connect(sup.socket) for _ in range(30)) if s is not None]
        assert len(socks) > 8  # some wait in the backlog ...
        assert control_connections(sup) <= 8  # ... at no cost to the supervisor
        assert sup.status()["healthy"]  # served once idle ones time out (1 s each)
    finally:
        for sock in socks:
            sock.close()


def test_a_flood_of_connections_neither_exhausts_descriptors_nor_floods_the_log(
    sup: SupervisorProcess,
) -> None:
    """256 descriptors, connections until the backlog is full: a killed program comes back."""
    assert sup.proc is not None
    resource.prlimit(sup.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
    before = len(sup.log.read_text().splitlines())
    load = sup.program("load")["pid"]
    socks: list[socket.socket] = []
    try:
        for _ in range(1000):
            sock = connect(sup.socket)
            if sock is not None:
                socks.append(sock)
        os.kill(load, signal.SIGKILL)
        for _ in range(1000):
            sock = connect(sup.socket)
            if sock is not None:
                socks.append(sock)
        assert descriptors(sup) < 128

        def restarted() -> bool:
            program = sup.program("load")
            return bool(program["state"] == "running" and program["pid"] != load)

        wait_until(restarted, 60, "load restarted")
    finally:
        for sock in socks:
            sock.close()
    assert sup.status()["healthy"]
    lines = sup.log.read_text().splitlines()[before:]
    assert len(lines) < 50, "\n".join(lines[:50])
