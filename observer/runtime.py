"""Process helpers: stop signals, the producer and its alert book, heartbeats, a worker's base.

`alongside` runs a process's long-lived tasks so that none dies unseen.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bus.producer import Producer
from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.cluster.hosts import own_source
from observer.cluster.transport import bus_endpoints, client_curve
from observer.config.tree import Settings
from observer.errors import WaitFailed
from observer.kis.journal import Journal, journal_name, journal_root
from observer.process.disk import DiskWatch
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.process.logs import mask_struct

__all__ = [
    "AsyncWorker",
    "ShortTasks",
    "alert_book",
    "alongside",
    "beat_forever",
    "drained",
    "earlier_run_stored",
    "poll_until",
    "producer_for",
    "sleep_unless",
    "stop_on_signals",
    "take_over_disk_alerts",
]

T = TypeVar("T")

# How long a producer's first disk measure waits for `take_over_disk_alerts` (a process that
# never hands them over, a test's, a tool's, measures from ok after this).
_TAKE_OVER_S = 30.0
_watches: weakref.WeakKeyDictionary[Producer, DiskWatch] = weakref.WeakKeyDictionary()
_books: weakref.WeakKeyDictionary[Producer, AlertBook] = weakref.WeakKeyDictionary()
_journals: dict[tuple[str, Path], Journal] = {}  # (source, folder) -> the process's journal
JOURNAL_FAILED = "kis_journal_failed"  # the process's journal of KIS's frames stopped


def stop_on_signals() -> threading.Event:
    """Return an event set by SIGTERM or SIGINT (the process then drains and exits)."""
    stop = threading.Event()

    def handle_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle_signal)
    signal.signal(signal.SIGINT, handle_signal)
    return stop


def producer_for(
    settings: Settings, source: str, clock_ns: Callable[[], int] = time.time_ns
) -> Producer:
    """The producer of one worker instance: its outbox under ``run_dir/outbox/<source>``.

    On a host with a name (``[supervisor] host``) the source is qualified with it
    (``track_b@c2``, `observer.cluster.hosts`), and so is its outbox; ``producer.source`` is the
    name its rows are stored under. Every event it sends is masked like a log line first
    (`observer.process.logs.mask_struct`), and the free space of the outbox's volume is watched
    (`observer.process.disk`: its first measure waits for `take_over_disk_alerts`). The
    process's `alert_book` publishes through it.
    """
    unnamed, source = source, own_source(settings.supervisor, source)
    run_dir = settings.paths.run
    bus = settings.bus
    outbox = run_dir / "outbox" / source
    if source != unnamed and (run_dir / "outbox" / unnamed).is_dir():
        # A host given a name after it ran without one: its old outbox is another source's.
        logging.getLogger(__name__).warning(
            "%s: an outbox of the unnamed source %r is in %s; what it still holds is sent "
            "only by a run without [supervisor] host",
            source,
            unnamed,
            run_dir / "outbox",
        )
    book = AlertBook(lambda event: producer.send(event), source)  # the producer made below
    watch = DiskWatch(
        settings.disk, {"outbox": outbox}, source, book=book, take_over_within_s=_TAKE_OVER_S
    )
    producer = Producer(
        source,
        bus_endpoints(settings.bus, settings.paths.run).ingest,
        outbox,
        batch_events=bus.batch_events,
        linger_s=bus.linger_ms / 1000,
        max_frame_bytes=bus.max_frame_bytes,
        max_in_flight=bus.max_in_flight,
        ack_timeout_s=bus.ack_timeout_ms / 1000,
        backlog_alert_events=bus.backlog_alert_events,
        sync=bus.fsync,
        clock_ns=clock_ns,
        scrub=mask_struct,  # error text from upstream answers: no credential into events
        watch=watch.check,
        curve=client_curve(settings.bus),  # over tcp: this host's keys (ConfigError if missing)
    )
    _watches[producer] = watch
    _books[producer] = book
    return producer


def alert_book(producer: Producer) -> AlertBook:
    """The alert book of ``producer``'s process (`producer_for` made it): it publishes there.

    A producer made otherwise (a test's stand-in) gets a book of its own, through its ``send``.
    """
    book = _books.get(producer) if isinstance(producer, Producer) else None
    if book is None:
        book = AlertBook(producer.send, getattr(producer, "source", ""))
    return book


def journal_for(settings: Settings, producer: Producer) -> Journal | None:
    """The raw journal of ``producer``'s process (`observer.kis.journal`); None if turned off.

    One per process, named by its bus source, sealed at the process's exit, and fsynced
    before each fsync of the producer's outbox: a frame is on the disk before an event read
    from it is sent. A file that cannot be written raises a warning (`JOURNAL_FAILED`) in
    the process's alert book; the next file that opens (a minute later, or the next day's)
    resolves it.
    """
    config = settings.kis.journal
    if not config.enabled:
        return None
    source = getattr(producer, "source", "") or "process"
    root = journal_root(config, settings.paths)
    journal = _journals.get((source, root))
    if journal is None:
        book = alert_book(producer)

        def failed(why: str) -> None:
            message = f"the journal of KIS's frames and answers stopped: {why}"
            book.raise_(JOURNAL_FAILED, source, "warning", message)

        def opened(path: Path) -> None:
            message = f"the journal of KIS's frames and answers writes again: {path.name}"
            book.resolve(JOURNAL_FAILED, source, message)

        journal = Journal(
            root, journal_name(source), config.level, on_failure=failed, on_open=opened
        )
        _journals[source, root] = journal
        atexit.register(journal.close)
        if isinstance(producer, Producer):  # with [bus] fsync, durable as its events are
            producer.sync_also(journal.sync)
    return journal


def take_over_disk_alerts(settings: Settings, producer: Producer) -> None:
    """Hand ``producer``'s disk watch the disk alerts an earlier run of its source left open.

    On the main thread, after READY (it loads the database layer, which a worker loads only
    then): the watch's first measure waits for this, up to `_TAKE_OVER_S`.
    """
    from observer.process.disk_alerts import stored_disk_alerts  # the database layer: after READY

    if (watch := _watches.get(producer)) is not None:
        watch.take_over(stored_disk_alerts(settings.database, producer.source)())


def drained(
    producer: Producer, notifier: Heartbeat, timeout: float, until: Callable[[], bool] | None = None
) -> bool:
    """Wait until the writer acknowledged everything sent, beating meanwhile; False at timeout.

    A job waits here before reading state the writer keeps (the events must be in), and
    before exiting; the beats keep the supervisor from taking the wait for a hang. With
    ``until``, the wait ends when that holds instead of after ``timeout`` wall seconds.
    """
    deadline = time.monotonic() + timeout
    over = until or (lambda: time.monotonic() > deadline)
    said = False
    while not producer.wait_acked(1.0 if until else min(1.0, timeout)):
        notifier.beat()
        if over():
            return False
        if not said:  # a person at a terminal sees why nothing happens
            said = True
            logging.getLogger(__name__).warning(
                "waiting %s for the writer to store %d event(s) (is it running?)",
                "while the work in hand lasts" if until else f"up to {timeout:g} s",
                producer.pending,
            )
    return True


async def earlier_run_stored(
    producer: Producer, notifier: Heartbeat, stop: asyncio.Event, within_s: float | None = None
) -> bool:
    """Wait until the writer stored what an earlier run of this source left in the outbox.

    A worker that reads back state it keeps in the database waits here first: its own last
    events must be in. It beats meanwhile, ``failing_s`` the wall seconds waited (the
    writer is out, or behind). True once they are stored; False if ``stop`` is set first,
    or, with ``within_s``, once that many wall seconds have passed. Without it the wait
    has no end: a process that exited instead would be started again by its supervisor
    about every minute, only to wait again.
    """
    through = producer.last_seq  # the earlier run's, and whatever this one sent since
    started = time.monotonic()
    said = False
    while not await asyncio.to_thread(producer.wait_acked, 1.0, through):
        waited = time.monotonic() - started
        notifier.beat(lambda: {FAILING_S: round(time.monotonic() - started, 1)})
        if stop.is_set() or (within_s is not None and waited >= within_s):
            return False
        if not said:  # a person at a terminal sees why nothing happens
            said = True
            logging.getLogger(__name__).warning(
                "waiting for the writer to store %d event(s) an earlier run left (is it running?)",
                through - producer.acked,
            )
    return True


def poll_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = 60.0,
    child: subprocess.Popen[bytes] | None = None,
    interval: float = 0.02,
) -> T:
    """Return ``condition()``'s first truthy value, polling every ``interval`` seconds.

    For waiting on another process, which cannot signal us. Raises `WaitFailed` at the
    deadline, or as soon as ``child`` (the process that should bring it about) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if child is not None and child.poll() is not None:
            raise WaitFailed(f"{what}: the process exited with {child.returncode}")
        if time.monotonic() > deadline:
            raise WaitFailed(f"{what}: not within {timeout:g} s")
        time.sleep(interval)  # the poll interval of a deadline-bound wait


