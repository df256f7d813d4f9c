"""``observer gap-recovery``: the ``gap_recovery`` daemon and the day's gap report.

``run`` is what the supervisor keeps running; it exits 0 on SIGTERM, 1 when the bus fails,
2 on bad configuration. ``report`` reads the database (per symbol: ticks, gaps, covered
seconds, completeness; ``--chart`` an HTML page); ``verify`` reconciles a day on demand under
a REST share of its own (`workers.gap_recovery.share`). Database and KIS code load inside
the commands, and for ``run`` only after READY, so that a restart is quick.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from observer.calendar.clock import Clock, clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.cli.support import (
    check_credentials,
    fail,
    job_producer,
    report_reading,
    settings_or_exit,
    start_worker,
    storable_day,
)
from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.process.heartbeat import Heartbeat
from observer.process.logs import setup_logging
from observer.runtime import earlier_run_stored
from workers.gap_recovery import SOURCE

if TYPE_CHECKING:
    from bus.producer import Producer
    from workers.gap_recovery.verify import DayResult

__all__ = ["app"]

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, help="Gaps in the real-time data: recovery and report.")

_DRAIN_S = 60.0  # for the on-demand reconciliation's events, before and after it

ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]
DayOption = Annotated[str | None, typer.Option("--date", help="trading day (default: today, KST)")]
VERIFY_SOURCE = "gap_verify"  # the on-demand reconciliation's bus source (the daemon's is its own)
_VERIFY = "observer gap-recovery verify"


@app.command()
def run(config: ConfigOption = None) -> None:
    """Recover gaps until SIGTERM (the supervisor's ``gap_recovery`` program)."""
    worker = start_worker("observer gap-recovery", SOURCE, config, kis=True)
    # deferred: its work (HTTP, WebSocket, SQLAlchemy: about 0.6 s) after READY (test_startup)
    from workers.gap_recovery.worker import GapRecovery

    async def recover(stop: asyncio.Event) -> None:
        # What an earlier instance published must be stored before the ledger of recovered
        # bars is read, or a bar could be published twice.
        if await earlier_run_stored(worker.producer, worker.notifier, stop):
            await GapRecovery(
                worker.settings, worker.clock, worker.producer, worker.notifier, stop
            ).run()

    worker.run(recover)


def _day(program: str, day: str | None, clock: Clock) -> date:
    try:
        chosen = date.fromisoformat(day) if day else now_utc(clock).astimezone(KST).date()
    except ValueError as exc:
        fail(program, f"--date: {exc}", 2)
    return storable_day(program, "--date", chosen)


@app.command()
def verify(
    day: DayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """Reconcile a day's watched minutes with KIS's final minute bars (exit 1 if some failed).

    Every minute a symbol held a Track B slot whole is complete, short, recovered or excess;
    a short minute no recorded gap explains becomes a gap that gap recovery fills. The bars
    are fetched under the gap-recovery share of each account's REST budget; while the daemon
    runs, under ``kis.process_share.manual`` (or what the shares leave; none: exit 2).
    """
    program = _VERIFY
    settings = settings_or_exit(program, config)
    setup_logging()
    clock = clock_from_env()
    target = _day(program, day, clock)
    check_credentials(program, settings.kis)
    notifier = Heartbeat.from_env()
    notifier.ready()
    with job_producer(program, settings, VERIFY_SOURCE, clock, notifier, _DRAIN_S) as producer:
        result = asyncio.run(_verify(settings, clock, producer, target))
    # deferred: like `_verify`'s: the check's modules (about 0.5 s) after READY
    from workers.gap_recovery.verify import completeness_text

    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(summary)))
    else:
        typer.echo(
            f"{target}: {summary.watched_minutes} watched minutes of {summary.symbols} "
            f"symbols: {summary.complete} complete, {summary.recovered} recovered, "
            f"{summary.short} short ({summary.missing_volume:,} shares), "
            f"{summary.excess} excess; {completeness_text(summary)}; {summary.misses} short "
            f"without a gap, now gaps to recover; {summary.calls} REST calls"
        )
    if result.failed:
        fail(program, f"no bars for {', '.join(sorted(result.failed))}", 1)


