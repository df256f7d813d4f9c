"""The ``observer`` command: writer, supervise, db, audit, data, capture, replay, and more."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, NoReturn

import msgspec
import typer

from observer.calendar.clock import clock_from_env, clock_from_spec
from observer.cli.config import config_app
from observer.cli.data import data_app, export, report
from observer.cli.journal import journal_app
from observer.cli.keys import keys_app
from observer.cli.kis import kis_app
from observer.cli.support import counted, database_failure, fail, settings_or_exit
from observer.cluster.rosters import ROSTER_WINDOW_S
from observer.config.load import default_config_path
from observer.config.tree import Settings
from observer.errors import (
    BackupError,
    BusError,
    ObserverError,
    StoreError,
    WriterLocked,
)
from observer.process.heartbeat import NOTIFY_FD_ENV
from observer.process.log_files import adopt_log_file
from observer.process.logs import mask_secrets, setup_logging
from observer.supervisor.ctl import ctl_app

__all__ = ["app", "main"]

# A command that needs the database, the bus or the supervisor imports it when it runs, and
# `main` loads only the worker command named on the command line: a program the supervisor
# restarts is READY sooner for every module it does not load, and `observer ctl` stays quick
# (tests/cli/test_startup.py).

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help names configuration tables: "[supervisor] role"
    help="A market-data observer for the Korea Investment & Securities Open API.",
)
db_app = typer.Typer(no_args_is_help=True, help="The database: schema (alembic), backups.")
app.add_typer(db_app, name="db")
app.add_typer(ctl_app, name="ctl")
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.command("export")(export)
app.command("report")(report)
app.add_typer(keys_app, name="keys")
app.add_typer(kis_app, name="kis")
app.add_typer(journal_app, name="journal")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="observer.toml to load")]
DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (default: config)")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="sockets and outboxes")]


def _settings(config: Path | None) -> Settings:
    return settings_or_exit("observer", config)


def _fail(message: str, code: int) -> NoReturn:
    fail("observer", message, code)


def _url(settings: Settings, db: str | None) -> str:
    return db or settings.database.url


@app.command()
def writer(
    config: ConfigOpt = None,
    db: DbOpt = None,
    run_dir: RunDirOpt = None,
    capture: Annotated[Path | None, typer.Option(help="tee committed frames to this file")] = None,
) -> None:
    """Run the writer: ingest, commit, ack, feed (exit 2: database, 3: locked)."""
    from observer.cli.writer import run  # deferred: the writer's modules, for the writer only

    raise typer.Exit(run(config, db, run_dir, capture))


@app.command()
def supervise(
    config: ConfigOpt = None,
    clock: Annotated[
        str | None, typer.Option(help="system | ISO@SPEEDx | sim:... (default $OBSERVER_CLOCK)")
    ] = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all | store | collectors: the programs of this host (default [supervisor] role)"
        ),
    ] = None,
    log_file: Annotated[
        Path | None,
        typer.Option(
            help="log to this file, rotated like the programs' logs ([supervisor] log_max_bytes,"
            " log_keep), instead of stderr; not under supervisord, which rotates its own"
        ),
    ] = None,
) -> None:
    """Run the configured programs: phases, schedule, restarts, control socket (exit 3: locked)."""
    # deferred: the supervisor's modules (ZeroMQ, psutil: about 0.15 s) for `supervise` only
    from observer.supervisor.core import SupervisorLocked
    from observer.supervisor.run import run_supervisor

    path = config or default_config_path()
    settings = _settings(path)
    if role is not None:
        if role not in ("all", "store", "collectors"):
            _fail(f"--role {role!r}: expected all, store or collectors", 2)
        supervisor = msgspec.structs.replace(settings.supervisor, role=role)
        settings = msgspec.structs.replace(settings, supervisor=supervisor)
    if log_file:
        own = settings.supervisor
        setup_logging(handler=adopt_log_file(log_file, own.log_max_bytes, own.log_keep))
    else:
        setup_logging()
    try:
        code = run_supervisor(settings, path, clock_from_spec(clock) if clock else clock_from_env())
    except SupervisorLocked as exc:
        _fail(str(exc), 3)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, db: DbOpt = None, revision: str = "head") -> None:
    """Migrate the database to a revision (default: head)."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db import migrate

    url = _url(_settings(config), db)
    try:
        migrate.upgrade(url, revision)
        typer.echo(f"at {migrate.current(url)}")
    except StoreError as exc:
        _fail(str(exc), 2)


