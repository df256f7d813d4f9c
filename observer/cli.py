"""The ``observer`` command: writer, db, capture, replay, audit, sim, bench."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from observer.cli_support import fail, settings_or_exit
from observer.config import Settings
from observer.errors import (
    BackupError,
    BusError,
    ConfigError,
    ObserverError,
    StoreError,
    WaitFailed,
)
from observer.logs import setup_logging
from observer.supervisor.ctl import ctl_app

__all__ = ["app", "main"]

# Each command imports what it needs when it runs, and `main` loads only the worker command
# named on the command line: a program the supervisor restarts is READY sooner for every
# module it does not load, and `observer ctl` stays quick.

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (alembic).")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print ratios to a baseline.")
app.add_typer(db_app, name="db")
app.add_typer(bench_app, name="bench")
app.add_typer(ctl_app, name="ctl")

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
    from observer.writer.command import run

    raise typer.Exit(run(config, db, run_dir, capture))


@app.command()
def supervise(
    config: ConfigOpt = None,
    clock: Annotated[
        str | None, typer.Option(help="system | ISO@SPEEDx | sim:... (default $OBSERVER_CLOCK)")
    ] = None,
) -> None:
    """Run the configured programs: phases, schedule, restarts, control socket (exit 3: locked)."""
    from observer.clock import clock_from_env, clock_from_spec
    from observer.config import default_config_path
    from observer.supervisor.core import SupervisorLocked
    from observer.supervisor.run import run_supervisor

    path = config or default_config_path()
    settings = _settings(path)
    setup_logging()
    try:
        code = run_supervisor(settings, path, clock_from_spec(clock) if clock else clock_from_env())
    except SupervisorLocked as exc:
        _fail(str(exc), 3)
    raise typer.Exit(code)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="the demo's own folder (emptied first)")] = Path(
        "data"
    ),
    date: Annotated[str | None, typer.Option(help="trading day (default: the latest)")] = None,
    start: Annotated[str, typer.Option(help="simulated start, KST")] = "04:55",
    until: Annotated[str, typer.Option(help="simulated end, KST")] = "15:40",
    speed: Annotated[
        float | None, typer.Option(help="clock speed in the session (default: day in 4.5 min)")
    ] = None,
    idle_speed: Annotated[
        float | None, typer.Option(help="clock speed outside 09:00-15:40 (default: 2x speed)")
    ] = None,
    accounts: Annotated[int, typer.Option(min=1, max=8, help="KIS accounts")] = 2,
    stocks: Annotated[
        int, typer.Option(min=200, help="the simulated market's stocks (a smaller day is quicker)")
    ] = 2500,
    faults: Annotated[str, typer.Option(help="none | light | heavy")] = "light",
    as_json: Annotated[bool, typer.Option("--json", help="last line is a JSON summary")] = False,
) -> None:
    """Run the simulator and every worker on a simulated trading day, then summarise it."""
    import signal
    from datetime import date as date_type

    from observer.demo import DemoError, DemoOptions, run_demo
    from observer.demo_view import DemoView

    try:
        options = DemoOptions(
            data_dir=data_dir,
            day=date_type.fromisoformat(date) if date else None,
            start=start,
            until=until,
            speed=speed,
            idle_speed=idle_speed,
            accounts=accounts,
            stocks=stocks,
            faults=faults,
        )
    except ValueError as exc:
        _fail(f"--date: {exc}", 2)
    setup_logging("WARNING")
    # SIGTERM unwinds like Ctrl-C, so the simulator and the supervisor are stopped with it.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    view = DemoView(live=sys.stdout.isatty() and not as_json)
    try:
        with view:
            summary = run_demo(options, view.update)
    except (DemoError, WaitFailed) as exc:
        _fail(str(exc), 1)
    view.print_summary(summary)
    if as_json:
        typer.echo(json.dumps(summary))
    raise typer.Exit(0 if summary["healthy"] else 1)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, db: DbOpt = None, revision: str = "head") -> None:
    """Migrate the database to a revision (default: head)."""
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
    from observer.db import migrate

    try:
        diffs = migrate.check(_url(_settings(config), db))
    except StoreError as exc:
        _fail(str(exc), 2)
    for line in diffs:
        typer.echo(line)
    typer.echo("models and database match" if not diffs else f"{len(diffs)} differences")
    raise typer.Exit(1 if diffs else 0)


@db_app.command("backup")
def db_backup(
    config: ConfigOpt = None,
    to: Annotated[Path | None, typer.Option("--to", help="folder (default: [backup] dir)")] = None,
    keep: Annotated[int | None, typer.Option(min=1, help="newest verified backups kept")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line")] = False,
) -> None:
    """Back up the database and its files, verified by restoring them (exit 1 if not).

    The scheduled job is ``observer backup run``, which alerts on the outcome.
    """
    from observer.config import default_config_path
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
) -> None:
    """Restore a backup's database into an empty database (never over a live one)."""
    from observer.db.backup import restore_backup
    from observer.db.engine import display_url

    url = _url(_settings(config), db)
    try:
        restored = restore_backup(backup, url)
    except BackupError as exc:
        _fail(str(exc), 1)
    typer.echo(f"restored {restored.path.name} ({restored.created}) into {display_url(url)}")


