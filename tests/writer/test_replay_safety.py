"""Replay never writes beside a live writer, touches no database for a bad capture, and
every unusable capture path is one line and exit 2, with nothing created."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec
import pytest

from bus.capture import CaptureHeader, CaptureWriter
from bus.codec import BusFrame, encode_frame
from bus.envelope import Envelope
from bus.events import Alert
from bus.producer import Producer
from observer.db.engine import normalize_url
from observer.errors import WriterLocked
from observer.writer.lock import WriterLock
from observer.writer.replay import replay_into_db
from observer.writer.store import Accepted, Store
from tests.samples import SAMPLES, T0
from tests.support import ROOT, WriterProcess, audit

SPINE = ROOT / "tests" / "captures" / "spine.cap"
SPINE_SOURCES = {"samples", "ticks-1", "ticks-2"}
ALERT = next(e for e in SAMPLES if isinstance(e, Alert))


def observer(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``observer ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def one_line(done: subprocess.CompletedProcess[str], *, stdout: bool = True) -> str:
    """The single line a refused command printed on stderr (and, by default, nothing on
    stdout)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == "" or not stdout
    return lines[0]


def tree(root: Path) -> set[Path]:
    """Every file and folder under ``root``."""
    return set(root.rglob("*"))


def test_replay_refuses_a_database_that_a_writer_serves(
    tmp_path: Path, db_url: str, writer_factory: Callable[..., WriterProcess]
) -> None:
    writer = writer_factory(db_url).start()
    producer = Producer("live", writer.ingest, tmp_path / "ob", batch_events=1)
    try:
        producer.send(ALERT)
        assert producer.wait_acked(30)

        done = observer("replay", str(SPINE), "--config", str(writer.config))  # no --db
        assert done.returncode == 2
        line = one_line(done)
        assert line.startswith("observer replay: ") and "served by a writer (pid " in line
        assert f"observer replay {SPINE} --as-producer" in line

        # The writer was never disturbed: it commits and acks the next event as before.
        producer.send(ALERT)
        assert producer.wait_acked(30)
    finally:
        producer.close(drain_timeout=0)
    audits = audit(db_url)
    assert set(audits) == {"live"} and audits["live"].max_seq == 2 and audits["live"].complete
    audited = observer("audit", "--config", str(writer.config))
    assert audited.returncode == 0, audited.stdout
    assert "CONFLICT" not in audited.stdout
    assert writer.terminate() == 0
    assert "cannot record" not in writer.log.read_text()


def test_replay_holds_the_writers_lock_while_it_runs(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    # The lock files a writer of this database takes (its ingest socket's aside).
    paths = WriterLock.paths_for(normalize_url(db_url), run_dir, None)
    refused: list[str] = []
    apply = Store.apply

    def apply_while_a_writer_tries_to_start(self: Store, frames: Iterable[BusFrame]) -> Accepted:
        try:
            WriterLock(paths).close()
        except WriterLocked as exc:
            refused.append(str(exc))
        return apply(self, frames)

    monkeypatch.setattr(Store, "apply", apply_while_a_writer_tries_to_start)
    result = replay_into_db(SPINE, db_url, run_dir=run_dir, upgrade=True)
    assert result.committed == result.events > 0
    assert refused and all("holds" in reason for reason in refused)
    WriterLock(paths).close()  # released when the replay ends

    held = WriterLock(paths)  # and a replay is refused while a writer holds it
    try:
        with pytest.raises(WriterLocked, match="served by a writer"):
            replay_into_db(SPINE, db_url, run_dir=run_dir)
    finally:
        held.close()


def test_a_garbage_capture_leaves_no_database_behind(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.cap"
    garbage.write_bytes(b"PK\x03\x04 not a capture")
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "observer.db"}"\n'
    )
    before = tree(tmp_path)
    for target in (["--config", str(config)], ["--db", f"sqlite:///{tmp_path / 'r.db'}"]):
        done = observer("replay", str(garbage), *target)
        assert done.returncode == 2
        assert "is not a capture file" in one_line(done)
    assert tree(tmp_path) == before  # no database, no lock file, no folder


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "missing.cap", "--db", "sqlite:///{tmp}/r.db"], "missing.cap: "),
        (["replay", ".", "--db", "sqlite:///{tmp}/r.db"], ".: Is a directory"),
        (["replay", "missing.cap", "--as-producer", "--config", "{tmp}/c.toml"], "missing.cap: "),
        (["capture", "--out", "cap.bin", "--config", "{tmp}/c.toml"], "cap.bin: File exists"),
        (["capture", "--out", "nodir/x.cap", "--config", "{tmp}/c.toml"], "nodir/x.cap: "),
        (["capture", "--out", ".", "--config", "{tmp}/c.toml"], ".: Is a directory"),
    ],
)
def test_unusable_capture_paths_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "c.toml").write_text(
        f'[paths]\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "observer.db"}"\n'
    )
    (tmp_path / "cap.bin").write_bytes(b"someone's file")
    before = tree(tmp_path)
    done = observer(*(arg.format(tmp=tmp_path) for arg in args), cwd=tmp_path)
    assert done.returncode == 2
    line = one_line(done)
    assert line.startswith(f"observer {args[0]}: {expected}"), line
    assert tree(tmp_path) == before  # not even the run folder
    assert (tmp_path / "cap.bin").read_bytes() == b"someone's file"


