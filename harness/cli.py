"""The harness's commands: ``observer demo``, ``observer sim`` and ``observer bench NAME``.

They reach the ``observer`` command through the entry points ``observer.commands`` (see
pyproject.toml): `demo` and `sim` are single commands, `bench` a group. Each command imports
what it needs when it runs, and `observer bench NAME` imports a worker's bench only when it
is named (all of them for help).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from observer.cli.support import fail
from observer.errors import ConfigError, WaitFailed
from observer.process.logs import setup_logging

__all__ = ["bench_app", "demo", "sim"]

# `observer bench NAME` for the benches of workers: NAME -> the module whose `app` it runs.
_WORKER_BENCHES = {
    "track-a": "harness.bench.track_a",
    "track-b": "harness.bench.track_b",
    "etf": "harness.bench.etf",
    "etf-series": "harness.bench.etf_series",
    "enrich": "harness.bench.enrich",
}


class _Benches(TyperGroup):
    """The ``bench`` group: a worker's bench is imported when it is looked up by name."""

    # ctx is click's Context, which typer vendors in its newer releases: not named here.
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_WORKER_BENCHES]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _WORKER_BENCHES and cmd_name not in self.commands:
            bench = typer.main.get_group(importlib.import_module(_WORKER_BENCHES[cmd_name]).app)
            bench.name = cmd_name
            self.add_command(bench, cmd_name)
        return super().get_command(ctx, cmd_name)


bench_app = typer.Typer(
    cls=_Benches, no_args_is_help=True, help="Benchmarks that print ratios to a baseline."
)


def _fail(message: str, code: int) -> NoReturn:
    fail("observer", message, code)


def demo(
    data_dir: Annotated[Path, typer.Option(help="the demo's own folder (emptied first)")] = Path(
        "data"
    ),
    date: Annotated[str | None, typer.Option(help="trading day (default: the latest)")] = None,
    start: Annotated[str, typer.Option(help="simulated start, KST")] = "04:55",
    until: Annotated[str, typer.Option(help="simulated end, KST")] = "20:30",
    speed: Annotated[
        float | None, typer.Option(help="clock speed in the session (default: day in 6.5 min)")
    ] = None,
    idle_speed: Annotated[
        float | None,
        typer.Option(help="clock speed outside 09:00-15:40 (default: 2x speed before, 2.5x after)"),
    ] = None,
    accounts: Annotated[int, typer.Option(min=1, max=8, help="KIS accounts")] = 3,
    stocks: Annotated[
        int, typer.Option(min=200, help="the simulated market's stocks (a smaller day is quicker)")
    ] = 2500,
    faults: Annotated[str, typer.Option(help="none | light | heavy")] = "light",
    as_json: Annotated[bool, typer.Option("--json", help="last line is a JSON summary")] = False,
    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            help="an apprise URL (slack://, tgram://, ntfy://, mailto://, json://, ...) that "
            "gets the day's alerts; repeatable",
        ),
    ] = None,
) -> None:
    """Run the simulator and every worker on a simulated trading day, then summarise it."""
    import signal
    from datetime import date as date_type

    from harness.demo import DemoError, DemoOptions, run_demo
    from harness.demo_view import DemoView

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
            notify=tuple(notify or ()),
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


