"""``observer investor run``: the universe's intraday investor estimates (the ``investor`` job).

Exit codes: 0 done (a day without a session, or paper accounts, ask nothing); 1 more members
failed than ``[investor] max_failed_pct`` (or none answered), or the writer did not
acknowledge; 2 bad configuration or credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from observer.cli.support import fail, job_producer, open_alert_notices, start_job
from workers.investor import SOURCE

__all__ = ["app"]

PROGRAM = "observer investor"

app = typer.Typer(
    no_args_is_help=True,
    help="Intraday investor estimates (foreigners', institutions') of the day's universe.",
)

Config = Annotated[Path | None, typer.Option("--config", help="observer.toml")]


@app.command()
def run(config: Config = None) -> None:
    """Ask every member for today's postings; publish the new ones; alert a missed posting."""
    job = start_job(PROGRAM, config, kis=True)
    # deferred: the job (database and KIS layers) loads after READY
    from observer.runtime import alert_book, journal_for
    from workers.investor.job import CODES, run_postings

    with job_producer(PROGRAM, job.settings, SOURCE, job.clock, job.notifier, 60.0) as producer:
        alerts = alert_book(producer)
        alerts.take_over_when_read(lambda: open_alert_notices(job.settings, SOURCE, CODES))
        done = run_postings(
            job.settings,
            job.clock,
            producer.send,
            journal_for(job.settings, producer),
            lambda done, total: job.notifier.beat(),
            alerts,
        )
    typer.echo(done.summary())
    if done.failed_over:
        fail(PROGRAM, f"{len(done.failed)} of {done.members} members failed", 1)