async def _verify(settings: Settings, clock: Clock, producer: Producer, day: date) -> DayResult:
    # deferred: the check's modules (HTTP, SQLAlchemy: about 0.5 s) after READY
    from observer.db.readers import reader_engine
    from observer.kis.session import open_account
    from workers.gap_recovery.share import verify_limits
    from workers.gap_recovery.verify import Verifier, lanes_for

    try:  # the gap-recovery share of each account; beside the daemon, one of verify's own
        limits = verify_limits(settings)
    except ConfigError as exc:
        fail(_VERIFY, str(exc), 2)
    accounts = [
        open_account(settings.kis, a.alias, clock, limits, alerts=producer.send)
        for a in settings.kis.accounts
    ]
    engine = reader_engine(settings.database, "gap_recovery")
    try:
        lanes = lanes_for(settings, clock, accounts, limits)
        return await Verifier(settings, clock, producer.send, engine, lanes).verify_day(day)
    finally:
        for account in accounts:
            await account.aclose()
        engine.dispose()


@app.command()
def report(
    day: DayOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    chart: Annotated[
        Path | None, typer.Option("--chart", help="also write this HTML chart of the gaps")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Per symbol: ticks, gaps, covered and uncovered time; completeness by gaps and by bars."""
    # deferred: the database layer (SQLAlchemy, about 0.35 s) for the report only
    from workers.gap_recovery.report import chart_html, day_report

    settings = settings_or_exit("observer gap-recovery", config)
    target = _day("observer gap-recovery", day, clock_from_env())
    with report_reading("observer gap-recovery report", settings.database) as conn:
        found = day_report(conn, target, settings.gap_recovery.queue_max_s)
    if chart is not None:
        chart.write_text(chart_html(found))
    summary = found.summary()
    if as_json:
        typer.echo(json.dumps(msgspec.to_builtins(summary)))
        return
    typer.echo(
        f"{target}: {summary.ticks:,} ticks, {summary.gaps} gaps {summary.gaps_by_state}; "
        f"gaps <= {settings.gap_recovery.queue_max_s:g} s recovered "
        f"{summary.short_success_pct}%; p99 detection {summary.detection_p99_s} s, "
        f"detection to recovered {summary.detect_to_recovered_p99_s} s"
    )
    figures = summary.reconciliation
    typer.echo(
        "completeness: "
        + (
            f"{summary.completeness_pct}% by the gaps detected; "
            if summary.completeness_pct is not None
            else "none, nothing was watched (no symbol held a slot); "
        )
        + (
            f"{figures.completeness_pct}% of {figures.watched_minutes} watched minutes by "
            f"reconciliation ({figures.complete} complete, {figures.recovered} recovered, "
            f"{figures.short} short, {figures.excess} excess; {figures.misses} found "
            f"by it alone; {figures.calls} REST calls)"
            if figures is not None
            else "not reconciled yet (observer gap-recovery verify)"
        )
    )
    chain = summary.chain
    if chain.spans:
        typer.echo(
            f"volume proven by the chain: {chain.proven_pct}% of {chain.chain_volume:,} shares "
            f"({chain.proven} of {chain.spans} watched spans: every trade stored, none twice)"
        )
    for row in summary.symbols:
        typer.echo(
            f"{row.symbol:<8} {row.ticks:>7} ticks  watched {row.watched_s:>8} s  "
            f"covered {row.covered_s:>6} s  uncovered {row.uncovered_s:>6} s  "
            f"{_share(row.completeness_pct):>9}  {row.gaps_by_reason} {row.gaps_by_state}"
            + (
                f"  reconciled {row.reconciliation_pct}% of {row.reconciled_minutes} min"
                if row.reconciled_minutes
                else ""
            )
        )
    if chart is not None:
        typer.echo(f"chart: {chart}")


def _share(pct: float | None) -> str:
    """A symbol's completeness as printed: none when it was not watched (held no slot)."""
    return "unwatched" if pct is None else f"{pct}%"


def main() -> None:
    """``python -m workers.gap_recovery.cli`` (the same as ``observer gap-recovery``)."""
    app()


if __name__ == "__main__":
    main()