@app.command()
def audit(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Check that every source's seqs are exactly 1..max and no seq was claimed twice.

    Exit 1 if a source is incomplete or an envelope conflicted with a committed one.
    """
    from datetime import UTC, datetime

    from observer.db.engine import make_engine
    from observer.db.queries import audit_sources, conflicts

    engine = make_engine(_url(_settings(config), db))
    try:
        with engine.connect() as conn:
            results = audit_sources(conn)
            clashes = conflicts(conn)
    finally:
        engine.dispose()
    for r in results:
        state = "ok" if r.complete else "INCOMPLETE"
        typer.echo(
            f"{r.source:30} seq {r.min_seq}..{r.max_seq} distinct {r.distinct} "
            f"rows {r.rows} committed {r.committed} {state}"
        )
    for c in clashes:
        received = datetime.fromtimestamp(c.received_ns / 1e9, UTC).isoformat(timespec="seconds")
        typer.echo(
            f"CONFLICT {c.source}/{c.seq} ({c.event_type}) received {received}: "
            "other content than the committed envelope"
        )
    if clashes:
        typer.echo(f"{len(clashes)} conflicting envelopes, kept in bus_conflicts")
    raise typer.Exit(0 if all(r.complete for r in results) and not clashes else 1)


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
    from bus.endpoints import local_endpoints
    from observer.replay import capture_feed
    from observer.runtime import stop_on_signals

    settings = _settings(config)
    endpoints = local_endpoints(run_dir or settings.paths.run)
    stop = stop_on_signals()
    n = capture_feed(
        endpoints.feed,
        out,
        prefixes=tuple(topic or [""]),
        max_events=count,
        seconds=seconds,
        should_stop=stop.is_set,
    )
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
    """Replay a capture into a database (through the writer's code) or onto the live bus."""
    from bus.endpoints import local_endpoints
    from observer.db import migrate
    from observer.replay import replay_as_producer, replay_into_db

    settings = _settings(config)
    try:
        if as_producer:
            endpoints = local_endpoints(run_dir or settings.paths.run)
            result = replay_as_producer(file, endpoints.ingest, allow_torn_tail=allow_torn_tail)
        else:
            url = _url(settings, db)
            migrate.upgrade(url)
            result = replay_into_db(file, url, allow_torn_tail=allow_torn_tail)
    except (BusError, StoreError) as exc:
        _fail(str(exc), 2)
    typer.echo(
        f"{result.frames} frames, {result.events} events, {result.committed} committed, "
        f"{result.duplicates} duplicates, {result.resent} frames resent"
    )


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free one)")] = 0,
    seed: Annotated[int, typer.Option(help="the synthetic market's seed")] = 1,
    clock: Annotated[str, typer.Option(help="system | ISO@SPEEDx | sim:...")] = "system",
    app_keys_file: Annotated[
        Path | None,
        typer.Option(help="owner-only file of accepted KEY:SECRET lines (default: any key)"),
    ] = None,
    calls_per_second: Annotated[int, typer.Option(help="REST calls per app key")] = 20,
    stocks: Annotated[int, typer.Option(min=50, help="domestic stocks (ETFs: 2 per 5)")] = 2500,
) -> None:
    """Serve the KIS simulator (REST, WebSocket, master files) and print its URLs.

    The accepted keys come from --app-keys-file or $OBSERVER_SIM_APP_KEYS (KEY:SECRET pairs
    separated by spaces or commas), never from the command line: every local user reads it.
    """
    import asyncio

    from observer.kis.credentials import read_key_pairs
    from observer.sim.run import serve

    try:
        keys = read_key_pairs(app_keys_file, os.environ.get("OBSERVER_SIM_APP_KEYS"))
    except ConfigError as exc:
        _fail(str(exc), 2)
    setup_logging("WARNING")
    asyncio.run(serve(host, port, seed, clock, keys, calls_per_second, stocks))


