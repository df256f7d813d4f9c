"""``observer token``: the supervisor's ``token`` job, the one issuer of tokens and keys.

With ``[kis] token_issuer = "job"`` (shipped) no worker issues: they read the owner-only cache
this job writes, so no two processes ask KIS within its minute (EGW00133). At every
supervisor start and daily at 03:20 it makes each account's token and approval key last until
the day's end; at 08:30 on sessions (``--renew``) it issues both anew. A failure is a critical
``token_renewal_failed`` (subject: the account); exit 1 only when no token lasts long enough.
Every issuance is a `TokenRefreshed` event (never the token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from functools import partial
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from bus.events import Alert, AlertResolved, TokenRefreshed
from observer.calendar.clock import Clock
from observer.calendar.phases import KST
from observer.cli.support import (
    fail,
    job_producer,
    open_alert_subjects,
    open_subjects_on_host,
    start_job,
)
from observer.config.tree import Settings
from observer.config.workers import TokenSettings
from observer.errors import KisError
from observer.kis.settings import TOKEN_SPACING_S, KisSettings
from observer.process.heartbeat import Heartbeat
from observer.process.retry import retry

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from bus.producer import Producer
    from observer.kis.credentials import Secret
    from observer.kis.session import KisAccount

__all__ = ["KINDS", "RENEWAL_FAILED", "app"]

log = logging.getLogger(__name__)

SOURCE = "token"
PROGRAM = "observer token"
RENEWAL_FAILED = "token_renewal_failed"
KINDS = ("access_token", "approval_key")

# degraded: failed, the previous one lasts; invalid: failed, none lasts (the run fails)
Outcome = Literal["done", "degraded", "invalid"]

app = typer.Typer(no_args_is_help=True, help="The token job: the one issuer of KIS tokens.")


@app.callback()
def _group() -> None:
    """Keep ``run`` a subcommand (typer collapses a one-command app)."""


@app.command()
def run(
    renew: Annotated[
        bool, typer.Option("--renew", help="issue every token and key anew (pre-market)")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Make every account's token and approval key valid; ``--renew``: issue them anew."""
    settings, clock, notifier = start_job(PROGRAM, config, kis=True)
    with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
        invalid = asyncio.run(_issue_all(settings, clock, producer, notifier, renew))
    if invalid:
        lacking = ", ".join(invalid)
        fail(PROGRAM, f"no {lacking} that lasts the day: KIS calls fail until one is issued", 1)


async def _issue_all(
    settings: Settings, clock: Clock, producer: Producer, notifier: Heartbeat, renew: bool
) -> list[str]:
    """Issue what each account needs; the ``<alias> <kind>`` left without a valid one.

    Only what is missing, would expire or reach its refresh age sooner is issued (``renew``:
    everything; KIS's same token within 6 h of the last issuance is kept, not counted). Each
    issuance is tried ``[token] retries`` more times with backoff on a retryable failure; then
    the alert, and the system runs on the previous token if it lasts as long as this run had to
    make it last (exit 0, degraded). With none valid, or one that expires sooner (03:20, a token
    expiring at 04:30: the next run is 08:30), the job exits 1 and the supervisor retries it;
    the alert says when the previous one expires. A later run that gets the account both a
    token and a key that last resolves its open alert, and the ``token_unavailable`` a reader
    of this host left open for it (a job that exited waiting cannot end its own).
    """
    # deferred: the KIS layer (httpx, aiohttp: about 0.2 s) and ZeroMQ after READY
    from observer.kis.session import TOKEN_UNAVAILABLE, open_account, rate_limits
    from observer.runtime import beat_forever

    beating = asyncio.ensure_future(beat_forever(notifier, dict))
    limits = rate_limits(settings.kis, "jobs")

    def issued(event: TokenRefreshed) -> None:
        producer.send(event)  # the audit of every issuance (never the token)

    accounts = [
        open_account(
            settings.kis, a.alias, clock, limits, issued, issuer=True, alerts=producer.send
        )
        for a in settings.kis.accounts
    ]
    invalid, mended = [], []
    spaced = _Spacing()
    try:
        for account in accounts:
            outcomes = {}
            for kind in KINDS:
                async with spaced(account, kind):
                    outcomes[kind] = await _issue(
                        settings.kis, settings.token, clock, producer, account, kind, renew
                    )
            invalid += [f"{account.alias} {k}" for k, o in outcomes.items() if o == "invalid"]
            if all(o == "done" for o in outcomes.values()):
                mended.append(account.alias)
        if mended:  # read while beating: a database slow to answer is no hung job
            alerted = await asyncio.to_thread(open_alert_subjects, settings, SOURCE, RENEWAL_FAILED)
            _resolve(settings.kis, producer, mended, alerted)
            waiting = await asyncio.to_thread(
                open_subjects_on_host, settings, SOURCE, TOKEN_UNAVAILABLE
            )
            _resolve_unavailable(producer, mended, waiting, TOKEN_UNAVAILABLE)
    finally:
        beating.cancel()
        for account in accounts:
            await account.aclose()
    return invalid


