"""A power cut loses nothing the writer acknowledged: the data on a filesystem that drops
every write not yet fsynced (`tests/lazyfs.py`), the writer and a producer killed with it.

The producer (`harness.loadgen --print-acks`) prints each acknowledgement it receives; after
the cut, the database must hold every seq acknowledged before it, the outbox must hold what
the writer did not, and once both run again the source's seqs are 1..N exactly once. A
database that lost acknowledged events (put back to an earlier copy; a power cut under
``[bus] fsync = false``, at a moment no test can choose) is never silent: the audit sees
the outbox ahead of it, the producer declares the seqs neither side holds, the writer keeps
and alerts the loss, and the source goes on. State files written by `write_private` read
whole after a cut.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.segments import OutboxState, outbox_state
from tests.migrated import seed
from tests.support import (
    ROOT,
    WriterProcess,
    assert_exactly_once,
    audit_command,
    db_rows,
    wait_until,
)

SOURCE = "probe"


def _fuse_missing() -> str:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if shutil.which("fusermount3") is None:
        return "no fusermount3 (Debian's fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: libfuse3.so.3 not found
        return f"mfusepy does not load: {exc}"
    return ""


MISSING = _fuse_missing()


@pytest.fixture(autouse=True)
def _fuse() -> None:
    """Skipped without FUSE, with the reason; failed under CI, where it must be there."""
    if MISSING and os.environ.get("CI") == "true":
        pytest.fail(f"the power-cut tests need FUSE: {MISSING}", pytrace=False)
    if MISSING:
        pytest.skip(f"needs FUSE: {MISSING}")


class LazyMount:
    """`tests/lazyfs.py` serving ``state`` at ``mount``; `cut` is the power cut."""

    def __init__(self, state: Path, mount: Path, entries: str = "strict") -> None:
        self.state, self.mount, self.entries = state, mount, entries
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> LazyMount:
        self.mount.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",  # a module of the tests package: tests/ on sys.path would shadow the
                "tests.lazyfs",  # standard library with tests/token and tests/calendar
                str(self.state),
                str(self.mount),
                f"--entries={self.entries}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        wait_until(lambda: os.path.ismount(self.mount) or self.proc.poll() is not None, 20)
        assert self.proc.poll() is None, self.proc.communicate()[1].decode()
        return self

    def cut(self) -> None:
        """Unmount, keeping only what was fsynced (every process using it is dead)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err.decode()
        assert not os.path.ismount(self.mount)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.cut()


