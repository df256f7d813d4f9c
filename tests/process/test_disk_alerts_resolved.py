"""A restarted process takes over the disk alerts its earlier run left open.

Before, every `DiskWatch` started at ok and reported only changes from it: a writer
restarted after the space was freed, or a job (one run per process) whose outbox volume had
room again, left ``disk_low`` / ``disk_critical`` open for good.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from bus.events import Alert, AlertResolved, Severity
from bus.producer import Producer
from observer.alerts.states import Notice
from observer.config.load import load_settings
from observer.db import migrate
from observer.db.settings import DatabaseSettings
from observer.process.disk import DISK_CODES, DiskSettings, DiskWatch, Usage
from observer.process.disk_alerts import stored_disk_alerts
from observer.runtime import producer_for, take_over_disk_alerts
from tests.support import WriterProcess, db_rows, wait_until

MIB = 1024 * 1024
SETTINGS = DiskSettings(
    check_interval_s=10.0,
    warn_free_bytes=100 * MIB,
    warn_free_percent=0,
    critical_free_bytes=10 * MIB,
    critical_free_percent=0,
)
EXPECTED = {"ok": set(), "warning": {"disk_low"}, "critical": {"disk_low", "disk_critical"}}


def _below_both() -> str:
    """Thresholds far above any free space: every volume is critical."""
    huge = 1024**5  # 1 PiB
    return (
        "[disk]\ncheck_interval_s = 0.2\nwarn_free_percent = 0\ncritical_free_percent = 0\n"
        f"warn_free_bytes = {2 * huge}\ncritical_free_bytes = {huge}\n"
    )


# Every threshold off: every volume is ok.
ROOM = (
    "[disk]\ncheck_interval_s = 0.2\nwarn_free_percent = 0\ncritical_free_percent = 0\n"
    "warn_free_bytes = 0\ncritical_free_bytes = 0\n"
)


def _alerts(url: str, subject: str) -> list[str]:
    sql = f"SELECT code FROM alerts WHERE subject = '{subject}' ORDER BY seq"
    return [row[0] for row in db_rows(url, sql, until_schema=True)]


def _resolved(url: str, subject: str) -> list[str]:
    sql = f"SELECT code FROM alert_resolutions WHERE subject = '{subject}' ORDER BY code"
    return [row[0] for row in db_rows(url, sql, until_schema=True)]


def _left_open(earlier: Mapping[str, Collection[str]]) -> list[Notice]:
    """The open disk alerts an earlier run left: per code, their subjects."""
    severity: dict[str, Severity] = {"disk_low": "warning", "disk_critical": "critical"}
    return [
        Notice(f"writer:{n}", "alert", n, severity[code], code, subject, "")
        for n, (code, subject) in enumerate(
            (code, subject) for code, subjects in earlier.items() for subject in subjects
        )
    ]


def _watch(free: list[int], earlier: Mapping[str, Collection[str]] | None) -> DiskWatch:
    watch = DiskWatch(
        SETTINGS,
        {"database": Path("/db")},
        "writer",
        usage=lambda _: Usage(1000 * MIB, free[0]),
        monotonic=lambda: 0.0,
    )
    watch.take_over(None if earlier is None else _left_open(earlier))
    return watch


@given(
    st.sets(st.sampled_from(DISK_CODES)),
    st.lists(st.integers(0, 200), min_size=1, max_size=10),
)
def test_what_is_open_always_matches_the_level_from_the_first_measure_on(
    stored: set[str], frees_mib: list[int]
) -> None:
    """Whatever an earlier run left open, the first measure brings it to the current level."""
    free = [0]
    watch = _watch(free, {code: {"writer:database"} for code in stored})
    open_codes = set(stored)
    for mib in frees_mib:
        free[0] = mib * MIB
        for event in watch.check(now=True):
            assert isinstance(event, Alert | AlertResolved)
            assert event.subject == "writer:database"
            if isinstance(event, Alert):
                assert event.code not in open_codes  # never a second alert of an open one
                open_codes.add(event.code)
            else:
                open_codes.remove(event.code)  # only what is open is resolved
        assert open_codes == EXPECTED[SETTINGS.level(Usage(1000 * MIB, free[0]))]


def test_another_subjects_alerts_and_an_unreadable_database_are_not_taken_over() -> None:
    free = [500 * MIB]
    other = _watch(free, {"disk_low": {"writer:capture", "track_b:outbox"}})
    assert other.check() == []
    unknown = _watch(free, None)  # the database cannot say: nothing to resolve, as before
    assert unknown.check() == []
    free[0] = 50 * MIB
    (event,) = unknown.check(now=True)
    assert isinstance(event, Alert) and event.code == "disk_low"


def test_a_database_a_writer_holds_locked_is_given_up_on_not_waited_for(tmp_path: Path) -> None:
    """The take-over's read (on a worker's main thread after READY) gives up on a SQLite file
    another connection holds locked instead of waiting out the 30 s busy timeout of each of
    its statements: a Track B said READY and then nothing, for a minute."""
    path = tmp_path / "observer.db"
    migrate.upgrade(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=DELETE")  # in WAL mode a lock would not stop readers
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(20.0, holder.rollback)  # the read would get through after it
    released.start()
    try:
        read = stored_disk_alerts(DatabaseSettings(url=f"sqlite:///{path}"), "track_b")
        assert read() is None  # none taken over: the read gave up while the lock was held
        assert released.is_alive()
    finally:
        released.cancel()
        holder.close()


@pytest.mark.postgres
def test_a_postgresql_read_that_stalls_is_given_up_on_not_waited_for(pg_url: str) -> None:
    """On PostgreSQL the take-over's read has a statement timeout: a lock held on the alerts
    (a stalled server alike) kept it, and the worker's main thread, for good."""
    migrate.upgrade(pg_url)
    holder = create_engine(pg_url).connect()
    holder.execute(text("lock table alerts in access exclusive mode"))  # until rolled back
    released = threading.Timer(20.0, holder.rollback)
    released.start()
    try:
        read = stored_disk_alerts(DatabaseSettings(url=pg_url), "track_b")
        assert read() is None  # none taken over: the read gave up while the lock was held
        assert released.is_alive()
    finally:
        released.cancel()
        holder.close()
        holder.engine.dispose()