def sim(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free one)")] = 0,
    seed: Annotated[int, typer.Option(help="the synthetic market's seed")] = 1,
    clock: Annotated[str, typer.Option(help="system | ISO@SPEEDx | sim:...")] = "system",
    app_keys_file: Annotated[
        Path | None,
        typer.Option(help="owner-only file of accepted KEY:SECRET lines (default: any key)"),
    ] = None,
    calls_per_second: Annotated[
        int, typer.Option(help="REST calls a second per real app key (KIS: 18)")
    ] = 18,
    stocks: Annotated[int, typer.Option(min=50, help="domestic stocks (ETFs: 2 per 5)")] = 2500,
    fallback_per_second: Annotated[
        float,
        typer.Option(min=0.2, help="the fallback sector source's calls/s per client (5 s window)"),
    ] = 1.0,
    realtime_layout: Annotated[
        str, typer.Option(help="real-time record layout: 2026-09 (47/63 fields) | 2026-05 (46/59)")
    ] = "2026-09",
    realtime_extra_fields: Annotated[
        int, typer.Option(min=0, max=100, help="unknown fields appended to every real-time record")
    ] = 0,
) -> None:
    """Serve the KIS simulator (REST, WebSocket, master files) and print its URLs.

    The accepted keys come from --app-keys-file or $OBSERVER_SIM_APP_KEYS (KEY:SECRET pairs
    separated by spaces or commas), never from the command line: every local user reads it.
    """
    import asyncio

    from harness.sim.config import REALTIME_LAYOUTS
    from harness.sim.run import serve
    from observer.kis.credentials import read_key_pairs

    try:
        keys = read_key_pairs(app_keys_file, os.environ.get("OBSERVER_SIM_APP_KEYS"))
    except ConfigError as exc:
        _fail(str(exc), 2)
    if realtime_layout not in REALTIME_LAYOUTS:
        _fail(f"--realtime-layout: one of {', '.join(REALTIME_LAYOUTS)}", 2)
    setup_logging("WARNING")
    asyncio.run(
        serve(
            host,
            port,
            seed,
            clock,
            keys,
            calls_per_second,
            stocks,
            fallback_per_second,
            realtime_layout=realtime_layout,
            realtime_extra_fields=realtime_extra_fields,
        )
    )