def alerts_capture(path: Path, frames: list[list[int]], message: str = "m") -> None:
    """A capture of one source's alerts, a frame per list of seqs."""
    event = msgspec.structs.replace(ALERT, message=message)
    with CaptureWriter(path, CaptureHeader(created_ns=0, origin="feed")) as writer:
        for seqs in frames:
            writer.append(encode_frame([Envelope("supervisor", s, T0 + s, event) for s in seqs]))


def test_events_past_a_hole_are_reported_and_exit_1(tmp_path: Path) -> None:
    """A feed capture loses messages by design: what comes after a lost seq is not stored,
    and the replay says so (it printed "2 committed" and exited 0)."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    capture = tmp_path / "hole.cap"
    alerts_capture(capture, [[1, 2], [4, 5], [6]])  # 3 lost
    done = observer("replay", str(capture), "--db", url)
    assert done.returncode == 1, done.stdout
    assert done.stdout.splitlines() == [
        "3 frames, 5 events, 2 committed, 0 duplicates, 0 conflicting, "
        "3 skipped past a hole, 0 frames resent"
    ]
    assert one_line(done, stdout=False) == (
        "observer replay: not stored: 3 events skipped past a hole, the first supervisor/4 "
        "(supervisor/3 missing before it)"
    )
    assert audit(url)["supervisor"].max_seq == 2
    result = replay_into_db(capture, url)  # again: 1 and 2 are there now
    assert (result.committed, result.duplicates, result.conflicts) == (0, 2, 0)
    assert (result.skipped, result.first_skipped) == (3, ("supervisor", 4, 2))


def test_conflicting_events_are_not_counted_committed(tmp_path: Path) -> None:
    """Each of the capture's events conflicts: 0 committed (the writer's alert is not the
    capture's), the conflicts counted, exit 1."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    stored, other = tmp_path / "stored.cap", tmp_path / "other.cap"
    alerts_capture(stored, [[1, 2]])
    alerts_capture(other, [[1, 2]], message="other content")
    assert replay_into_db(stored, url, upgrade=True).committed == 2
    result = replay_into_db(other, url)
    assert result.committed == 0  # it was 1: the writer's alert
    assert (result.duplicates, result.conflicts) == (0, 2)
    assert result.first_conflict == ("supervisor", 1) and result.skipped == 0
    done = observer("replay", str(other), "--db", url)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "1 frames, 2 events, 0 committed, 0 duplicates, 2 conflicting, "
        "0 skipped past a hole, 0 frames resent"
    ]
    assert one_line(done, stdout=False) == (  # known conflicts: not logged again
        "observer replay: not stored: 2 events conflict with what the database holds at their "
        "seq, the first supervisor/1 (kept in bus_conflicts: see `observer audit`)"
    )
    audits = audit(url)
    assert audits["supervisor"].complete and audits["writer"].max_seq == 1  # the alert


def test_replay_as_producer_counts_duplicates_and_conflicts_and_exits_1_on_one(
    tmp_path: Path,
) -> None:
    """The live writer's acks say what it already had: conflicting events were reported
    "committed" and the replay exited 0."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    stored, other = tmp_path / "stored.cap", tmp_path / "other.cap"
    alerts_capture(stored, [[1, 2], [3]])
    alerts_capture(other, [[1, 2], [3]], message="other content")
    try:
        runs = [
            observer("replay", str(capture), "--as-producer", "--config", str(writer.config))
            for capture in (stored, other, stored)
        ]
    finally:
        assert writer.terminate() == 0
    first, conflicting, again = runs
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "2 frames, 3 events, 3 committed, 0 duplicates, 0 conflicting, "
        "0 skipped past a hole, 0 frames resent"
    ]
    assert conflicting.returncode == 1, conflicting.stderr
    assert conflicting.stdout.splitlines() == [
        "2 frames, 3 events, 0 committed, 0 duplicates, 3 conflicting, "
        "0 skipped past a hole, 0 frames resent"
    ]
    assert one_line(conflicting, stdout=False) == (
        "observer replay: not stored: 3 events conflict with what the database holds at their "
        "seq (kept in bus_conflicts: see `observer audit`)"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "2 frames, 3 events, 0 committed, 3 duplicates, 0 conflicting, "
        "0 skipped past a hole, 0 frames resent"
    ]
    assert audit(url)["supervisor"].rows == 3
