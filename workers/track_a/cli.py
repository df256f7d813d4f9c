"""``observer track-a``: the ``track_a`` session worker and its cycle report.

``run`` is what the supervisor starts from the warmup phase (08:00, so that it waits ready
at 09:00) through the shutdown phase (for the 15:30 closing cycle); it exits 0 on SIGTERM,
1 when the bus fails, 2 on bad configuration. ``cycles`` shows a day's cycles from the
database. The database and KIS code load inside the commands, and for ``run`` only once it
has told the supervisor it is READY, so that a restart is quick.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from observer.calendar.clock import clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import timeline_from
from observer.cli.support import Worker, fail, report_reading, settings_or_exit, start_worker
from observer.config.tree import Settings
from observer.runtime import drained
from workers.track_a import SOURCE
from workers.track_a.schedule import current_or_next

__all__ = ["app"]

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Track A: the whole universe every 10 minutes.")

_DRAIN_S = 60.0  # for an earlier run's events to reach the database before resuming


def _fail(message: str, code: int) -> NoReturn:
    fail("observer track-a", message, code)


def _settings(config: Path | None) -> Settings:
    return settings_or_exit("observer track-a", config)


ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run Track A's cycles until SIGTERM (the supervisor's ``track_a`` program)."""
    worker = start_worker("observer track-a", SOURCE, config, kis=True)
    # deferred: its work (HTTP, SQLAlchemy: about 0.5 s) after READY (tests/cli/test_startup.py)
    from workers.track_a.worker import TrackA

    # A SIGTERM during this wait ends the process at once: nothing is in flight yet, and
    # the outbox keeps whatever the writer has not acknowledged.
    resume = _caught_up(worker)
    worker.run(
        lambda stop: TrackA(
            worker.settings, worker.clock, worker.producer, worker.notifier, stop
        ).run(resume)
    )


def _caught_up(worker: Worker) -> bool:
    """Whether the writer has stored what an earlier run sent: the database can be trusted.

    With a cycle in force it waits as long as the cycle lasts: resuming it without the
    earlier run's work in the database would ask (and store) every symbol again, and once
    it is over there is nothing to resume (the next cycle's symbols are asked once), and
    the worker closes the earlier run's cycles once the writer is back (`TrackA._catch_up`).
    With none in force, `_DRAIN_S` of wall time.
    """
    settings, clock = worker.settings, worker.clock
    timeline = timeline_from(settings.phases, settings.calendar)
    config = settings.track_a
    cycle = current_or_next(timeline, now_utc(clock), config.interval_min, config.closing_cycle)
    if cycle is None or now_utc(clock) < cycle.scheduled:
        caught_up = drained(worker.producer, worker.notifier, _DRAIN_S)
    else:
        over = cycle.deadline
        caught_up = drained(worker.producer, worker.notifier, 0, lambda: now_utc(clock) >= over)
    if not caught_up:
        log.warning("the writer has not stored an earlier run's events: nothing is resumed")
    return caught_up


@app.command()
def cycles(
    day: Annotated[
        str | None, typer.Option("--date", help="trading day (default: today, KST)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """A day's cycles as stored: coverage, failures, duration and request rate."""
    # deferred: the database layer (SQLAlchemy and the models, about 0.5 s) for the report
    from sqlalchemy.orm import Session

    from observer.db.queries import cycles_of

    settings = _settings(config)
    today = now_utc(clock_from_env()).astimezone(KST).date()
    try:
        target = date.fromisoformat(day) if day else today
    except ValueError as exc:
        _fail(f"--date: {exc}", 2)
    with (
        report_reading("observer track-a cycles", settings.database) as conn,
        Session(conn) as session,
    ):
        rows = cycles_of(session, target)
    if not rows:
        if not as_json:  # JSON lines: none is no line, as for the other reports
            typer.echo(f"no Track A cycles stored for {target}")
        return
    for cycle in rows:
        seconds = (cycle.finished_ns - cycle.started_ns) / 1e9
        record: dict[str, Any] = {
            "cycle_id": cycle.cycle_id,
            "started": datetime.fromtimestamp(cycle.started_ns / 1e9, KST).strftime("%H:%M:%S"),
            "universe": cycle.universe_size,
            "snapshots": cycle.succeeded + cycle.carried,
            "failed": cycle.failed,
            "unfinished": cycle.unfinished,
            "duration_s": round(seconds, 1),
            "rate_per_s": float(cycle.rate_per_s),
            "limit_per_s": float(cycle.limit_per_s),
            "overran": cycle.overran,
        }
        if as_json:
            typer.echo(json.dumps(record))
        else:
            typer.echo(
                f"{record['cycle_id']}  {record['snapshots']:>5} of {record['universe']:<5} "
                f"failed {record['failed']:<3} unfinished {record['unfinished']:<4} "
                f"{record['duration_s']:>6} s  {record['rate_per_s']:.2f}/s of "
                f"{record['limit_per_s']:.2f}/s" + ("  OVERRAN" if cycle.overran else "")
            )


def main() -> None:
    """``python -m workers.track_a.cli`` (the same as ``observer track-a``)."""
    app()


if __name__ == "__main__":
    main()
