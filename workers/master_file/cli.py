"""``observer master-file ...``: the job the supervisor schedules, and the operator's tools.

Exit codes: 0 done (a file that failed is reported as an alert and in ``status``; with
``--strict`` it makes the exit 1), 1 refused or the writer did not acknowledge, 2 bad
arguments or configuration, 3 another master-file run holds the folder. The download and
database code loads once the job holds the folder and has told the supervisor it is READY.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import msgspec
import typer

from bus.errors import BusError
from observer.calendar.clock import clock_from_env
from observer.calendar.phases import KST
from observer.cli.support import fail, job_producer, settings_or_exit
from observer.config.tree import Settings
from observer.errors import MasterFileError, ObserverError
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging
from observer.reference.instruments import MASTER_FILES, master_file, resolve
from workers.master_file import SOURCE
from workers.master_file.files import LocalFiles, MasterFilesLocked

if TYPE_CHECKING:
    from workers.master_file.outcome import FileOutcome
    from workers.master_file.update import Updater

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="KIS symbol master files: check, download, review, restore and verify.",
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="observer.toml to load")]
JsonOpt = Annotated[bool, typer.Option("--json", help="last line is JSON")]


PROGRAM = "observer master-file"


def _fail(message: str, code: int) -> NoReturn:
    fail(PROGRAM, message, code)


def _settings(config: Path | None) -> Settings:
    return settings_or_exit(PROGRAM, config)


@contextmanager
def _updater(settings: Settings, *, publish: bool) -> Iterator[Updater]:
    """An updater; to publish, also the folder lock and a producer with nothing unacknowledged.

    Earlier events must be in the database first: diffs are taken against it. Reading
    (status, history, verify, dry runs) takes no lock: files are replaced atomically. READY
    goes out once the folder is held, before the download and database code loads.
    """
    clock = clock_from_env()
    notifier = Heartbeat.from_env()
    folder = LocalFiles(Path(settings.paths.data_dir), settings.master_file.keep_backups)
    try:
        with folder.locked() if publish else contextlib.nullcontext():
            notifier.ready()
            # deferred: the job (database and KIS layers, 0.1-0.5 s) loads after READY
            from workers.master_file.update import Updater

            updater = Updater(settings, clock, None, notifier)
            try:
                if not publish:
                    yield updater
                    return
                timeout = settings.master_file.ack_timeout_s
                with job_producer(PROGRAM, settings, SOURCE, clock, notifier, timeout) as producer:
                    updater.producer = producer
                    updater.files.on_unreadable = producer.send  # a state file set aside
                    yield updater
            finally:
                updater.close()
    except MasterFilesLocked as exc:
        _fail(str(exc), 3)
    except (MasterFileError, BusError) as exc:
        _fail(str(exc), 1)


def _print(outcome: FileOutcome, *, details: bool) -> None:
    counts = f"+{outcome.added} ~{outcome.modified} -{outcome.removed}"
    quality = f" {outcome.complete_pct}% complete" if outcome.complete_pct is not None else ""
    line = f"{outcome.market:7} {outcome.action:9} {outcome.records:>6} records {counts:>14}"
    typer.echo(f"{line}{quality}  {outcome.error or outcome.reason}")
    if outcome.review_id:
        typer.echo(f"        review {outcome.review_id}")
    if details:
        for change in outcome.changes:
            typer.echo(f"        {change}")


@app.command()
def update(
    exchange: Annotated[
        list[str] | None,
        typer.Option("--exchange", help="market (NAS), exchange (NASD) or region; repeatable"),
    ] = None,
    all_files: Annotated[bool, typer.Option("--all", help="all fourteen files")] = False,
    force: Annotated[bool, typer.Option(help="download even if unchanged, compare contents")] = (
        False
    ),
    dry_run: Annotated[bool, typer.Option(help="show the diff; change nothing")] = False,
    allow_rollback: Annotated[
        bool,
        typer.Option(
            "--allow-rollback",
            help="apply a file older than the one in use (refused as stale otherwise)",
        ),
    ] = False,
    strict: Annotated[bool, typer.Option(help="exit 1 if any file failed")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check the master files and apply what changed (or hold it for review)."""
    if all_files == bool(exchange):
        _fail("name --exchange CODE (repeatable) or --all", 2)
    try:
        files = list(MASTER_FILES) if all_files else resolve(exchange or [])
    except MasterFileError as exc:
        _fail(str(exc), 2)
    settings = _settings(config)
    setup_logging()
    with _updater(settings, publish=not dry_run) as updater:
        outcomes = asyncio.run(
            updater.update(files, force=force, dry_run=dry_run, allow_rollback=allow_rollback)
        )
    if dry_run:
        typer.echo("DRY RUN: nothing was downloaded into use or published")
    for outcome in outcomes:
        _print(outcome, details=dry_run)
    if as_json:
        typer.echo(json.dumps({"files": [msgspec.to_builtins(o) for o in outcomes]}))
    if strict and any(o.error for o in outcomes):
        raise typer.Exit(1)


def _kst(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, KST).strftime("%Y-%m-%d %H:%M") if ns else "-"


