"""``observer ctl`` when no supervisor answers: one line and exit 2, never a traceback.

Exit 1 is ``status``'s "answered: unhealthy"; a socket that accepts and closes without a
reply (a supervisor that died mid-request), one that sends half a reply, a --data-dir that
is a file and a socket path too long for AF_UNIX used to end in a traceback and exit 1.
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

from observer.supervisor.control import NoReply, request


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


def assert_no_supervisor(result: subprocess.CompletedProcess[str], path: Path, why: str) -> None:
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
