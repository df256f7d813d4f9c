"""Small volumes for disk-full tests: a tmpfs mounted for the test, and a ballast to fill it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MIB = 1024 * 1024


@contextmanager
def small_volume(path: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB at ``path``; the test is skipped where mounting is not allowed."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'not root'}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(volume: Path) -> int:
    """What an unprivileged writer may still use on ``volume``."""
    stat = os.statvfs(volume)
    return stat.f_bavail * stat.f_frsize


def fill(volume: Path, leave_bytes: int) -> None:
    """Grow the file ``volume/ballast`` until ``leave_bytes`` are free (0: the volume is full)."""
    ballast = volume / "ballast"
    size = ballast.stat().st_size if ballast.exists() else 0
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size + free_bytes(volume) - leave_bytes)
    finally:
        os.close(fd)