@bench_app.command("bus")
def bench_bus(
    events: Annotated[int, typer.Option(help="events in total")] = 200_000,
    producers: Annotated[int, typer.Option(help="producer processes")] = 2,
    db: Annotated[str, typer.Option(help="sqlite | postgres")] = "sqlite",
    rate: Annotated[int, typer.Option(help="events/s in total for the latency run")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Producers -> writer with outbox and acks on, against raw baselines in the same run."""
    from observer.bench.bus import run_bus_bench

    setup_logging("WARNING")
    report = run_bus_bench(events=events, producers=producers, db=db, rate=rate)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))
    raise typer.Exit(0 if report.lost == 0 and report.duplicated == 0 else 1)


@bench_app.command("kis")
def bench_kis(
    frames: Annotated[int, typer.Option(help="H0STCNT0 frames to parse")] = 20_000,
    limit: Annotated[float, typer.Option(help="REST calls/s the client is configured for")] = 19.0,
    server_limit: Annotated[int, typer.Option(help="REST calls/s the simulator allows")] = 20,
    requests: Annotated[int, typer.Option(help="REST calls to make")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Frame parser vs bare str.split; REST pacing vs the limit, against the simulator."""
    from observer.bench.kis import run_kis_bench

    setup_logging("WARNING")
    report = run_kis_bench(frames=frames, limit=limit, server_limit=server_limit, requests=requests)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))
    raise typer.Exit(0 if report.rate_limited == 0 else 1)


@bench_app.command("masterfile")
def bench_masterfile(
    repeats: Annotated[int, typer.Option(min=1, help="best of this many runs")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Parse and diff of all fourteen master files, and tickers("US"), against raw baselines."""
    from observer.bench.masterfile import run_masterfile_bench

    setup_logging("WARNING")
    report = run_masterfile_bench(repeats=repeats)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("supervisor")
def bench_supervisor(
    rounds: Annotated[int, typer.Option(min=1, help="restarts and kills to time")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Restart-to-READY of every configured program, and SIGKILL detection, vs raw baselines."""
    from observer.bench.supervisor import run_supervisor_bench

    setup_logging("WARNING")
    report = run_supervisor_bench(rounds)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


def _add_worker_commands(args: list[str]) -> None:
    """Add the commands workers register (entry points ``observer.commands``).

    Only the one named on the command line is imported (all of them for help), so a worker's
    imports never slow down the start of another process.
    """

    def named(position: int) -> str | None:
        word = args[position] if len(args) > position else "-"
        return None if word.startswith("-") else word

    wanted = named(0)
    own = {info.name for info in app.registered_groups} | {
        info.name or getattr(info.callback, "__name__", "").replace("_", "-")
        for info in app.registered_commands
    }
    if wanted in own - {"bench"}:
        return  # one of ours: reading the entry points alone takes tens of milliseconds
    from importlib.metadata import entry_points

    if wanted not in own:
        for entry in entry_points(group="observer.commands"):
            if wanted in (None, entry.name):
                app.add_typer(entry.load(), name=entry.name)
    if wanted in (None, "bench"):  # `observer bench NAME`: benchmarks of workers
        bench = named(1)
        for entry in entry_points(group="observer.benches"):
            if bench in (None, entry.name):
                bench_app.add_typer(entry.load(), name=entry.name)


def main() -> None:
    """Run the typer app (`observer.entry.main` sends ``observer writer`` elsewhere)."""
    os.umask(0o077)  # every file and folder a process creates is owner-only (so its children)
    args = sys.argv[1:]
    try:
        if args[:1] == ["ctl"]:  # the control client alone: the other commands are not built
            ctl_app(args[1:], prog_name="observer ctl")
        else:
            _add_worker_commands(args)
            app()
    except ObserverError as exc:
        typer.echo(f"observer: {exc}", err=True)
        sys.exit(2)