async def sleep_unless(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep ``seconds`` of ``clock`` time, or less if ``stop`` is set first."""
    if seconds <= 0:
        return
    nap = asyncio.ensure_future(clock.sleep(seconds))
    woken = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({nap, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        nap.cancel()
        woken.cancel()


async def beat_forever(notifier: Heartbeat, counters: Callable[[], Mapping[str, float]]) -> None:
    """Heartbeats from an event loop until cancelled.

    Wall-clock sleeps on purpose: the supervisor's heartbeat timeout is in wall seconds.
    """
    while True:
        notifier.beat(counters)
        await asyncio.sleep(notifier.interval_s / 2)


@asynccontextmanager
async def alongside(
    *work: Coroutine[Any, Any, object],
) -> AsyncIterator[list[asyncio.Task[object]]]:
    """Run ``work`` as tasks of one `asyncio.TaskGroup` beside the body of the block.

    The body's end cancels the tasks still running (await one in the body to let it finish
    instead). The first task to raise cancels the body and the others, and its exception
    leaves the block: a background task that dies takes its process down, with its
    traceback, instead of leaving it heart-beating with nothing behind. A lone exception
    leaves unwrapped, so ``except BusError`` still sees it; several leave as the group.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(each) for each in work]
            try:
                yield tasks
            finally:
                for task in tasks:
                    task.cancel()
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:
            raise failed.exceptions[0] from None
        raise


