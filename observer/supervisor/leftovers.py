"""Children of a supervisor that died without stopping them, found and ended at start-up.

The parent-death signal misses a child's own children and a child that changed credentials,
so every child's process group is recorded with the leader's start time; the next supervisor
ends each recorded group still there whose processes started no earlier than the leader (a
reused pid is never ours). The record is written atomically and durably; an unreadable one
is set aside with a ``state_file_unreadable`` alert: what it named is not ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bus.events import Alert
from observer.process.private_files import write_private
from observer.process.state_files import read_state

__all__ = ["ChildRecord", "end_leftovers"]

log = logging.getLogger(__name__)


class ChildRecord:
    """The file of live children's process groups (rewritten atomically at each change)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, groups: dict[str, int]) -> None:
        """Record ``{program: pgid}`` with each leader's start time."""
        entries = {}
        for name, pgid in groups.items():
            with contextlib.suppress(psutil.Error):
                entries[name] = [pgid, psutil.Process(pgid).create_time()]
        write_private(self.path, json.dumps(entries).encode())

    def read(self, send: Callable[[Alert], object] | None = None) -> dict[str, tuple[int, float]]:
        """What the last supervisor recorded (empty if nothing, or unreadable: alerted)."""
        lost = (
            "processes a supervisor that died left running are not ended: look for them "
            "(`ps -u $USER`) before they run twice"
        )
        return read_state(self.path, _decode, lost, send) or {}


def _decode(data: bytes) -> dict[str, tuple[int, float]]:
    try:
        raw = json.loads(data)
        return {name: (int(pgid), float(started)) for name, (pgid, started) in raw.items()}
    except (TypeError, AttributeError) as exc:  # JSON, not the record's shape
        raise ValueError(f"not a record of process groups ({exc})") from None


def _members(pgid: int, started: float) -> list[psutil.Process]:
    uid = os.getuid()
    members = []
    for proc in psutil.process_iter(["pid", "uids", "create_time"]):
        with contextlib.suppress(psutil.Error, OSError):
            if (
                os.getpgid(proc.pid) == pgid
                and proc.info["uids"].real == uid
                and proc.info["create_time"] >= started - 0.01
            ):
                members.append(proc)
    return members


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE  # a zombie is dead, awaiting its reaper
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to ``timeout`` for ``procs`` to end; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        psutil.wait_procs(alive, timeout=0.05)  # a short poll (psutil's), reaping if ours
        alive = [p for p in alive if _alive(p)]
    return alive


def end_leftovers(
    record: ChildRecord, send: Callable[[Alert], object] | None = None, grace_s: float = 5.0
) -> list[int]:
    """End the groups a dead supervisor left behind; return the pids that were ended.

    ``send``: where the alert of a record that does not read goes.
    """
    ended: list[int] = []
    for name, (pgid, started) in record.read(send).items():
        members = _members(pgid, started)
        if not members:
            continue
        pids = [p.pid for p in members]
        log.warning("ending %s left by a previous supervisor: pids %s", name, pids)
        for proc in members:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        alive = _wait_gone(members, grace_s)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        _wait_gone(alive, grace_s)
        ended.extend(p.pid for p in members)
    record.write({})
    return ended
