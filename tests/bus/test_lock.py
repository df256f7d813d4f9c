"""The single-instance lock: one holder, its pid named to the refused, freed by its death."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bus.lock import InstanceLock, LockHeld
from tests.support import wait_until

HOLD = """
import sys, time
from pathlib import Path
from bus.lock import InstanceLock
lock = InstanceLock(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    path = tmp_path / "LOCK"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(LockHeld) as refused:
                InstanceLock(path)
            assert refused.value.holder == str(holder.pid)
            assert str(holder.pid) in str(refused.value)
            assert path.stat().st_mode & 0o777 == 0o600
            os.kill(holder.pid, signal.SIGKILL)  # the kernel drops the lock with its holder
            holder.wait(timeout=30)
            wait_until(lambda: free(path), 30, "the lock freed by its holder's death")
        finally:
            holder.kill()


def free(path: Path) -> bool:
    try:
        InstanceLock(path).close()
    except LockHeld:
        return False
    return True


def test_close_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "LOCK"
    # flock is per open file: the same process is refused a second hold too.
    with contextlib.closing(InstanceLock(path)), pytest.raises(LockHeld):
        InstanceLock(path)
    again = InstanceLock(path)
    assert path.read_text() == str(os.getpid())
    again.close()
    again.close()  # harmless