class ShortTasks:
    """A long-lived process's short tasks: the first one to fail ends the process.

    `alongside` covers the tasks that live as long as their process; these come and go (a
    phase's start, a job waiting for another). Run `failures` alongside the rest: it
    raises the first failure there, so the process ends with its traceback (and its own
    supervisor restarts it) instead of going on with the task's work undone.
    """

    def __init__(self) -> None:
        self._running: set[asyncio.Task[None]] = set()  # asyncio keeps only weak references
        self._failed: asyncio.Queue[BaseException] = asyncio.Queue()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run ``work`` as a task; a failure is raised by `failures`."""
        task = asyncio.create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            self._failed.put_nowait(failure)

    async def failures(self) -> None:
        """Wait for a task to fail, and raise its exception."""
        raise await self._failed.get()


class AsyncWorker:
    """What every asyncio worker holds (settings, clock, producer, notifier, stop event).

    ``alerts`` is the process's alert book (`alert_book`).
    ``stop`` is set by SIGTERM; the sleeps are in clock time and end early when it is.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Heartbeat,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.producer = producer
        self.alerts = alert_book(producer)
        self.notifier = notifier
        self.stop = stop

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time, or less if ``stop`` comes first."""
        await sleep_unless(self.clock, seconds, self.stop)

    async def sleep_until(self, epoch_s: float) -> None:
        """Sleep until the clock reads ``epoch_s`` (UTC seconds), or ``stop``."""
        await self.sleep(epoch_s - self.clock.now_ns() / 1e9)