class AckedProducer:
    """`harness.loadgen` sending ticks until killed, recording each ack it receives."""

    def __init__(self, outbox: Path, endpoint: str) -> None:
        self.acked = 0
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.loadgen",
                "--source",
                SOURCE,
                "--endpoint",
                endpoint,
                "--outbox",
                str(outbox),
                "--events",
                "0",
                "--rate",
                "3000",
                "--batch-events",
                "50",
                "--segment-bytes",
                "65536",  # a segment every ~400 ticks: acknowledged ones get deleted
                "--sync",
                "--print-acks",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(b"acked "):
                self.acked = int(line.split()[1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self._reader.join(30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def lazy(tmp_path: Path) -> Iterator[LazyMount]:
    state = tmp_path / "state"
    state.mkdir()
    seed(f"sqlite:///{state / 'observer.db'}", 0o600)  # on the disk before the mount: durable
    mount = LazyMount(state, tmp_path / "data")
    yield mount.up()
    mount.close()


def _run_and_cut(lazy: LazyMount, writer: WriterProcess) -> tuple[int, OutboxState]:
    """Acknowledged events trimmed from the outbox (only the database holds them), then the
    cut; what the producer saw acknowledged, and what its outbox holds after."""
    producer = AckedProducer(lazy.mount / "outbox" / SOURCE, writer.ingest)
    try:
        wait_until(lambda: producer.acked > 3000, 60, "3,000 events acknowledged")
    finally:
        writer.kill()
        producer.kill()
    lazy.cut()
    after = outbox_state(lazy.state / "outbox" / SOURCE)
    assert after is not None and after.held_from > 1  # segments were deleted before the cut
    lazy.up()
    return producer.acked, after


def test_a_power_cut_loses_no_acknowledged_event(lazy: LazyMount, tmp_path: Path) -> None:
    url = f"sqlite:///{lazy.mount / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    outbox = lazy.mount / "outbox" / SOURCE
    acknowledged, after = _run_and_cut(lazy, writer)
    try:
        writer.start()
        committed = writer.offsets()[SOURCE]
        print(
            f"power cut: acknowledged {acknowledged}, durable in the database {committed}, "
            f"outbox held {after.held_from}..{after.high} (acked mark {after.acked})"
        )
        assert committed >= acknowledged, "the writer lost events it had acknowledged"
        assert after.held_from <= committed + 1, "neither side holds the seqs between them"
        assert after.high >= committed, "the writer holds seqs the outbox lost"

        # Both run again: every seq the producer ever assigned arrives, each once.
        again = AckedProducer(outbox, writer.ingest)
        try:
            wait_until(lambda: again.acked > after.high + 500, 60, "the producer going on")
        finally:
            again.kill()
    finally:
        writer.kill()
    stored = writer.offsets()[SOURCE]
    assert stored >= again.acked
    assert_exactly_once(url, {SOURCE: stored})


def test_a_database_that_lost_acknowledged_events_is_never_silent(tmp_path: Path) -> None:
    """The database put back to a copy taken earlier (a restored backup; what a power cut
    under ``fsync = false`` does too, at a moment no test can choose)."""
    database = tmp_path / "observer.db"
    writer = WriterProcess(tmp_path, f"sqlite:///{database}").start()
    producer = AckedProducer(tmp_path / "outbox" / SOURCE, writer.ingest)
    try:
        wait_until(lambda: producer.acked > 1000, 60, "1,000 events acknowledged")
        with sqlite3.connect(database) as live, sqlite3.connect(tmp_path / "copy.db") as copy:
            live.backup(copy)
        wait_until(lambda: producer.acked > 3000, 60, "3,000 events acknowledged")
    finally:
        writer.kill()
        producer.kill()
    after = outbox_state(tmp_path / "outbox" / SOURCE)
    assert after is not None
    for leftover in (database.with_name("observer.db-wal"), database.with_name("observer.db-shm")):
        leftover.unlink(missing_ok=True)
    (tmp_path / "copy.db").replace(database)
    try:
        _declared_and_alerted(writer, tmp_path / "outbox", tmp_path, producer.acked, after)
    finally:
        writer.kill()


def _declared_and_alerted(
    writer: WriterProcess, outboxes: Path, tmp_path: Path, acknowledged: int, after: OutboxState
) -> None:
    url = writer.url
    writer.start()
    committed = writer.offsets()[SOURCE]
    print(
        f"database put back: acknowledged {acknowledged}, in the database {committed}, "
        f"outbox held {after.held_from}..{after.high}"
    )
    assert committed + 1 < after.held_from, "the outbox still holds all the database lost"

    # Before the producer runs again, the audit reads its outbox and says what is missing.
    audit_config = tmp_path / "audit.toml"
    audit_config.write_text(f'[paths]\nrun_dir = "{outboxes.parent}"\n[database]\nurl = "{url}"\n')
    audit = audit_command(audit_config)
    assert audit.returncode == 1
    assert f"BEHIND {SOURCE}:" in audit.stdout and f"the database holds {committed}" in audit.stdout

    # The producer declares the seqs neither side holds; the writer keeps and alerts them.
    lost = (committed + 1, after.held_from - 1)
    producer = AckedProducer(outboxes / SOURCE, writer.ingest)
    try:
        wait_until(lambda: producer.acked > after.high + 500, 60, "the source going on")
    finally:
        producer.kill()
        writer.kill()
    assert db_rows(url, "SELECT first_seq, last_seq FROM bus_losses") == [lost]
    alerts = db_rows(
        url, "SELECT severity, subject, message FROM alerts WHERE code = 'bus_events_lost'"
    )
    assert [(severity, subject) for severity, subject, _ in alerts] == [("critical", SOURCE)]
    assert f"seqs {lost[0]}..{lost[1]} are lost" in alerts[0][2]
    audit = audit_command(audit_config)
    assert audit.returncode == 1
    assert (
        f"LOST {SOURCE} seq {lost[0]}..{lost[1]} ({lost[1] - lost[0] + 1} events)" in audit.stdout
    )
    assert "INCOMPLETE" not in audit.stdout and "BEHIND" not in audit.stdout
    assert f"`observer alerts ack {SOURCE}:{lost[1]}` once understood" in audit.stdout


# Replaces a state file again and again, printing each number once the write returned.
STATE_WRITER = """
import json, sys
from pathlib import Path
from observer.process.private_files import write_private
path, plain = Path(sys.argv[1]), sys.argv[2] == "plain"
if not plain:  # the day's first file: created, never replaced
    write_private(path.with_name("first.json"), b'{"first": true}', exclusive=True)
for i in range(10**9):
    data = json.dumps({"i": i, "members": ["005930"] * 500}).encode()
    if plain:  # a temporary file renamed into place, nothing fsynced
        path.with_name("tmp").write_bytes(data)
        path.with_name("tmp").replace(path)
    else:
        write_private(path, data)
    print(i, flush=True)
"""


def _cut_while_replacing(tmp_path: Path, entries: str, how: str) -> tuple[int, bytes]:
    """The last write a process saw return before the cut, and the file after it."""
    state = tmp_path / "state"
    state.mkdir()
    lazy = LazyMount(state, tmp_path / "data", entries).up()
    try:
        writer = subprocess.Popen(
            [sys.executable, "-c", STATE_WRITER, str(lazy.mount / "universe.json"), how],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert writer.stdout is not None
        try:
            done = -1
            while done < 30:
                done = int(writer.stdout.readline())
        finally:
            writer.kill()
            rest = writer.communicate(timeout=30)[0].split()
        done = int(rest[-1]) if rest else done
    finally:
        lazy.close()
    return done, (state / "universe.json").read_bytes()


@pytest.mark.parametrize("entries", ["strict", "journaled"])
def test_a_state_file_reads_whole_after_a_power_cut(tmp_path: Path, entries: str) -> None:
    """`write_private`: the new file or the old one, never a part, and never older than
    the last write that returned."""
    done, data = _cut_while_replacing(tmp_path, entries, "durable")
    assert json.loads(data)["i"] >= done
    assert (tmp_path / "state" / "first.json").read_bytes() == b'{"first": true}'


def test_the_cut_empties_a_state_file_renamed_into_place_without_fsync(tmp_path: Path) -> None:
    """What the test above would catch: a rename kept (journaled), its data not."""
    done, data = _cut_while_replacing(tmp_path, "journaled", "plain")
    assert done >= 30 and data == b""
