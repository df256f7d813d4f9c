"""``observer gap-recovery``: the ``gap_recovery`` daemon and the day's gap report.

``run`` is what the supervisor keeps running; it exits 0 on SIGTERM, 1 when the bus fails,
2 on bad configuration. ``report`` reads the database: per symbol, ticks, gaps by reason
and state, covered and uncovered seconds, completeness; ``--chart`` also writes an HTML
page with every symbol's gaps on a time axis. The database and KIS code load inside the
commands, and for ``run`` only once it has told the supervisor it is READY, so that a
restart is quick.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from observer.cli_support import fail, settings_or_exit, start_worker
from observer.clock import clock_from_env, now_utc
from observer.phases import KST
from observer.runtime import drained
from workers.gap_recovery import SOURCE

__all__ = ["app"]

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Gaps in the real-time data: recovery and report.")

_DRAIN_S = 60.0  # for an earlier run's events to reach the database before reading it

ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]


@app.command()
def run(config: ConfigOption = None) -> None:
    """Recover gaps until SIGTERM (the supervisor's ``gap_recovery`` program)."""
    worker = start_worker("observer gap-recovery", SOURCE, config, kis=True)
    from workers.gap_recovery.worker import GapRecovery

    # What an earlier instance published must be stored before the ledger of recovered
    # bars is read, or a bar could be published twice.
    if not drained(worker.producer, worker.notifier, _DRAIN_S):
        fail("observer gap-recovery", "the writer has not acknowledged an earlier run's events", 1)
    worker.run(
        lambda stop: GapRecovery(
            worker.settings, worker.clock, worker.producer, worker.notifier, stop
        ).run()
    )


@app.command()
def report(
    day: Annotated[
        str | None, typer.Option("--date", help="trading day (default: today, KST)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="also write this HTML chart of the gaps")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per symbol: ticks, gaps by reason and state, covered and uncovered time, completeness."""
    from observer.db.engine import make_engine
    from workers.gap_recovery.report import chart_html, day_report

    settings = settings_or_exit("observer gap-recovery", config)
    try:
        target = (
            date.fromisoformat(day) if day else now_utc(clock_from_env()).astimezone(KST).date()
        )
    except ValueError as exc:
        fail("observer gap-recovery", f"--date: {exc}", 2)
    engine = make_engine(settings.database.url, read_only=True)
    try:
        with engine.connect() as conn:
            found = day_report(conn, target, settings.gap_recovery.queue_max_s)
    finally:
        engine.dispose()
    if chart is not None:
        chart.write_text(chart_html(found))
    summary = found.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(
        f"{target}: {summary['ticks']:,} ticks, {summary['gaps']} gaps {summary['gaps_by_state']}; "
        f"gaps <= {settings.gap_recovery.queue_max_s:g} s recovered "
        f"{summary['short_success_pct']}%; p99 detection {summary['detection_p99_s']} s, "
        f"detection to recovered {summary['detect_to_recovered_p99_s']} s"
    )
    for row in summary["symbols"]:
        typer.echo(
            f"{row['symbol']:<8} {row['ticks']:>7} ticks  watched {row['watched_s']:>8} s  "
            f"covered {row['covered_s']:>6} s  uncovered {row['uncovered_s']:>6} s  "
            f"{row['completeness_pct']:>7}%  {row['gaps_by_reason']} {row['gaps_by_state']}"
        )
    if chart is not None:
        typer.echo(f"chart: {chart}")


def main() -> None:
    """``python -m workers.gap_recovery.cli`` (the same as ``observer gap-recovery``)."""
    app()


if __name__ == "__main__":
    main()
