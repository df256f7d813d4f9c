"""``observer readiness``: the supervisor's ``readiness`` job, the 08:10 pre-market check.

Per account (`workers.readiness.check`): the token, the REST host and Track B's WebSocket
session, tried ``[readiness] retries`` more times; then a critical ``readiness_failed``
(subject: the account) and the day goes on degraded, nothing stopped. Failed accounts are
checked again every ``recheck_s`` until full operation; a pass resolves the alert, whatever
its age. Outcomes are alerts (``readiness_ok`` info) and ``account.<alias>.ready*`` heartbeat
counters for ``ctl status``. Exit 0: a failure is alerted, not a failed job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bus.events import Alert, AlertResolved
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST, Phase
from observer.calendar.settings import CalendarSettings, PhaseSettings
from observer.calendar.timeline import timeline_from
from observer.cli.support import job_producer, open_alert_subjects, start_job
from observer.cluster.session_reports import StreamReport, stream_report
from observer.config.tree import Settings
from observer.kis.account_health import counter
from observer.kis.session import open_account, rate_limits, token_alert
from observer.process.heartbeat import Heartbeat
from workers.readiness.check import Check, attempt, ready

if TYPE_CHECKING:
    from bus.producer import Producer
    from observer.kis.session import KisAccount

__all__ = ["FAILED", "PASSED", "app", "report_counters"]

log = logging.getLogger(__name__)

SOURCE = "readiness"
PROGRAM = "observer readiness"
FAILED = "readiness_failed"
PASSED = "readiness_ok"
_NS = 1_000_000_000

app = typer.Typer(no_args_is_help=True, help="The pre-market readiness check (08:10).")


@app.callback()
def _group() -> None:
    """Keep ``run`` a subcommand (typer collapses a one-command app)."""


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Check every account's token, REST host and WebSocket session; alert what is not ready."""
    settings, clock, notifier = start_job(PROGRAM, config, kis=True)
    with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
        asyncio.run(_check_all(settings, clock, producer, notifier))


def report_counters(check: Check, at_ns: int) -> dict[str, float]:
    """The heartbeat counters of an account's last check (``ctl status`` reads them)."""
    figures = {
        "ready": check.ok,
        "ready_token": check.token,
        "ready_rest": check.rest,
        "ready_ws": check.websocket,
        "ready_attempts": check.attempts,
        "ready_at_s": at_ns // _NS,
    }
    return {counter(check.account, k): float(v) for k, v in figures.items()}


async def _check_all(
    settings: Settings, clock: Clock, producer: Producer, notifier: Heartbeat
) -> None:
    # deferred: ZeroMQ (about 0.03 s) after READY, as every job (`observer.cli.support`)
    from observer.runtime import alongside, beat_forever

    counters: dict[str, float] = {}
    # One current price per attempt, within the jobs' share of each account like any job's
    # calls (its retries of a host that does not answer come at that rate).
    limits = rate_limits(settings.kis, "jobs")
    accounts = [
        open_account(
            settings.kis, a.alias, clock, limits, on_unavailable=token_alert(a.alias, producer.send)
        )
        for a in settings.kis.accounts
    ]
    try:
        async with alongside(beat_forever(notifier, lambda: counters)):
            # Read while beating: a database slow to answer is no hung job.
            failed = _Failed(await asyncio.to_thread(_still_failed, settings))
            until = _recheck_until(settings.phases, settings.calendar, clock)
            pending = list(accounts)
            while pending:
                found = await asyncio.gather(*(_check(settings, clock, a) for a in pending))
                for check in found:
                    counters.update(report_counters(check, clock.now_ns()))
                    _publish(producer, check, failed)
                pending = [a for a, c in zip(pending, found, strict=True) if not c.ok]
                pause = settings.readiness.recheck_s
                if not pending or clock.now_ns() / _NS + pause >= until:
                    break
                await clock.sleep(pause)
            # The outcome in a last notice now: a heartbeat waits for its interval, and a
            # job's final counters are what the supervisor keeps (a second READY only
            # carries them).
            notifier.ready(counters)
    finally:
        for account in accounts:
            await account.aclose()