@bench_app.command("bus")
def bench_bus(
    events: Annotated[int, typer.Option(help="events in total")] = 200_000,
    producers: Annotated[int, typer.Option(help="producer processes")] = 2,
    db: Annotated[str, typer.Option(help="sqlite | postgres")] = "sqlite",
    rate: Annotated[int, typer.Option(help="events/s in total for the latency run")] = 1000,
    latency_seconds: Annotated[
        float, typer.Option(min=0.1, help="how long the latency run sends at --rate")
    ] = 5.0,
    endpoint: Annotated[
        str, typer.Option(help="ipc | tcp (tcp: the runs again over tcp+CURVE, beside ipc)")
    ] = "ipc",
    fsync: Annotated[
        bool, typer.Option(help="[bus] fsync for the writer, the outboxes and the raw store")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Producers -> writer with outbox and acks on, against raw baselines in the same run."""
    from harness.bench.bus import run_bus_bench

    setup_logging("WARNING")
    report = run_bus_bench(
        events=events,
        producers=producers,
        db=db,
        rate=rate,
        endpoint=endpoint,
        latency_s=latency_seconds,
        fsync=fsync,
    )
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))
    raise typer.Exit(0 if report.lost == 0 and report.duplicated == 0 else 1)


@bench_app.command("store")
def bench_store(
    preload: Annotated[int, typer.Option(help="ticks stored before the runs")] = 10_000_000,
    events: Annotated[int, typer.Option(help="events a run commits")] = 200_000,
    per_day: Annotated[int, typer.Option(help="preloaded ticks a trading day")] = 500_000,
    rounds: Annotated[int, typer.Option(help="runs on each database, in turns")] = 2,
    backup: Annotated[bool, typer.Option(help="back up the preloaded database")] = True,
    plain: Annotated[bool, typer.Option(help="preload one unpartitioned table instead")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """PostgreSQL: the writer's commit path with PRELOAD ticks stored against empty tables."""
    from harness.bench.store import run_store_bench

    setup_logging("WARNING")
    report = run_store_bench(preload, events, per_day, rounds, backup, plain)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("data")
def bench_data(
    ticks: Annotated[int, typer.Option(min=1000, help="ticks of the day")] = 800_000,
    symbols: Annotated[int, typer.Option(min=2, help="symbols they are spread over")] = 200,
    busiest: Annotated[int, typer.Option(min=1, help="ticks of the busiest symbol")] = 130_000,
    rounds: Annotated[int, typer.Option(min=1, help="best of this many reads")] = 5,
    db: Annotated[str, typer.Option(help="sqlite | postgres")] = "sqlite",
    books: Annotated[
        int, typer.Option(min=0, help="order books for the best-spread query (0: none)")
    ] = 300_000,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """observer.data's reads of a day's ticks vs floors; a day of books' best spread."""
    from harness.bench.data import run_data_bench

    if db not in ("sqlite", "postgres"):
        _fail(f"--db is sqlite or postgres, not {db!r}", 2)
    if busiest >= ticks:
        _fail("--busiest must be below --ticks", 2)
    setup_logging("WARNING")
    report = run_data_bench(ticks, symbols, busiest, rounds, db, books)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("month")
def bench_month(
    days: Annotated[int, typer.Option(min=1, help="trading days stored")] = 20,
    ticks: Annotated[int, typer.Option(min=1000, help="ticks a day")] = 800_000,
    symbols: Annotated[int, typer.Option(min=2, help="symbols they are spread over")] = 200,
    busiest: Annotated[int, typer.Option(min=1, help="ticks of the busiest symbol")] = 130_000,
    snapshots: Annotated[int, typer.Option(min=0, help="Track A's snapshots a day")] = 82_000,
    universe: Annotated[int, typer.Option(min=1, help="names a Track A cycle holds")] = 1_050,
    keep_days: Annotated[
        int, typer.Option(min=1, help="days the trades stay in the database (shipped: 30)")
    ] = 7,
    rounds: Annotated[int, typer.Option(min=1, help="best of this many reads")] = 3,
    db: Annotated[str, typer.Option(help="sqlite | postgres")] = "sqlite",
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """A month of days stored, archived and pruned nightly: bytes and read times by day."""
    from harness.bench.month import HEADER, run_month_bench

    if db not in ("sqlite", "postgres"):
        _fail(f"--db is sqlite or postgres, not {db!r}", 2)
    if busiest >= ticks:
        _fail("--busiest must be below --ticks", 2)
    setup_logging("WARNING")
    typer.echo(HEADER, err=True)  # each day as it is measured, then the report
    report = run_month_bench(
        *(days, ticks, symbols, busiest, snapshots, universe, keep_days, rounds, db),
        progress=lambda day: typer.echo(day.line(), err=True),
    )
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("journal")
def bench_journal(
    records: Annotated[int, typer.Option(min=1000, help="frames in the file read")] = 200_000,
    rounds: Annotated[int, typer.Option(min=1, help="best of this many reads")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """The raw journal's reader vs ``zstd -d`` of the same file; its linearity."""
    from harness.bench.journal import run_journal_bench

    report = run_journal_bench(records, rounds)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("kis")
def bench_kis(
    frames: Annotated[int, typer.Option(help="H0STCNT0 frames to parse")] = 20_000,
    limit: Annotated[float, typer.Option(help="REST calls/s the client is configured for")] = 19.0,
    server_limit: Annotated[int, typer.Option(help="REST calls/s the simulator allows")] = 20,
    requests: Annotated[int, typer.Option(help="REST calls to make")] = 200,
    client_calls: Annotated[
        int, typer.Option(min=1, help="calls per round of the client CPU measurement")
    ] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Frame parser vs bare str.split; REST pacing vs the limit; client CPU vs bare aiohttp."""
    from harness.bench.kis import run_kis_bench

    setup_logging("WARNING")
    report = run_kis_bench(
        frames=frames,
        limit=limit,
        server_limit=server_limit,
        requests=requests,
        client_calls=client_calls,
    )
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))
    raise typer.Exit(0 if report.rate_limited == 0 else 1)


@bench_app.command("master-file")
def bench_masterfile(
    repeats: Annotated[int, typer.Option(min=1, help="best of this many runs")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Parse and diff of all fourteen master files, and tickers("US"), against raw baselines."""
    from harness.bench.masterfile import run_masterfile_bench

    setup_logging("WARNING")
    report = run_masterfile_bench(repeats=repeats)
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))


@bench_app.command("supervisor")
def bench_supervisor(
    rounds: Annotated[int, typer.Option(min=1, help="restarts and kills to time")] = 5,
    settle: Annotated[
        float, typer.Option(min=0, help="seconds every program is up before the next restart")
    ] = 3.0,
    program: Annotated[
        list[str] | None,
        typer.Option(help="time only the writer and this program (repeatable); all run anyway"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Restart-to-READY of every configured program, and SIGKILL detection, vs raw baselines."""
    from harness.bench.supervisor import NotTimeable, run_supervisor_bench

    setup_logging("WARNING")
    try:
        report = run_supervisor_bench(rounds, settle, tuple(program or ()))
    except NotTimeable as exc:
        raise typer.BadParameter(str(exc), param_hint="--program") from exc
    for line in report.lines():
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(report.summary()))
