"""Run the writer: bind, lock, open the store, serve until stopped."""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

from bus.endpoints import ipc_path
from observer.alerts.book import AlertBook
from observer.cluster.transport import bind_endpoints, server_curve
from observer.config.tree import Settings
from observer.db.engine import display_url, normalize_url
from observer.process.disk import DiskSettings, DiskWatch
from observer.process.disk_alerts import open_disk_alerts
from observer.process.heartbeat import Heartbeat
from observer.writer.identity import WRITER_SOURCE
from observer.writer.lock import WriterLock
from observer.writer.service import Writer, WriterOptions
from observer.writer.startup import open_store
from observer.writer.store import Store

__all__ = ["Store", "Writer", "WriterOptions", "run_writer"]

log = logging.getLogger(__name__)


def run_writer(
    settings: Settings,
    stop: threading.Event,
    *,
    db_url: str | None = None,
    run_dir: Path | None = None,
    capture: Path | None = None,
) -> int:
    """Lock, migrate, check the database, then serve until ``stop``; return the exit code.

    A server database that does not answer is waited for (`observer.writer.startup`).

    Raises
    ------
    WriterLocked
        Another writer serves this database or endpoint.
    StoreError
        The database has no schema, or did not answer for 600 s (`observer.writer.startup`).
    """
    url = normalize_url(db_url or settings.database.url)
    run_dir = run_dir or settings.paths.run
    endpoints = bind_endpoints(settings.bus, run_dir)  # behind NAT, not what clients connect to
    if settings.bus.ingest_bind or settings.bus.feed_bind:
        log.info(
            "binding %s and %s for clients of %s and %s",
            endpoints.ingest,
            endpoints.feed,
            settings.bus.ingest_endpoint,
            settings.bus.feed_endpoint,
        )
    curve = server_curve(settings.bus)  # over tcp: keys and allow-list, read before any lock
    lock = WriterLock(WriterLock.paths_for(url, run_dir, ipc_path(endpoints.ingest)))
    try:
        notifier = Heartbeat.from_env()
        opened = open_store(  # the server's lock too
            url,
            lock,
            stop,
            notifier,
            durable=settings.bus.fsync,
            migrate_on_start=settings.writer.migrate_on_start,
        )
        if opened is None:
            return 0  # stopped while its database did not answer
        engine, store = opened
        log.info("writer serving %s, %d sources known", display_url(url), len(store.marks))
        options = WriterOptions(
            batch_events=settings.writer.batch_events,
            batch_delay_s=settings.writer.batch_delay_ms / 1000,
            retry_max_s=settings.writer.retry_max_s,
            drain_s=settings.writer.drain_s,
            capture=capture,
            max_frame_bytes=settings.bus.max_frame_bytes,
            max_sources=settings.writer.max_sources,
            prune_chunk_rows=settings.retention.chunk_rows,
            partition_days_ahead=settings.retention.partition_days_ahead,
        )
        # Each batch allocates tens of thousands of short-lived rows: keep the cyclic GC
        # off the hot path: freeze what start-up built, and collect young objects less often.
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        try:
            alerts = AlertBook(None, WRITER_SOURCE)  # the writer commits its own alerts
            disk = _disk_watch(settings.disk, url.get_backend_name(), url.database, capture, alerts)
            if disk is not None:
                disk.take_over(open_disk_alerts(engine, WRITER_SOURCE))
            writer = Writer(store, endpoints, options, notifier, disk, curve, alerts)
            writer.lock_held = lock.held
            return writer.run(stop)
        finally:
            engine.dispose()
    finally:
        lock.close()


def _disk_watch(
    disk: DiskSettings,
    backend: str,
    database: str | None,
    capture: Path | None,
    alerts: AlertBook,
) -> DiskWatch | None:
    """The volumes the writer itself writes to: the SQLite file's folder, the capture's.

    A PostgreSQL server's disk is not visible from here: its own monitoring must watch it.
    """
    volumes: dict[str, Path] = {}
    if backend == "sqlite" and database and database != ":memory:":
        volumes["database"] = Path(database).resolve().parent
    elif backend != "sqlite":
        log.info("the database server's disk is not watched by the writer (only its own files)")
    if capture is not None:
        volumes["capture"] = capture.resolve().parent
    return DiskWatch(disk, volumes, WRITER_SOURCE, book=alerts) if volumes else None