async def _check(settings: Settings, clock: Clock, account: KisAccount) -> Check:
    policy = settings.readiness

    def stream() -> Awaitable[StreamReport | None]:
        return stream_report(settings.control_socket, account.alias)

    check = await ready(
        lambda: attempt(account, policy.probe_symbol, stream, policy.ws_timeout_s),
        clock=clock,
        retries=policy.retries,
        initial_s=policy.retry_initial_s,
        max_s=policy.retry_max_s,
    )
    outcome = "ready" if check.ok else f"NOT READY ({'; '.join(check.problems)})"
    log.info("%s: %s after %d checks", account.alias, outcome, check.attempts)
    return check


class _Failed:
    """The accounts whose ``readiness_failed`` is open: raised by this run or an earlier one.

    ``None`` from the database (it cannot say) counts every account as open for a pass to
    resolve (one needless resolution beats reminders every half hour), and as not alerted
    for a failure to raise (a second alert beats none).
    """

    def __init__(self, earlier: set[str] | None) -> None:
        self.unknown = earlier is None
        self.open = set(earlier or ())

    def passed(self, alias: str) -> bool:
        """Forget ``alias``'s failure; True if one may be open (resolve it)."""
        was_open = alias in self.open or self.unknown
        self.open.discard(alias)
        return was_open

    def failed(self, alias: str) -> bool:
        """Remember ``alias``'s failure; True if none was open (alert it)."""
        is_new = alias not in self.open
        self.open.add(alias)
        return is_new


def _publish(producer: Producer, check: Check, failed: _Failed) -> None:
    """The outcome as an alert; a pass ends an earlier failure of the account."""
    alias = check.account
    context = {
        "account": alias,
        "token": str(check.token).lower(),
        "rest": str(check.rest).lower(),
        "websocket": str(check.websocket).lower(),
        "attempts": str(check.attempts),
    }
    if check.ok:
        message = f"{alias} is ready for the session: token, REST host and WebSocket session"
        producer.send(
            Alert(severity="info", code=PASSED, message=message, context=context, subject=alias)
        )
        if failed.passed(alias):
            producer.send(
                AlertResolved(
                    code=FAILED,
                    severity="critical",
                    subject=alias,
                    message=f"{alias} is ready again",
                )
            )
        return
    message = (
        f"{alias} is not ready after {check.attempts} checks: {'; '.join(check.problems)}; "
        "the day goes on degraded on the cached token and key"
    )
    log.error("%s", message)
    if failed.failed(alias):  # alerted once; later checks that fail again say nothing new
        producer.send(
            Alert(
                severity="critical",
                code=FAILED,
                message=message[:2000],
                context=context,
                subject=alias,
            )
        )


def _still_failed(settings: Settings) -> set[str] | None:
    """Accounts whose ``readiness_failed`` is open, whatever its age; None: cannot say.

    Not a window of days: Friday's failure is three days old at Monday's check, and an
    alert left open is reminded until something resolves it.
    """
    return open_alert_subjects(settings, SOURCE, FAILED)


def _recheck_until(phases: PhaseSettings, calendar: CalendarSettings, clock: Clock) -> float:
    """Failed accounts are checked again until the day's idle phase (UTC s; 0: not today).

    Not only until full operation: a start at any hour (a restart after a crash, a demo from
    09:25) checks before Track B's sessions are up, and a later check that passes is what
    ends the verdict and its alert once they work.
    """
    now = now_utc(clock).astimezone(KST)
    timeline = timeline_from(phases, calendar)
    starts: dict[Phase, datetime] = {
        phase: at for at, phase in timeline.schedule.starts(now.date())
    }
    if not timeline.calendar.is_session(now.date()):
        return 0.0
    return starts[Phase.IDLE].timestamp()