@app.command()
def status(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Each file: size, records, when installed, failures, pending review, active listings."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.queries import active_listings

    settings = _settings(config)
    with _updater(settings, publish=False) as updater:
        with updater.engine.connect() as conn:
            active = active_listings(conn)
        rows: list[dict[str, Any]] = []
        for file in MASTER_FILES:
            state = updater.files.state(file)
            current = state.current
            rows.append(
                {
                    "market": file.market,
                    "region": file.region,
                    "file": file.name,
                    "size": current.size if current else 0,
                    "records": current.records if current else 0,
                    "installed": _kst(current.installed_ns) if current else "-",
                    "checked": _kst(state.checked_ns),
                    "active": int(active.get(file.market, 0)),
                    "failures": state.failures,
                    "review": state.pending_review,
                    "backups": len(updater.files.backups(file)),
                }
            )
    # deferred: rich (about 0.09 s) for the commands that print a table
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "market",
        "region",
        "size",
        "records",
        "active",
        "installed",
        "checked",
        "failures",
        "review",
        "backups",
    )
    for r in rows:
        table.add_row(
            r["market"],
            r["region"],
            f"{r['size']:,}",
            f"{r['records']:,}",
            f"{r['active']:,}",
            r["installed"],
            r["checked"],
            str(r["failures"]),
            r["review"] or "-",
            str(r["backups"]),
        )
    Console(width=120).print(table)
    if as_json:
        typer.echo(json.dumps({"files": rows}))


@app.command()
def history(
    exchange: Annotated[str | None, typer.Option("--exchange", help="one market")] = None,
    days: Annotated[int, typer.Option(min=1, help="how far back")] = 30,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Past checks: what each decided, why, and what changed."""
    # deferred: the database layer (SQLAlchemy, about 0.2 s) loads after READY
    from observer.db.queries import master_file_checks

    settings = _settings(config)
    markets = [f.market for f in resolve([exchange])] if exchange else None
    with _updater(settings, publish=False) as updater:
        since = updater.clock.now_ns() - days * 86_400 * 10**9
        with updater.engine.connect() as conn:
            rows = [
                {
                    "at": _kst(r.produced_ns),
                    "market": r.market,
                    "action": r.action,
                    "reason": r.error or r.reason,
                    "remote_size": r.remote_size,
                    "previous_size": r.previous_size,
                    "records": r.records,
                    "added": r.added,
                    "modified": r.modified,
                    "removed": r.removed,
                    "review": r.review_id,
                }
                for r in master_file_checks(conn, since, markets)
            ]
    for r in rows:
        counts = f"+{r['added']} ~{r['modified']} -{r['removed']}"
        typer.echo(
            f"{r['at']}  {r['market']:7} {r['action']:8} {r['remote_size']:>9,} B "
            f"{counts:>12}  {r['reason']}"
        )
    if as_json:
        typer.echo(json.dumps({"checks": rows}))


@app.command()
def restore(
    exchange: Annotated[str, typer.Option("--exchange", help="one market, e.g. NAS")],
    backup: Annotated[Path | None, typer.Option(help="this backup (default: newest)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Put a backup back in use and bring the database in line with it."""
    settings = _settings(config)
    try:
        file = master_file(exchange)
    except MasterFileError as exc:
        _fail(str(exc), 2)
    with _updater(settings, publish=True) as updater:
        outcome = updater.restore(file, backup)
    _print(outcome, details=True)


@app.command()
def verify(
    region: Annotated[str, typer.Option("--region", help="KR, US, CN, HK, JP or VN")],
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Check the database against the files in use; exit 1 on any difference."""
    settings = _settings(config)
    with _updater(settings, publish=False) as updater:
        problems, quality = updater.verify(region.upper())
    for market, q in quality.items():
        typer.echo(f"{market}:")
        for line in q.lines():
            typer.echo(f"  {line}")
    for problem in problems:
        typer.echo(f"PROBLEM {problem}")
    typer.echo("consistent" if not problems else f"{len(problems)} problem(s)")
    if as_json:
        report = {
            m: {"records": q.records, "complete_pct": str(q.complete_pct)}
            for m, q in quality.items()
        }
        typer.echo(json.dumps({"problems": problems, "quality": report}))
    if problems:
        raise typer.Exit(1)


@app.command()
def review(
    review_id: Annotated[str | None, typer.Argument(help="a review id (none: list them)")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="apply the held change")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="drop the held change")] = False,
    config: ConfigOpt = None,
) -> None:
    """List held changes, show one, or approve or reject it."""
    if approve and reject:
        _fail("--approve or --reject, not both", 2)
    if (approve or reject) and not review_id:
        _fail("name the review to decide", 2)
    settings = _settings(config)
    with _updater(settings, publish=approve or reject) as updater:
        if approve or reject:
            assert review_id is not None
            outcome = updater.approve(review_id) if approve else updater.reject(review_id)
            _print(outcome, details=approve)
            return
        held = [r for r in updater.files.reviews() if review_id in (None, r.review_id)]
    if review_id and not held:
        _fail(f"no pending review {review_id!r}", 1)
    if not held:
        typer.echo("no change is held for review")
    for r in held:
        typer.echo(
            f"{r.review_id}  {r.market} held {_kst(r.held_ns)}: +{r.added} ~{r.modified} "
            f"-{r.removed}, {r.records} records; {'; '.join(r.reasons)}"
        )
        if review_id:
            for title, sample in (
                ("new", r.sample_new),
                ("changed", r.sample_changed),
                ("removed", r.sample_removed),
            ):
                for line in sample:
                    typer.echo(f"    {title:8} {line}")


def main() -> None:
    """``python -m workers.master_file.cli`` (the same as ``observer master-file``)."""
    try:
        app()
    except ObserverError as exc:
        _fail(str(exc), 1)


if __name__ == "__main__":
    main()
