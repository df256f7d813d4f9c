"""Reports on a REAL streaming standby: its rows, its lag, and the primary when it lags or is gone.

The pair is started by `tests.streaming` (initdb, pg_basebackup -R, pg_ctl) on free ports; a
real writer writes alerts on the primary and ``observer alerts`` reads them as an operator
would, with ``[database] replica_url`` set to the standby.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bus.events import Alert
from bus.producer import Producer
from observer.db.migrate import upgrade
from observer.db.replica import replay_lag_s, report_engine
from observer.db.settings import REPLICA_PASSWORD_ENV, DatabaseSettings
from tests.streaming import StreamingPair, missing_tools
from tests.support import ROOT, WriterProcess, wait_until

pytestmark = pytest.mark.timeout(600)

SECRET = "replica-secret-8f3a2c1e9d7b"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"a streaming standby is required in CI: {reason}")
    pytest.skip(f"no streaming standby here: {reason}")


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    """A primary and its streaming standby for the whole module (started once: ~10 s)."""
    reason = missing_tools()
    if reason:
        _unavailable(reason)
    made = StreamingPair()
    try:
        made.start()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        made.close()
        _unavailable(str(exc))
    yield made
    made.close()


@pytest.fixture(scope="module")
def writer(
    pair: StreamingPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WriterProcess]:
    """The real writer on the primary, for the module."""
    process = WriterProcess(tmp_path_factory.mktemp("writer"), pair.primary_url).start()
    yield process
    process.kill()


def _send_alert(writer: WriterProcess, outbox: Path, code: str) -> None:
    with Producer(code, writer.ingest, outbox) as producer:  # a source per alert: seq 1 each
        producer.send(Alert(severity="warning", code=code, message="written on the primary"))
        assert producer.wait_acked(30)


def _report(
    pair: StreamingPair, tmp_path: Path, *, max_lag_s: float = 60.0, replica: str = ""
) -> Callable[[], subprocess.CompletedProcess[str]]:
    config = tmp_path / f"report-{max_lag_s:g}.toml"
    config.write_text(
        f'[paths]\nrun_dir = "{tmp_path / "run"}"\n'
        f'[database]\nurl = "{pair.primary_url}"\nreplica_url = "{replica or pair.standby_url}"\n'
        f"replica_max_lag_s = {max_lag_s}\nreplica_timeout_s = 2\n"
    )
    env = {**os.environ, REPLICA_PASSWORD_ENV: SECRET}

    def run() -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "observer", "alerts", "--json", "--config", str(config)]
        done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
        return done

    return run


def _until_listed(
    report: Callable[[], subprocess.CompletedProcess[str]], code: str
) -> subprocess.CompletedProcess[str]:
    """The first report that lists the alert ``code`` (the standby replays within seconds)."""

    def listed() -> subprocess.CompletedProcess[str] | None:
        done = report()
        return done if code in _codes(done) else None

    found: subprocess.CompletedProcess[str] = wait_until(listed, 60, f"{code} reported")
    return found


def _codes(done: subprocess.CompletedProcess[str]) -> set[str]:
    return {json.loads(line)["code"] for line in done.stdout.splitlines() if line.startswith("{")}


def _replica_lag(done: subprocess.CompletedProcess[str]) -> float:
    found = re.search(r"read from the replica \S+: replay lag (\d+\.\d) s", done.stderr)
    assert found, done.stderr
    return float(found.group(1))


def _standby(pair: StreamingPair) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(pair.standby_url, autocommit=True)


def test_rows_a_writer_commits_on_the_primary_are_reported_from_the_standby(
    pair: StreamingPair, writer: WriterProcess, tmp_path: Path
) -> None:
    _send_alert(writer, tmp_path / "ob", "replicated_alert")
    report = _report(pair, tmp_path)
    done = _until_listed(report, "replicated_alert")
    assert _replica_lag(done) <= 60.0


def test_a_lagging_standby_shows_its_lag_and_past_the_bound_the_report_reads_the_primary(
    pair: StreamingPair, writer: WriterProcess, tmp_path: Path
) -> None:
    with _standby(pair) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        wait_until(lambda: _pause_state(pair) == "paused", 60, "replay paused")
        _send_alert(writer, tmp_path / "ob", "held_back_alert")
        wait_until(  # the standby has the WAL but does not replay it
            lambda: _standby_received_unreplayed(pair), 60, "WAL received, not replayed"
        )
        # Within a generous bound the report reads the standby: the lag is shown, the new
        # alert is not there yet (proof of where it read).
        lenient = _report(pair, tmp_path, max_lag_s=3600)()
        assert _replica_lag(lenient) > 0.0
        assert "held_back_alert" not in _codes(lenient)
        # Past a tight bound it warns and reads the primary, which has the alert.
        wait_until(lambda: _lag_of(pair) > 1.0, 60, "the standby's lag past 1 s")
        strict = _report(pair, tmp_path, max_lag_s=1.0)()
        assert re.search(
            r"warning: read from the primary: the replica \S+ is \d+\.\d s behind "
            r"\(replica_max_lag_s 1\)",
            strict.stderr,
        ), strict.stderr
        assert "held_back_alert" in _codes(strict)
    finally:
        with _standby(pair) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    caught_up = _until_listed(_report(pair, tmp_path), "held_back_alert")
    assert _replica_lag(caught_up) <= 60.0


def test_a_replica_that_is_not_a_standby_is_passed_over_for_the_primary(
    pair: StreamingPair, writer: WriterProcess, tmp_path: Path, pg_url: str
) -> None:
    """A promoted or detached copy: an ordinary database (a scratch one on another server),
    with the schema and none of what the primary stored since. Read as "replay lag 0.0 s",
    it would show its frozen rows as current."""
    upgrade(pg_url)
    _send_alert(writer, tmp_path / "ob", "after_the_copy_alert")
    done = _report(pair, tmp_path, replica=pg_url)()
    assert re.search(
        r"warning: read from the primary: the replica \S+ is not a standby \(promoted\?\)",
        done.stderr,
    ), done.stderr
    assert "replay lag" not in done.stderr
    assert "after_the_copy_alert" in _codes(done)  # the primary's rows, not the copy's


def test_with_the_standby_stopped_the_report_reads_the_primary_with_a_warning(
    pair: StreamingPair, writer: WriterProcess, tmp_path: Path
) -> None:
    _send_alert(writer, tmp_path / "ob", "standby_down_alert")
    pair.stop_standby()  # the last test of the module: the pair is closed after it
    done = _report(pair, tmp_path)()
    assert re.search(
        r"warning: read from the primary: the replica \S+ is unreachable: ", done.stderr
    ), done.stderr
    assert "standby_down_alert" in _codes(done)


def test_the_lag_is_zero_on_a_server_that_is_not_a_standby(pair: StreamingPair) -> None:
    settings = DatabaseSettings(url=pair.primary_url)
    with report_engine(settings, "test") as source, source.engine.connect() as conn:
        assert (source.where, source.note) == ("primary", "")
        assert replay_lag_s(conn) == 0.0


def _pause_state(pair: StreamingPair) -> object:
    with _standby(pair) as conn:
        row = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
    return row[0] if row else None


def _standby_received_unreplayed(pair: StreamingPair) -> bool:
    with _standby(pair) as conn:
        row = conn.execute("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()").fetchone()
    return bool(row and row[0])


def _lag_of(pair: StreamingPair) -> float:
    settings = DatabaseSettings(url=pair.primary_url)
    from observer.db.readers import reader_engine

    engine = reader_engine(settings, "test", url=pair.standby_url)
    try:
        with engine.connect() as conn:
            return replay_lag_s(conn) or 0.0
    finally:
        engine.dispose()