def _resolve(
    kis: KisSettings, producer: Producer, mended: list[str], alerted: set[str] | None
) -> None:
    """Resolve the open ``token_renewal_failed`` of each account whose token and key last now.

    Only of an alert that is open (``alerted``; None: unknown, each counts as open): a
    resolution of nothing would go to every channel each run. One raised before alerts had a
    subject (none) ends once every account is mended.
    """
    if alerted is not None and len(mended) == len(kis.accounts):
        mended = [*mended, ""]
    for alias in mended:
        if alerted is None or alias in alerted:
            message = f"{alias or 'every account'}: the access token and approval key last the day"
            producer.send(
                AlertResolved(
                    code=RENEWAL_FAILED, severity="critical", subject=alias, message=message
                )
            )


def _resolve_unavailable(
    producer: Producer, mended: list[str], waiting: set[str] | None, code: str
) -> None:
    """End the ``token_unavailable`` (``code``) a reader of this host left open, if mended.

    A reader resolves its own once it holds a token again; one that exited first (the
    readiness job, a job that failed its calls) leaves it open, reminded until acknowledged.
    Only of an alert known open (``waiting``; None, the database could not say: none), as a
    resolution of nothing would go to every channel.
    """
    for alias in mended:
        if waiting is not None and alias in waiting:
            message = f"{alias}: the token job issued a token and key that last the day"
            producer.send(
                AlertResolved(code=code, severity="critical", subject=alias, message=message)
            )


def _until_midnight_s(clock: Clock) -> float:
    """Clock seconds from now to the end of today (KST)."""
    now = datetime.fromtimestamp(clock.now_ns() / 1e9, KST)
    midnight = datetime.combine(now.date() + timedelta(days=1), time(0), KST)
    return (midnight - now).total_seconds()


class _Spacing:
    """The job's token issuances `TOKEN_SPACING_S` wall seconds apart, across its accounts.

    KIS issues tokens at one a second (its notices, as quoted publicly; per app key or per
    customer, unsaid). Per app key its one a minute (EGW00133) already spaces them; across
    the accounts the job issues for, this does: an issuance waits for the spacing after the
    previous one, and a token that was cached (none issued) takes no turn.
    """

    def __init__(self) -> None:
        self._last = -math.inf  # monotonic: the last token issued

    @contextlib.asynccontextmanager
    async def __call__(self, account: KisAccount, kind: str) -> AsyncIterator[None]:
        if kind != "access_token":
            yield
            return
        wait = self._last + TOKEN_SPACING_S - monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        before = account.tokens.issued
        try:
            yield
        finally:
            if account.tokens.issued != before:
                self._last = monotonic()


async def _issue(
    kis: KisSettings,
    policy: TokenSettings,
    clock: Clock,
    producer: Producer,
    account: KisAccount,
    kind: str,
    renew: bool,
) -> Outcome:
    """One account's ``kind``, retried; alerted when it fails (subject: the account)."""
    # deferred: the KIS layer (httpx, about 0.13 s) after READY
    from observer.kis.auth import cached_validity

    tokens = account.tokens
    lasting = _until_midnight_s(clock)  # what is issued, or kept, lasts the day
    call: Callable[[], Awaitable[Secret]]
    if kind == "access_token":
        call = (
            partial(tokens.refresh, "premarket")
            if renew
            else partial(tokens.token, lasting_s=lasting)
        )
    else:
        call = (
            partial(tokens.refresh_approval, "premarket")
            if renew
            else partial(tokens.approval_key, lasting_s=lasting)
        )

    def retried(error: BaseException, attempt: int, pause: float) -> None:
        log.warning(
            "%s: %s failed (%s), try %d again in %.1fs",
            account.alias,
            kind,
            error,
            attempt + 1,
            pause,
        )

    try:
        await retry(
            call,
            clock=clock,
            attempts=policy.retries + 1,
            initial_s=policy.retry_initial_s,
            max_s=policy.retry_max_s,
            on_retry=retried,
            retry_if=lambda error: isinstance(error, KisError) and error.retryable,
        )
        return "done"
    except KisError as exc:
        validity = cached_validity(Path(kis.token_dir), account.alias, kis.environment, kind)
        outcome, why = _fallback(validity, clock.now_ns(), lasting)
        message = f"{account.alias}: no new {kind} ({exc}); {why}"
        log.error("%s", message)
        producer.send(
            Alert(
                severity="critical",
                code=RENEWAL_FAILED,
                message=message[:2000],
                context={"account": account.alias, "kind": kind},
                subject=account.alias,
            )
        )
        return outcome


def _fallback(
    validity: tuple[int, int] | None, now_ns: int, lasting_s: float
) -> tuple[Outcome, str]:
    """What a failed issuance leaves: ``degraded`` or ``invalid``, and why (for the alert).

    Degraded (exit 0) only when the previous one lasts as long as this run had to make it
    last (``lasting_s``): the job does not run again before 08:30 or the next 03:20, so a
    token that is valid now but expires before then (03:20, one expiring at 04:30) would
    leave every KIS caller without one (``NO_TOKEN``) with nothing retrying; the job fails
    instead, and the supervisor runs it again with its backoff.
    """
    if validity is None or validity[1] <= now_ns:
        return "invalid", "none is valid: KIS calls fail until one is issued"
    until = datetime.fromtimestamp(validity[1] / 1e9, KST).isoformat(timespec="minutes")
    if validity[1] >= now_ns + int(lasting_s * 1e9):
        return "degraded", f"running on the previous one, valid until {until}"
    return "invalid", (
        f"the previous one expires at {until}, before the day ends: KIS calls fail from then"
        " until one is issued (the job is run again)"
    )
