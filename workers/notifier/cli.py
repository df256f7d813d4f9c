"""``observer notifier run`` (the ``notifier`` daemon) and ``observer alerts [ack ID]``.

``run`` exits 0 on SIGTERM, 1 when the bus fails, 2 on bad configuration before READY.
``alerts`` lists the alerts since a day with their state and the channels sent each
(``--open`` without ``--since``: every open alert, whatever its age); ``alerts ack ID...``
publishes an acknowledgement (source ``operator``), ending an open critical alert's
reminders; ``alerts prometheus-rules`` prints the threshold rules' Prometheus twins.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from bus.errors import BusError
from bus.events import AlertAcked
from observer.alerts.prometheus_rules import prometheus_rules
from observer.alerts.settings import enrichment_rules
from observer.alerts.states import alert_states, parse_alert_id
from observer.calendar.clock import clock_from_env, now_utc
from observer.calendar.phases import KST
from observer.cli.support import (
    fail,
    hand_options_to_subcommand,
    report_reading,
    settings_or_exit,
    start_worker,
    storable_day,
)
from observer.errors import ConfigError
from observer.process.heartbeat import Heartbeat
from observer.runtime import drained, earlier_run_stored, producer_for
from workers.notifier import ACK_SOURCE, SOURCE

__all__ = ["alerts_app", "app"]

PROGRAM = "observer notifier"
_ACK_WAIT_S = 30.0

ConfigOption = Annotated[Path | None, typer.Option("--config", help="observer.toml")]

app = typer.Typer(no_args_is_help=True, help="The alert notifier daemon.")
alerts_app = typer.Typer(
    invoke_without_command=True,
    help="Alerts: list them (open, acknowledged, resolved) and acknowledge them.",
)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Deliver alerts until SIGTERM (the supervisor's ``notifier`` program)."""
    # deferred: apprise (about 0.1 s) for the daemon, not for `observer alerts`
    from workers.notifier.channels import channel_urls, targets_from

    settings = settings_or_exit(PROGRAM, config)
    try:  # before READY: a refused channel is a failed start, not a silent day
        targets = targets_from(settings.notifier, channel_urls(settings.notifier))
    except ConfigError as exc:
        fail(PROGRAM, str(exc), 2)
    worker = start_worker(PROGRAM, SOURCE, config)
    # deferred: its work (SQLAlchemy, about 0.5 s) after READY (tests/cli/test_startup.py)
    from workers.notifier.worker import AlertNotifier

    async def deliver(stop: asyncio.Event) -> None:
        # What an earlier instance recorded as sent must be stored before the database is
        # searched for undelivered alerts, or they would be sent twice.
        if await earlier_run_stored(worker.producer, worker.notifier, stop):
            await AlertNotifier(
                worker.settings, worker.clock, worker.producer, worker.notifier, stop, targets
            ).run()

    worker.run(deliver)


def _since(text: str | None) -> datetime:
    """The instant ``--since`` names (a KST day or an ISO time); default: 7 days ago."""
    if text is None:
        return now_utc(clock_from_env()) - timedelta(days=7)
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), tzinfo=KST)
        else:
            moment = datetime.fromisoformat(text)
    except ValueError as exc:
        fail("observer alerts", f"--since: {exc}", 2)
    storable_day("observer alerts", "--since", moment.date())
    return moment if moment.tzinfo else moment.replace(tzinfo=KST)


