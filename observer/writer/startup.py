"""The writer's start: the server's lock, the schema and the marks, waited for in an outage.

A server database that does not answer (`observer.db.outages.not_answering`; libpq reports a
wrong password or database name alike) is waited for on the daemons' read policy, beating with
``failing_s``, so the writer is never parked while its database restarts; 600 s in a row end the
start (`StoreError`, exit 2). What is no outage ends it at once: another writer's lock
(`WriterLocked`, exit 3), a missing schema, a refused migration, any SQLite error.

A start that works but takes long (a migration of a large database, a lock another client
holds, a loaded machine) says READY with ``failing_s`` after a third of the supervisor's ready
timeout and beats until it serves: that timeout would end it, and the next try would begin
again, until it was parked FATAL with the database never upgraded.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from bus.events import Alert, AlertResolved
from observer.alerts.stored import open_alerts
from observer.calendar.clock import clock_from_env
from observer.db import migrate
from observer.db.engine import make_engine, sqlite_file
from observer.db.outages import DATABASE_ERRORS, ReadRetries, not_answering
from observer.process.heartbeat import FAILING_S, Heartbeat, process_age_s
from observer.process.private_files import fsync_path
from observer.writer.identity import WRITER_SOURCE
from observer.writer.lock import WriterLock
from observer.writer.store import Store

__all__ = ["NOT_DURABLE", "open_store"]

log = logging.getLogger(__name__)

NOT_DURABLE = "bus_not_durable"  # the alert of a database that does not flush its commits
_RETRY_INITIAL_S = 1.0  # the pauses between tries while the server does not answer
_RETRY_MAX_S = 15.0


def open_store(
    url: URL,
    lock: WriterLock,
    stop: threading.Event,
    notifier: Heartbeat,
    *,
    durable: bool,
    migrate_on_start: bool,
) -> tuple[Engine, Store] | None:
    """The store of ``url``, migrated if asked, its marks read, the server's lock held.

    ``durable``: commits are flushed (``[bus] fsync``), and a server that does not is alerted.

    None if ``stop`` is set while the server does not answer. Raises `WriterLocked` and
    `StoreError` (see the module). READY goes out at the first failure, so the supervisor's
    ready timeout does not end the wait, and the heartbeats carry ``failing_s`` (``observer
    ctl status`` unhealthy; the rule ``ObserverProgramFailingItsWork`` after a minute). The
    programs that depend on the writer start once it serves (a READY without ``failing_s``),
    and running producers keep their events meanwhile.
    """
    retries = ReadRetries(_RETRY_INITIAL_S, _RETRY_MAX_S)

    def counters() -> dict[str, float]:
        return {FAILING_S: retries.failing_s()}

    announced = False
    while True:
        try:
            with _SlowStart(notifier, announced) as slow:
                return _open(url, lock, durable, migrate_on_start)
        except DATABASE_ERRORS as exc:
            if url.get_backend_name() == "sqlite" or not not_answering(exc):
                raise
            lock.release_server()  # its connection is taken again with the next try
            pause = retries.failed("the writer's start (its database)", exc)
        announced = announced or slow.announced
        if not announced:  # the serving writer's own READY is taken as a beat then
            notifier.ready(counters())
            announced = True
        deadline = time.monotonic() + pause
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(left, notifier.interval_s / 2)):
                return None
            notifier.beat(counters)


class _SlowStart:
    """Beats from a thread while one try of the start runs past a third of the ready timeout.

    Its first notice is READY (unless the start ``announced`` one already), with
    ``failing_s`` the seconds the process has run: the supervisor counts the writer running, not
    serving, and starts nothing that depends on it. Only this thread writes to the notifier
    while the try runs; it is joined before the try's result or error is seen.
    """

    def __init__(self, notifier: Heartbeat, announced: bool) -> None:
        self.announced = announced
        self._notifier = notifier
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-start", daemon=True)

    def __enter__(self) -> _SlowStart:
        if self._notifier.supervised:
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        # A third of the timeout from the spawn (the imports count: a loaded machine's took
        # seconds), at once if that has passed.
        slow_s = max(0.0, self._notifier.ready_timeout_s / 3 - process_age_s())
        if self._done.wait(slow_s):
            return

        def counters() -> dict[str, float]:
            return {FAILING_S: round(process_age_s(), 1)}

        log.info(
            "the writer's start (the lock, the migrations, the marks) has taken over a third "
            "of its ready timeout: running, not serving, until it ends"
        )
        if not self.announced:
            self._notifier.ready(counters())
            self.announced = True
        while not self._done.wait(self._notifier.interval_s / 2):
            self._notifier.beat(counters)


def _open(
    url: URL, lock: WriterLock, durable: bool, migrate_on_start: bool
) -> tuple[Engine, Store]:
    if url.get_backend_name() != "sqlite":
        lock.take_server(url)
    engine = make_engine(url, durable=durable)
    try:
        store = Store(engine, clock_from_env().now_ns)  # its alerts on the supervisor's clock
        if migrate_on_start:
            migrate.upgrade(url.render_as_string(hide_password=False))
        store.check_schema()
        store.load_marks()
        if durable:
            _check_durable(engine, url, store)
    except BaseException:
        engine.dispose()
        raise
    return engine, store


def _check_durable(engine: Engine, url: URL, store: Store) -> None:
    """Flush a SQLite file's folder; alert a PostgreSQL server that does not flush at all.

    Under ``[bus] fsync = true`` the writer's acks survive a power cut: SQLite commits at
    ``synchronous=FULL`` and a new file's entry is flushed once the schema is there,
    PostgreSQL at ``synchronous_commit=on``. A server running with ``fsync = off`` (or keeping
    ``synchronous_commit`` off for the writer) cannot keep that promise: ``bus_not_durable``,
    a warning, each start; the first start that finds the server flushing again resolves it.
    """
    if (database := sqlite_file(url)) is not None:
        fsync_path(database.absolute().parent)
        return
    if url.get_backend_name() != "postgresql":
        return
    with engine.connect() as conn:
        flushes = conn.execute(text("SHOW fsync")).scalar_one()
        waits = conn.execute(text("SHOW synchronous_commit")).scalar_one()
        left = open_alerts(conn, WRITER_SOURCE, [NOT_DURABLE])
    if flushes == "on" and waits != "off":
        for severity in sorted({notice.severity for notice in left}):
            ended = "the PostgreSQL server flushes the writer's commits again"
            store.raise_alert(
                AlertResolved(
                    code=NOT_DURABLE, severity=severity, message=ended, subject="database"
                )
            )
        return
    setting = "fsync = off" if flushes != "on" else "synchronous_commit = off for the writer"
    message = (
        f"the PostgreSQL server runs with {setting}: a power cut or an operating system "
        "crash can lose events the writer acknowledged, and the producers will have let "
        "them go (set it on in postgresql.conf)"
    )
    log.warning("%s", message)
    store.raise_alert(
        Alert(severity="warning", code=NOT_DURABLE, message=message, subject="database")
    )
