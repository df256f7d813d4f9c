"""A supervised program's process: its command line, environment, log file and group.

The process gets its own process group (a signal to the supervisor's group never reaches it,
so the stop order is the supervisor's) and the parent-death signal (SIGKILL when the
supervisor dies, so no child outlives it). Its stdout and stderr go to its log file, which
it rotates itself (`observer.process.log_files`); it reports READY and heartbeats through the write
end of a pipe (`observer.process.heartbeat`). What happens to the process afterwards is
`observer.supervisor.program`'s.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from observer.process.heartbeat import HEARTBEAT_ENV, NOTIFY_FD_ENV, READY_TIMEOUT_ENV
from observer.process.log_files import LOG_FILE_ENV, LOG_KEEP_ENV, LOG_MAX_BYTES_ENV
from observer.supervisor.settings import ProgramSettings

__all__ = ["Launch", "Spawned", "spawn"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class Launch:
    """What every child gets: working directory, environment and log folder."""

    cwd: Path
    env: Mapping[str, str]
    log_dir: Path
    heartbeat_interval_s: float
    log_max_bytes: int = 50 * 1024 * 1024  # the child rotates its log file past this size
    log_keep: int = 5  # rotated files kept


@dataclass(frozen=True, slots=True)
class Spawned:
    """A started process, the read end of its notice pipe, where its output starts."""

    proc: subprocess.Popen[bytes]
    notices: int  # a descriptor: the caller's to close
    log_offset: int  # the size of its log file before this run wrote to it


def _argv(command: Sequence[str]) -> list[str]:
    """A leading ``observer`` or ``python`` runs this interpreter (the same installation)."""
    if command[0] == "observer":
        return [sys.executable, "-m", "observer", *command[1:]]
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    return list(command)


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def spawn(name: str, settings: ProgramSettings, launch: Launch, args: Sequence[str]) -> Spawned:
    """Start program ``name`` with ``args`` (see the module docstring).

    Raises
    ------
    OSError
        It cannot be started (no such command, out of descriptors); nothing is left open.
    """
    read_fd, write_fd = os.pipe()
    env = {
        **launch.env,
        **settings.env,
        NOTIFY_FD_ENV: str(write_fd),
        HEARTBEAT_ENV: str(launch.heartbeat_interval_s),
        READY_TIMEOUT_ENV: str(settings.ready_timeout_s),
        "OBSERVER_PROGRAM": name,
        LOG_FILE_ENV: str(launch.log_dir / f"{name}.log"),
        LOG_MAX_BYTES_ENV: str(launch.log_max_bytes),
        LOG_KEEP_ENV: str(launch.log_keep),
    }
    try:
        launch.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log_fd = os.open(
            launch.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        log_offset = os.fstat(log_fd).st_size  # the run's output follows
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        raise
    try:
        proc = subprocess.Popen(
            [*_argv(settings.command), *args],
            cwd=launch.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
        os.close(log_fd)
    return Spawned(proc, read_fd, log_offset)