def _print_catalogue(as_json: bool) -> None:
    """The alert catalogue: a Markdown table (docs/operations.md's), or a JSON object a code."""
    # deferred: 136 entries of text, for this option only
    from observer.alerts.catalogue import CATALOGUE, markdown

    if not as_json:
        typer.echo(markdown(), nl=False)
        return
    for code in sorted(CATALOGUE):
        kind = CATALOGUE[code]
        fields = ("code", "severities", "raised_by", "subject", "meaning", "action", "resolved")
        typer.echo(json.dumps({name: getattr(kind, name) for name in fields}, ensure_ascii=False))


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="a KST day (YYYY-MM-DD) or ISO time; default 7 days, with --open all",
        ),
    ] = None,
    only_open: Annotated[bool, typer.Option("--open", help="only open alerts")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    catalogue: Annotated[
        bool,
        typer.Option(
            "--catalogue",
            help="every alert code: its severity, subject, meaning and what to do (Markdown)",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """List alerts since a day, newest last, with their state and delivery."""
    if ctx.invoked_subcommand is not None:
        hand_options_to_subcommand(ctx, "observer alerts")
        return
    if catalogue:
        _print_catalogue(as_json)
        return
    # deferred: the database layer (SQLAlchemy and the models, about 0.5 s) for this command
    from observer.db.queries import alert_records, open_alert_records

    settings = settings_or_exit("observer alerts", config)
    since_ns = int(_since(since).timestamp() * 1e9)
    with report_reading("observer alerts", settings.database) as conn:
        if only_open and since is None:  # an open alert is open whatever its age
            states = alert_states(open_alert_records(conn))
        else:
            states = alert_states(alert_records(conn, since_ns))
    shown = [s for s in states if s.state == "open"] if only_open else states
    for s in shown:
        n = s.notice
        at = datetime.fromtimestamp(n.produced_ns / 1e9, KST)
        if as_json:
            line = {
                "id": n.id,
                "at": at.isoformat(timespec="seconds"),
                "severity": n.severity,
                "code": n.code,
                "subject": n.subject,
                "message": n.message,
                "state": s.state,
                "acked_by": s.acked_by,
                "delivered": list(s.delivered),
            }
            typer.echo(json.dumps(line, ensure_ascii=False))
            continue
        about = f"{n.code}({n.subject})" if n.subject else n.code
        sent = f"  -> {', '.join(s.delivered)}" if s.delivered else ""
        sent += f"  (acked by {s.acked_by})" if s.acked_by else ""
        typer.echo(
            f"{n.id:<16} {at:%m-%d %H:%M:%S} {n.severity:<8} {s.state:<8} {about}: "
            f"{n.message}{sent}"
        )
    if not shown and not as_json:
        typer.echo("no open alerts" if only_open else "no alerts")


@alerts_app.command()
def ack(
    ids: Annotated[list[str], typer.Argument(help="alert ids (source:seq) as listed")],
    note: Annotated[str, typer.Option(help="why, for the record")] = "",
    config: ConfigOption = None,
) -> None:
    """Acknowledge alerts: they are no longer open, and no reminder follows."""
    # deferred: the database layer (SQLAlchemy and the models, about 0.5 s) for this command
    from observer.db.queries import alert_records
    from observer.db.readers import reader_engine

    program = "observer alerts ack"
    settings = settings_or_exit(program, config)
    ids = list(dict.fromkeys(ids))  # an id given twice is acknowledged once
    try:
        wanted = [parse_alert_id(text) for text in ids]
    except ValueError as exc:
        fail(program, str(exc), 2)
    engine = reader_engine(settings.database, "alerts")
    try:
        with engine.connect() as conn:
            known = {s.notice.id: s.state for s in alert_states(alert_records(conn, 0))}
    finally:
        engine.dispose()
    unknown = [text for text in ids if text not in known]
    if unknown:
        fail(program, f"no alert {', '.join(unknown)}", 1)
    for text in ids:  # an ack of what is no longer open would say it ended something
        if known[text] != "open":
            typer.echo(f"{text} is {'a note' if known[text] == 'info' else known[text]} already")
    ids = [text for text in ids if known[text] == "open"]
    if not ids:
        return
    wanted = [parse_alert_id(text) for text in ids]
    clock = clock_from_env()
    try:
        producer = producer_for(settings, ACK_SOURCE, clock.now_ns)
    except BusError as exc:  # another ack is being made: its outbox is held
        fail(program, str(exc), 1)
    try:
        for source, seq in wanted:
            producer.send(
                AlertAcked(alert_source=source, alert_seq=seq, by=getpass.getuser(), note=note)
            )
        if not drained(producer, Heartbeat(None), _ACK_WAIT_S):
            fail(
                program,
                "the writer has not stored the acknowledgement yet; it waits in "
                "the outbox and goes with the next `observer alerts ack`",
                1,
            )
    finally:
        producer.close(drain_timeout=0)
    typer.echo(f"acknowledged {', '.join(ids)}")


@alerts_app.command("prometheus-rules")
def print_prometheus_rules(config: ConfigOption = None) -> None:
    """Print the Prometheus twins of the threshold rules (config/prometheus/thresholds.yml)."""
    program = "observer alerts prometheus-rules"
    settings = settings_or_exit(program, config)
    try:
        text = prometheus_rules((*settings.supervisor.rules, *enrichment_rules(settings.enrich)))
    except ValueError as exc:
        fail(program, str(exc), 2)
    typer.echo(text, nl=False)
