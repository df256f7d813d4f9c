"""``observer ctl`` when no supervisor answers: one line and exit 2, never a traceback.

Exit 1 is ``status``'s "answered: unhealthy"; a socket that accepts and closes without a
reply (a supervisor that died mid-request), one that sends half a reply, a --data-dir that
is a file and a socket path too long for AF_UNIX used to end in a traceback and exit 1.
Over tcp (``--endpoint``, CURVE), a peer with the right key that answers something that is
no reply (garbled bytes, JSON of another shape) ended in msgspec's traceback.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import zmq

from bus.curve import ClientCurve, load_key_pair, load_public_key
from observer.supervisor.control import NoReply, request
from observer.supervisor.control_tcp import ControlUnreachable, request_tcp


@contextmanager
def serve_once_each(path: Path, answer: bytes) -> Iterator[None]:
    """A Unix socket at ``path`` that reads each request line, sends ``answer`` and closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with connection:
                connection.makefile("rb").readline()
                connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(10)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder whose socket paths fit AF_UNIX's 107 bytes, wherever pytest's tmp_path is."""
    with tempfile.TemporaryDirectory(prefix="ctl-", dir="/tmp") as name:
        yield Path(name)


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", "ctl", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_no_supervisor(
    result: subprocess.CompletedProcess[str], path: Path | str, why: str
) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"observer ctl: no supervisor answered at {path}: "), lines
    assert why in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (b"", "the connection was closed without a reply"),
        (b'{"ok": true, "rea', "not a whole reply (Input data was truncated)"),
        (b"hello\n", "not a whole reply"),
    ],
)
def test_a_socket_that_closes_without_a_whole_reply(
    short_dir: Path, answer: bytes, why: str
) -> None:
    path = short_dir / "control.sock"
    with serve_once_each(path, answer):
        with pytest.raises(NoReply, match=re.escape(why)):
            request(path, "status", [], 10)
        for command in (["status"], ["run", "backup", "--extra"]):
            assert_no_supervisor(ctl("--socket", str(path), *command), path, why)


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    path = afile / "run" / "control.sock"
    assert_no_supervisor(ctl("--data-dir", str(afile), "status"), path, "Not a directory")


def test_a_socket_path_too_long_for_af_unix(short_dir: Path) -> None:
    path = short_dir / ("x" * 120) / "control.sock"
    assert_no_supervisor(ctl("--socket", str(path), "status"), path, "AF_UNIX path too long")


def test_a_missing_socket_still_says_so_with_exit_2(short_dir: Path) -> None:
    result = ctl("--socket", str(short_dir / "none.sock"), "status")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "no supervisor at" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- over tcp (CURVE)


@contextmanager
def curve_peer_answering(keys: Path, answer: bytes) -> Iterator[str]:
    """A CURVE server with the host's key on loopback that answers every message ``answer``.

    No ZAP handler runs, so libzmq admits every client: the handshake succeeds and only the
    answer is wrong. Yields its endpoint.
    """
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    host = load_key_pair(keys, "store")
    router.curve_secretkey, router.curve_publickey = host.secret, host.public
    router.curve_server = True
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            if router.poll(50):
                identity, *_ = router.recv_multipart()
                router.send_multipart([identity, answer])
        router.close(0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        done.set()
        thread.join(10)
        context.term()


def test_a_tcp_endpoint_nobody_listens_on_is_said_at_once(keys: Path) -> None:
    """ZeroMQ retries a refused connection for ever: the request waited its whole timeout
    (60 s from ``observer ctl``, per host for ``status``) to say only "no reply"."""
    alice = ClientCurve(load_key_pair(keys, "alice"), load_public_key(keys / "store.key"))
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    why = f"no supervisor answered at {endpoint}: no connection within 5s"
    with pytest.raises(ControlUnreachable, match=re.escape(why)):
        request_tcp(endpoint, alice, "status", [], 60)
    remote = ["--key", str(keys / "alice.key_secret"), "--server-key", str(keys / "store.key")]
    for args in (["--endpoint", endpoint, "status"], ["--endpoint", endpoint] * 2 + ["status"]):
        result = ctl(*remote, *args)
        assert_no_supervisor(result, endpoint, "no connection within 5s")


NOT_REPLIES = [
    (b"\xff\x00garbled", "not a whole reply (JSON is malformed"),
    (b"hello", "not a whole reply (JSON is malformed"),
    (b'{"ok": true, "rea', "not a whole reply (Input data was truncated)"),
    (b'{"ok": "yes"}', "not a whole reply (Expected `bool`, got `str`"),
    (b"[1, 2]", "not a whole reply (Expected `object`, got `array`)"),
    (b"", "not a whole reply"),
]


@pytest.mark.parametrize(("answer", "why"), NOT_REPLIES, ids=lambda x: repr(x)[:20])
def test_a_curve_peer_that_answers_no_reply(keys: Path, answer: bytes, why: str) -> None:
    alice = ClientCurve(load_key_pair(keys, "alice"), load_public_key(keys / "store.key"))
    remote = ["--key", str(keys / "alice.key_secret"), "--server-key", str(keys / "store.key")]
    with curve_peer_answering(keys, answer) as endpoint:
        with pytest.raises(NoReply, match=re.escape(why)):
            request_tcp(endpoint, alice, "status", [], 10)
        for args in (
            ["--endpoint", endpoint, "status"],
            ["--endpoint", endpoint, "--endpoint", endpoint, "status"],  # each host's status
            ["--endpoint", endpoint, "--json", "restart", "load"],
            ["--endpoint", endpoint, "slots", "list"],
        ):
            result = ctl(*remote, *args)
            assert_no_supervisor(result, endpoint, why)
            secrets = (alice.keys.secret, alice.keys.public, alice.server_public)
            assert not any(key.decode() in result.stderr for key in secrets)
