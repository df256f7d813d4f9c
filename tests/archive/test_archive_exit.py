"""``observer archive --date D`` exits 1 when it refuses a day's file, as ``archive run`` does,
and 2 for a day after today.

Before, the manual command exited 0 when a file would have shrunk (`ArchiveWouldShrink`: the
database holds fewer rows of the day than its archive), although nothing was written; and a
day in the future was "archived" (no file, an ``archive_made`` alert), and ``run`` counted
its retention back from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import text

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from harness.loadgen import synthetic_tick
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.retention_queries import day_bounds
from observer.writer.store import Store
from tests.support import ROOT, WriterProcess, db_rows

DAY = date(2026, 11, 18)


def _archive(writer: WriterProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["archive", *args, "--date", str(DAY), "--config", str(writer.config)]
    return subprocess.run(
        [sys.executable, "-m", "observer", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_the_manual_archive_exits_1_when_a_file_would_shrink(
    sqlite_url: str, tmp_path: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    start = day_bounds(DAY)[0] + 9 * 3600 * 10**9
    ticks = [Envelope("track_b", n + 1, start, synthetic_tick(n, start + n)) for n in range(100)]
    store = Store(engine)
    store.load_marks()
    store.apply([decode_parts(encode_frame(ticks))])
    archive_dir = tmp_path / "archive"
    writer = writer_factory(sqlite_url, extra=f'[retention]\ndir = "{archive_dir}"\n').start()

    done = _archive(writer)
    assert done.returncode == 0, done.stderr
    with engine.begin() as conn:  # the day loses rows (an older backup restored, say)
        conn.execute(text("DELETE FROM trade_ticks WHERE seq > 90"))
    engine.dispose()
    files = sorted(p.stat().st_mtime_ns for p in archive_dir.rglob("*.parquet"))
    records = db_rows(sqlite_url, "SELECT * FROM day_archives")

    refused = _archive(writer, "--json")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "trade_ticks of 2026-11-18" in refused.stdout  # the summary names the problem
    assert sorted(p.stat().st_mtime_ns for p in archive_dir.rglob("*.parquet")) == files
    assert db_rows(sqlite_url, "SELECT * FROM day_archives") == records  # no new record
    assert writer.terminate() == 0


def test_a_day_after_today_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    """Today is the supervisor's clock's (a demo's simulated day), here 2026-11-20 in Korea."""
    config = tmp_path / "observer.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    env = {**os.environ, "OBSERVER_CLOCK": "2026-11-20T23:30:00+09:00@1x"}
    for args in (["archive"], ["archive", "run"], ["archive", "verify"]):
        done = subprocess.run(
            [sys.executable, "-m", "observer", *args, "--date", "2026-11-21", "--config", config],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done
        why = "--date 2026-11-21 is in the future (today is 2026-11-20)"
        assert done.stderr == f"observer archive: {why}\n"
    assert not (tmp_path / "data").exists()  # no outbox, no database, no archive folder