def test_a_producers_first_measure_waits_for_what_it_is_handed() -> None:
    """A producer's watch is handed the earlier alerts by its main thread (its socket thread
    imports nothing): its first measure waits for them, up to ``take_over_within_s``."""
    now, free = [0.0], [50 * MIB]  # low: disk_low due

    def watch() -> DiskWatch:
        return DiskWatch(
            SETTINGS,
            {"outbox": Path("/o")},
            "job",
            take_over_within_s=30.0,
            usage=lambda _: Usage(1000 * MIB, free[0]),
            monotonic=lambda: now[0],
        )

    handed = watch()
    assert handed.check() == []  # nothing handed yet: not measured
    handed.take_over(_left_open({"disk_low": {"job:outbox"}}))
    assert handed.check() == []  # still low: the earlier run's alert stands, no second one
    free[0] = 500 * MIB
    (event,) = handed.check(now=True)
    assert isinstance(event, AlertResolved) and event.code == "disk_low"

    free[0] = 50 * MIB
    alone = watch()  # nothing is ever handed over: measured from ok after the wait
    assert alone.check() == []
    now[0] = 30.0
    (event,) = alone.check()
    assert isinstance(event, Alert) and event.code == "disk_low"


def test_a_restarted_writer_resolves_the_disk_alerts_its_earlier_run_left_open(
    tmp_path: Path, writer_factory: Callable[..., WriterProcess]
) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    subject = "writer:database"
    first = writer_factory(url, extra=_below_both()).start()
    wait_until(lambda: len(_alerts(url, subject)) == 2, 30, "disk_low and disk_critical")
    assert first.terminate() == 0

    # Restarted with the volume still critical: no second alert of either.
    second = writer_factory(url, extra=_below_both()).start()
    wait_until(
        lambda: second.log.read_text().count("taking no new frames") >= 2, 30, "second check"
    )
    assert sorted(_alerts(url, subject)) == sorted(DISK_CODES)
    assert second.terminate() == 0

    # Restarted after the space came back: the first measure resolves both.
    third = writer_factory(url, extra=ROOM).start()
    wait_until(lambda: _resolved(url, subject) == sorted(DISK_CODES), 30, "both resolved")
    assert sorted(_alerts(url, subject)) == sorted(DISK_CODES)
    assert third.terminate() == 0


@pytest.mark.parametrize("host", ["", "c2"])
def test_a_jobs_next_run_resolves_what_its_outbox_watch_raised(
    tmp_path: Path, writer_factory: Callable[..., WriterProcess], host: str
) -> None:
    """A job's producer lives one run: the next run's first measure resolves the last's."""
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = writer_factory(url).start()
    named = f'[supervisor]\nhost = "{host}"\n' if host else ""
    config = tmp_path / "job.toml"

    def job(disk: str) -> Producer:  # what `job_producer` makes for a run of the job
        config.write_text(writer.config.read_text() + named + disk)
        settings = load_settings(config)
        producer = producer_for(settings, "archive")
        take_over_disk_alerts(settings, producer)
        return producer

    run = job(_below_both())
    subject = f"{run.source}:outbox"
    assert subject == ("archive@c2:outbox" if host else "archive:outbox")
    try:
        wait_until(lambda: len(_alerts(url, subject)) == 2, 30, "the first run's disk alerts")
    finally:
        run.close(drain_timeout=5)

    run = job(ROOM)  # the next run, after the space came back
    try:
        wait_until(lambda: _resolved(url, subject) == sorted(DISK_CODES), 30, "both resolved")
    finally:
        run.close(drain_timeout=5)
    assert sorted(_alerts(url, subject)) == sorted(DISK_CODES)
    assert writer.terminate() == 0
