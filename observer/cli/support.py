"""What every ``observer`` command shares: how it fails, and how a worker process starts.

Failing: one line on stderr and a documented exit code (2 for bad configuration, 1 when the
bus fails). A worker process: configuration, logging, the shared clock, the supervisor's
notifier and the worker's producer, READY, then an event loop stopped by SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from bus.errors import BusError
from observer.calendar.clock import Clock, clock_from_env
from observer.cluster.hosts import host_of, own_source
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db.settings import DatabaseSettings
from observer.errors import ConfigError, NoDatabase, StoreError
from observer.kis.credentials import configured_credentials
from observer.kis.settings import KisSettings
from observer.process.heartbeat import Heartbeat
from observer.process.logs import mask_secrets, setup_logging
from observer.process.private_files import tighten_folders

if TYPE_CHECKING:
    import typer
    from sqlalchemy import Connection

    from bus.producer import Producer
    from observer.alerts.states import Notice

__all__ = [
    "STORABLE_DAYS",
    "Worker",
    "check_credentials",
    "counted",
    "database_failure",
    "fail",
    "hand_options_to_subcommand",
    "is_open_alert",
    "report_reading",
    "settings_or_exit",
    "start_worker",
    "storable_day",
]

log = logging.getLogger(__name__)


def counted(n: int, thing: str) -> str:
    """``1 event``, ``2 events``: a count as a person writes it."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def fail(program: str, message: str, code: int) -> NoReturn:
    """Print ``<program>: <message>`` on stderr (secrets masked) and exit with ``code``."""
    print(f"{program}: {mask_secrets(message)}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def database_failure(exc: Exception) -> tuple[str, int] | None:
    """One line and the exit code for a database a command could not use, else None.

    A URL that does not parse or names a database without its driver is configuration
    (exit 2); a database that refuses or lacks a table, a failure (exit 1). SQLAlchemy is
    looked up only if loaded: a command that never imported it cannot raise its errors.
    """
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None:
        return None
    # deferred: the database layer loads with SQLAlchemy, which raised this (a command that
    # never loaded it, `observer ctl` say, stays without it: tests/cli/test_startup.py)
    from observer.db.engine import error_reason

    if isinstance(exc, errors.ArgumentError | errors.NoSuchModuleError):
        return f"not a usable database URL: {exc}", 2
    if isinstance(exc, ModuleNotFoundError) and any(
        "/sqlalchemy/dialects/" in frame.filename
        for frame in traceback.extract_tb(exc.__traceback__)
    ):
        return f"no driver for this database URL: {exc}", 2
    if isinstance(exc, errors.SQLAlchemyError):
        return f"the database failed: {error_reason(exc)}", 1
    return None


# The days a UTC nanosecond timestamp (a signed 64-bit column) can hold, whole.
STORABLE_DAYS = (date(1678, 1, 1), date(2262, 4, 10))


def storable_day(program: str, option: str, day: date) -> date:
    """``day``, or exit 2 when it is beyond what a nanosecond timestamp can hold."""
    first, last = STORABLE_DAYS
    if not first <= day <= last:
        fail(program, f"{option}: {day} is outside {first} to {last}", 2)
    return day


def hand_options_to_subcommand(ctx: typer.Context, program: str) -> None:
    """Options given to a group before its subcommand become the subcommand's defaults.

    ``observer archive --config X verify`` checks X's archives: click would otherwise drop
    ``--config`` silently and check the default installation's. An option the subcommand
    does not take is refused (exit 2), never ignored.
    """
    # deferred: typer (about 0.06 s) is its commands', and the writer starts without it
    from typer.core import TyperGroup

    name = ctx.invoked_subcommand
    assert isinstance(ctx.command, TyperGroup) and name is not None
    given = [  # typed on the command line (no group option has an environment variable)
        param
        for param in ctx.command.params
        if param.name
        and (source := ctx.get_parameter_source(param.name)) is not None
        and source.name == "COMMANDLINE"
    ]
    if not given:
        return
    command = ctx.command.get_command(ctx, name)
    takes = {param.name for param in command.params} if command else set()
    refused = [param.opts[0] for param in given if param.name not in takes]
    if refused:
        verb = "does" if len(refused) == 1 else "do"
        fail(program, f"{', '.join(refused)} {verb} not apply to {name}", 2)
    ctx.default_map = {name: {param.name: ctx.params[param.name] for param in given}}


@contextmanager
def report_reading(program: str, database: DatabaseSettings) -> Iterator[Connection]:
    """A report's connection: the replica's when it serves (`observer.db.replica`).

    Says on stderr where it read and the replica's lag, or why it read the primary; exits 1
    naming the reason when no connection comes (the pool's timeout, a database down), 2
    when there is no database at all (a report's own exit 1 says what it found: stale).
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) for the reports only
    from observer.db.replica import report_engine

    try:
        name = program.removeprefix("observer ")
        with report_engine(database, name) as source, source.engine.connect() as conn:
            if source.note:
                print(f"{program}: {source.note}", file=sys.stderr, flush=True)
            yield conn
    except NoDatabase as exc:
        fail(program, str(exc), 2)
    except StoreError as exc:
        fail(program, str(exc), 1)


def check_credentials(program: str, kis: KisSettings) -> None:
    """Exit 2 naming the account and the reason when any account's credentials are refused."""
    try:
        configured_credentials(kis)
    except ConfigError as exc:
        fail(program, str(exc), 2)


def settings_or_exit(program: str, config: Path | None) -> Settings:
    """The configuration, or exit 2 naming what is wrong with it.

    The folders it names that this user owns are made owner-only (`tighten_folders`): a
    ``mkdir -p var/log var/run`` under the usual umask left them open to every local user.
    """
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(program, str(exc), 2)
    for folder, mode in tighten_folders(_data_folders(settings)):
        log.warning("tightened %s from %o to %o: data is owner-only", folder, mode, mode & 0o700)
    return settings


def _data_folders(settings: Settings) -> list[Path]:
    """The folders holding the data, logs, sockets, tokens and the SQLite database.

    The working folder, its parents and the home folder are the user's, not the data's
    (``sqlite:///up.db`` lives in the working folder): they are left as they are; the
    files themselves are created owner-only.
    """
    paths = settings.paths
    folders = [Path(paths.data_dir), paths.run, paths.log, Path(settings.kis.token_dir)]
    url = settings.database.url
    if url.startswith("sqlite") and ":///" in url:
        database = url.split(":///", 1)[1].split("?", 1)[0]
        if database and database != ":memory:":
            folders.append(Path(database).parent)
    here = Path.cwd().resolve()
    users = {here, *here.parents, Path.home().resolve()}
    return [folder for folder in folders if folder.resolve() not in users]


@dataclass(frozen=True, slots=True)
class Worker:
    """A started worker process's parts."""

    program: str
    settings: Settings
    clock: Clock
    notifier: Heartbeat
    producer: Producer

    def run(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run ``main(stop)`` until it returns; SIGTERM and SIGINT set ``stop``.

        Closes the producer (draining up to 10 s); exits 1 if the bus fails, and 1 with the
        traceback logged (masked, like every line) if anything else ends ``main`` or one of
        its tasks: the supervisor restarts the program with backoff.
        """
        try:
            asyncio.run(_until_signalled(main))
        except BusError as exc:
            fail(self.program, str(exc), 1)
        except Exception as exc:
            log.critical("%s failed: %s", self.program, exc, exc_info=exc)
            fail(self.program, mask_secrets(f"failed: {type(exc).__name__}: {exc}"), 1)
        finally:
            self.producer.close(drain_timeout=10.0)


async def _until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await main(stop)


class StartedJob(NamedTuple):
    """A started job's parts (its producer comes from `job_producer`)."""

    settings: Settings
    clock: Clock
    notifier: Heartbeat


def start_job(program: str, config: Path | None, *, kis: bool = False) -> StartedJob:
    """A job's start: configuration, logging, clock and notifier; then READY.

    With ``kis``, the credentials are checked first (refused ones exit 2). A job that must
    hold a lock before READY starts by hand instead.
    """
    settings = settings_or_exit(program, config)
    if kis:
        check_credentials(program, settings.kis)
    setup_logging()
    clock = clock_from_env()
    notifier = Heartbeat.from_env()
    notifier.ready()
    return StartedJob(settings, clock, notifier)


def is_open_alert(settings: Settings, source: str, code: str) -> bool:
    """True if this host's ``source`` raised an alert ``code`` that is still open.

    A job that succeeds resolves its earlier runs' failure alert only if one is open (a
    resolution of nothing would go to every channel each run). A database that cannot say
    counts as open: one needless resolution beats reminders every half hour.
    """
    subjects = open_alert_subjects(settings, source, code)
    return subjects is None or bool(subjects)


def open_alert_subjects(settings: Settings, source: str, code: str) -> set[str] | None:
    """The subjects of this host's ``source``'s open alerts ``code``.

    None: the database cannot say (`is_open_alert`: each counts as open).
    """
    found = open_alert_notices(settings, source, [code])
    return None if found is None else {notice.subject for notice in found}


def open_alert_notices(
    settings: Settings, source: str, codes: Collection[str]
) -> list[Notice] | None:
    """The open alerts of this host's ``source`` of ``codes``, oldest first (for an `AlertBook`).

    None: the database cannot say (logged).
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) for a job that reads alerts
    from sqlalchemy.exc import SQLAlchemyError

    # deferred: the alerts read needs the database layer (SQLAlchemy), loaded after READY
    from observer.alerts.stored import open_alerts
    from observer.db.readers import read_once

    own = own_source(settings.supervisor, source)
    try:
        return read_once(settings.database, source, lambda conn: open_alerts(conn, own, codes))
    except (SQLAlchemyError, StoreError) as exc:
        log.warning("cannot read the open alerts %s: %s", ", ".join(codes), exc)
        return None


def open_subjects_on_host(settings: Settings, reader: str, code: str) -> set[str] | None:
    """The subjects of ``code``'s alerts any process of this host left open.

    ``reader``: the process reading (its database login). None: the database cannot say
    (logged).
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) for a job that reads alerts
    from sqlalchemy.exc import SQLAlchemyError

    # deferred: the alerts read needs the database layer (SQLAlchemy), loaded after READY
    from observer.alerts.stored import open_on_host
    from observer.db.readers import read_once

    host = host_of(own_source(settings.supervisor, reader))
    try:
        found = read_once(settings.database, reader, lambda c: open_on_host(c, host, [code]))
    except (SQLAlchemyError, StoreError) as exc:
        log.warning("cannot read the open alerts %s: %s", code, exc)
        return None
    return {notice.subject for notice in found}


@contextmanager
def job_producer(
    program: str,
    settings: Settings,
    source: str,
    clock: Clock,
    notifier: Heartbeat,
    timeout: float,
) -> Iterator[Producer]:
    """A job's producer, for the job's lifecycle: READY, lock, this, work, exit.

    Before the body, every event of an earlier run must be acknowledged (a job reads state
    the writer keeps, e.g. the listings a diff is taken against); after it, everything the
    body sent; each wait beats to the supervisor. Otherwise the job exits 1 naming what
    waits in the outbox (the next run sends it). The producer is closed at the end.
    """
    # ZeroMQ: for workers, not every command
    from observer.runtime import drained, producer_for, take_over_disk_alerts

    try:
        producer = producer_for(settings, source, clock.now_ns)
    except BusError as exc:
        fail(program, str(exc), 1)
    take_over_disk_alerts(settings, producer)  # a job is READY before its producer
    notifier.report_producer(producer)
    try:
        if not drained(producer, notifier, timeout):
            fail(
                program,
                f"the writer has not acknowledged {counted(producer.pending, 'earlier event')} "
                f"within {timeout:g} s; is it running?",
                1,
            )
        yield producer
        if not drained(producer, notifier, timeout):
            fail(
                program,
                f"{counted(producer.pending, 'event')} still in the outbox for the writer; "
                "the next run sends the outbox",
                1,
            )
    finally:
        producer.close(drain_timeout=0)


def start_worker(program: str, source: str, config: Path | None, *, kis: bool = False) -> Worker:
    """Configuration, logging, clock, notifier and producer; then READY.

    With ``kis``, every account's credentials are loaded first: refused ones exit 2 before
    READY, a failed start to the supervisor, instead of failing the worker's day later.
    """
    # ZeroMQ: for workers, not every command
    from observer.runtime import producer_for, take_over_disk_alerts

    settings = settings_or_exit(program, config)
    if kis:
        check_credentials(program, settings.kis)
    setup_logging()
    clock = clock_from_env()
    notifier = Heartbeat.from_env()
    try:
        producer = producer_for(settings, source, clock.now_ns)
    except BusError as exc:
        fail(program, str(exc), 1)
    notifier.report_producer(producer)
    notifier.ready()
    take_over_disk_alerts(settings, producer)  # the database layer: after READY
    return Worker(program, settings, clock, notifier, producer)
