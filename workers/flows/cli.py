"""``observer flows run``: a day's final investor flows and program trading (the ``flows`` job).

Exit codes: 0 done (a day without a session, paper accounts, or no venue's day final yet ask
nothing); 1 more questions failed or found no row of the day than ``[flows] max_failed_pct``
(or none answered), or the writer did not acknowledge; 2 bad configuration or credentials.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from observer.cli.support import fail, job_producer, open_alert_notices, start_job
from workers.flows import SOURCE

__all__ = ["app"]

PROGRAM = "observer flows"

app = typer.Typer(
    no_args_is_help=True,
    help="A day's final investor flows and program trading, per stock and venue.",
)

Config = Annotated[Path | None, typer.Option("--config", help="observer.toml")]
Day = Annotated[
    str | None, typer.Option("--date", help="YYYY-MM-DD (default: today); a past day: all venues")
]


@app.command()
def run(config: Config = None, day: Day = None) -> None:
    """Ask the day's universe for what is final and not stored; alert what is missing."""
    job = start_job(PROGRAM, config, kis=True)
    try:
        asked = date.fromisoformat(day) if day else None
    except ValueError:
        fail(PROGRAM, f"--date {day!r}: not a date (YYYY-MM-DD)", 2)
    # deferred: the job (database and KIS layers) loads after READY
    from observer.runtime import alert_book, journal_for
    from workers.flows.job import CODES, run_flows

    with job_producer(PROGRAM, job.settings, SOURCE, job.clock, job.notifier, 60.0) as producer:
        alerts = alert_book(producer)
        alerts.take_over_when_read(lambda: open_alert_notices(job.settings, SOURCE, CODES))
        done = run_flows(
            job.settings,
            job.clock,
            producer.send,
            asked,
            journal_for(job.settings, producer),
            lambda done, total: job.notifier.beat(),
            alerts,
        )
    typer.echo(done.summary())
    if done.failed_over:
        fail(PROGRAM, f"{done.missing} of {done.asked} flows missing", 1)