@db_app.command("current")
def db_current(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Print the database's revision (exit 1 if it is not the newest)."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db import migrate

    try:
        revision = migrate.current(_url(_settings(config), db))
    except StoreError as exc:
        _fail(str(exc), 2)
    head = migrate.head()
    typer.echo(f"{revision or 'empty'} (head {head})")
    raise typer.Exit(0 if revision == head else 1)


@db_app.command("check")
def db_check(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Compare the migrated database with the models (exit 1 on any difference)."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db import migrate

    try:
        diffs = migrate.check(_url(_settings(config), db))
    except StoreError as exc:
        _fail(str(exc), 2)
    for line in diffs:
        typer.echo(line)
    typer.echo("models and database match" if not diffs else counted(len(diffs), "difference"))
    raise typer.Exit(1 if diffs else 0)


@db_app.command("backup")
def db_backup(
    config: ConfigOpt = None,
    to: Annotated[
        Path | None, typer.Option("--to", help="folder (default: the configuration's backup.dir)")
    ] = None,
    keep: Annotated[int | None, typer.Option(min=1, help="newest verified backups kept")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line")] = False,
) -> None:
    """Back up the database and its files, verified by restoring them (exit 1 if not).

    The scheduled job is ``observer backup run``, which alerts on the outcome.
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db.backup import make_backup

    try:
        backup = make_backup(_settings(config), config or default_config_path(), to, keep)
    except BackupError as exc:
        _fail(str(exc), 1)
    if as_json:
        typer.echo(json.dumps(backup.summary()))
    else:
        typer.echo(
            f"{backup.path}  {backup.size / 1e6:.1f} MB in {len(backup.parts)} parts, "
            f"verified, {backup.seconds:.1f} s"
        )


@db_app.command("restore")
def db_restore(
    backup: Annotated[Path, typer.Argument(help="a backup folder")],
    config: ConfigOpt = None,
    db: DbOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="restore a backup that failed verification (*.failed)")
    ] = False,
) -> None:
    """Restore a backup's database into an empty database (never over a live one).

    Only a verified backup: one kept as ``*.failed`` takes ``--force``.
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db.backup import restore_backup
    from observer.db.engine import display_url
    from observer.db.migrate import current

    url = _url(_settings(config), db)
    try:
        restored = restore_backup(backup, url, force=force)
    except BackupError as exc:
        _fail(str(exc), 1)
    typer.echo(f"restored {restored.path.name} ({restored.created}) into {display_url(url)}")
    now = current(url)
    if now != restored.revision:  # a backup of an earlier release
        typer.echo(f"its schema was upgraded from revision {restored.revision} to {now}")


@app.command()
def audit(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Check that every source's seqs are exactly 1..max and no seq was claimed twice.

    Names the seqs producers declared lost, and compares this host's outboxes with the
    database: one that saw more acknowledged than the database holds means acknowledged
    events are missing. Exit 1 on any of these or a conflict; exit 2 if there is no database
    or it was never migrated. An empty one says so (exit 0).
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from sqlalchemy import inspect

    from observer.cli.audit import AuditReport, outbox_states
    from observer.db.audit_queries import audit_sources, conflicts, losses
    from observer.db.engine import display_url, make_engine
    from observer.db.models import BusOffset

    settings = _settings(config)
    url = _url(settings, db)
    engine, where = make_engine(url, read_only=True), display_url(url)  # password masked
    # This host's outboxes belong to the configured database only; read before it, so a
    # producer acknowledged meanwhile is never seen ahead of the database's snapshot.
    outboxes = outbox_states(settings.paths.run) if url == settings.database.url else {}
    try:
        if not inspect(engine).has_table(BusOffset.__tablename__):  # its own connection
            _fail(f"the database {where} was never migrated: run `observer db upgrade`", 2)
        with engine.connect() as conn:
            report = AuditReport(audit_sources(conn), conflicts(conn), losses(conn), outboxes)
    finally:
        engine.dispose()
    for line in report.lines():
        typer.echo(line)
    if not report.sources and not report.conflicts:  # silence is no "all well" when empty
        typer.echo(f"nothing stored yet in {where}: 0 sources, 0 events (no ticks, snapshots, ...)")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def hosts(
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line")] = False,
) -> None:
    """Each host's latest roster: age, role, whole-market programs, accounts, Track B shard.

    Rosters older than 36 hours are marked stale: they no longer count in the overlap checks.
    """
    # deferred: the database layer (SQLAlchemy, about 0.2 s) only for the commands that use it
    from observer.db.engine import make_engine
    from observer.db.roster_queries import latest_rosters

    engine = make_engine(_url(_settings(config), db), read_only=True)
    try:
        with engine.connect() as conn:
            rosters = latest_rosters(conn)
    finally:
        engine.dispose()
    now_ns = clock_from_env().now_ns()  # the supervisor's clock: ages as it counts them
    rows = [
        {
            "host": r.label,
            "source": r.source,
            "role": r.role,
            "age_h": round((now_ns - r.published_ns) / 3.6e12, 1),
            "stale": now_ns - r.published_ns > ROSTER_WINDOW_S * 1e9,
            "whole_market": list(r.whole_market),
            "accounts": [alias for alias, _ in r.accounts],  # never the fingerprints
            "track_b_shard": r.track_b_shard,
        }
        for r in rosters
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no host has published a roster yet")
    for r, row in zip(rosters, rows, strict=True):
        stale = " STALE" if row["stale"] else ""
        typer.echo(
            f"{r.label:24} {r.role:10} {row['age_h']:6.1f} h{stale}  "
            f"whole-market: {', '.join(r.whole_market) or '-'}  "
            f"accounts: {', '.join(alias for alias, _ in r.accounts) or '-'}  "
            f"track_b shard: {r.track_b_shard or '-'}"
        )


@app.command()
def capture(
    out: Annotated[Path, typer.Option("--out", help="new capture file")],
    config: ConfigOpt = None,
    run_dir: RunDirOpt = None,
    topic: Annotated[list[str] | None, typer.Option(help="topic prefix (repeatable)")] = None,
    count: Annotated[int | None, typer.Option(help="stop after N frames")] = None,
    seconds: Annotated[float | None, typer.Option(help="stop after S seconds")] = None,
) -> None:
    """Record the writer's feed into a capture file (lossy tap; `writer --capture` is not)."""
    # deferred: the bus and the writer's replay (ZeroMQ, SQLAlchemy: about 0.6 s) for this only
    from observer.cluster.transport import bus_endpoints, client_curve
    from observer.runtime import stop_on_signals
    from observer.writer.replay import capture_feed, check_new_capture

    settings = _settings(config)
    try:
        check_new_capture(out)  # before the run folder and the socket
        endpoints = bus_endpoints(settings.bus, run_dir or settings.paths.run)
        stop = stop_on_signals()
        n = capture_feed(
            endpoints.feed,
            out,
            prefixes=tuple(topic or [""]),
            max_events=count,
            seconds=seconds,
            should_stop=stop.is_set,
            curve=client_curve(settings.bus),
        )
    except BusError as exc:  # an unusable --out ("<path>: <reason>"), a key file
        fail("observer capture", str(exc), 2)
    except OSError as exc:  # a write refused (a full volume): the file keeps whole frames
        kept = "the frames before it are kept whole" if out.exists() else "nothing was kept"
        fail("observer capture", f"{out}: {exc.strerror or exc}; {kept}", 1)
    typer.echo(f"captured {n} frames to {out}")


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="capture file")],
    config: ConfigOpt = None,
    db: DbOpt = None,
    as_producer: Annotated[bool, typer.Option(help="send to the live writer instead")] = False,
    run_dir: RunDirOpt = None,
    allow_torn_tail: Annotated[bool, typer.Option(help="stop at a truncated last frame")] = False,
) -> None:
    """Replay a capture into a database (through the writer's code) or onto the live bus.

    Into a database, the capture is checked first, then the writer's lock on the database is
    held throughout (exit 2 while a writer serves it: send the capture with --as-producer),
    then the database is migrated. Exit 1 if an event of the capture was not stored: past a
    hole (its source's previous seq is missing) or conflicting with a committed one.
    """
    # deferred: the bus and the writer's replay (ZeroMQ, SQLAlchemy: about 0.6 s) for this only
    from observer.cluster.transport import bus_endpoints, client_curve
    from observer.writer.replay import open_capture, replay_as_producer, replay_into_db

    settings = _settings(config)
    try:
        if as_producer:
            open_capture(file, allow_torn_tail).close()  # checked before the run folder is made
            endpoints = bus_endpoints(settings.bus, run_dir or settings.paths.run)
            result = replay_as_producer(
                file,
                endpoints.ingest,
                allow_torn_tail=allow_torn_tail,
                curve=client_curve(settings.bus),
            )
        else:
            result = replay_into_db(
                file,
                _url(settings, db),
                allow_torn_tail=allow_torn_tail,
                run_dir=run_dir or settings.paths.run,  # where the writers keep their locks
                upgrade=True,
            )
    except (BusError, StoreError, WriterLocked) as exc:
        fail("observer replay", str(exc), 2)
    typer.echo(
        f"{result.frames} frames, {result.events} events, {result.committed} committed, "
        f"{result.duplicates} duplicates, {result.conflicts} conflicting, "
        f"{result.skipped} skipped past a hole, {result.resent} frames resent{result.not_sent()}"
    )
    if result.not_stored():
        fail("observer replay", f"not stored: {result.not_stored()}", 1)


def _add_worker_commands(args: list[str]) -> None:
    """Add the commands of workers and of the harness (entry points ``observer.commands``).

    Earlier names (``observer.command_aliases``) still work when named, unlisted.

    An entry point names a typer app (a command group) or a function (one command). Only the
    one named on the command line is imported (all of them for help), so a worker's imports
    never slow down the start of another process.
    """
    wanted = args[0] if args and not args[0].startswith("-") else None
    own = {info.name for info in app.registered_groups} | {
        info.name or getattr(info.callback, "__name__", "").replace("_", "-")
        for info in app.registered_commands
    }
    if wanted in own:
        return  # one of ours: reading the entry points alone takes tens of milliseconds
    for group, hidden in (("observer.commands", False), ("observer.command_aliases", True)):
        for entry in entry_points(group=group):
            if wanted not in (None, entry.name) or (hidden and wanted is None):
                continue
            target = entry.load()
            if isinstance(target, typer.Typer):
                app.add_typer(target, name=entry.name, hidden=hidden)
            else:
                app.command(entry.name, hidden=hidden)(target)


def main() -> None:
    """Run the typer app (`observer.cli.entry.main` sends ``observer writer`` elsewhere)."""
    os.umask(0o077)  # every file and folder a process creates is owner-only (so its children)
    args = sys.argv[1:]
    try:
        if args[:1] == ["ctl"]:  # the control client alone: the other commands are not built
            ctl_app(args[1:], prog_name="observer ctl")
        else:
            _add_worker_commands(args)
            app()
    except ObserverError as exc:
        typer.echo(f"observer: {mask_secrets(str(exc))}", err=True)
        sys.exit(2)
    except Exception as exc:
        failure = database_failure(exc) or _path_failure(exc)
        if failure is None or os.environ.get(NOTIFY_FD_ENV):  # a job's log keeps its traceback
            raise
        reason, code = failure
        typer.echo(f"observer: {mask_secrets(reason)}", err=True)
        sys.exit(code)


def _path_failure(exc: Exception) -> tuple[str, int] | None:
    """One line and exit 2 for a path given that the system refused (missing, a folder)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}", 2
    return None
