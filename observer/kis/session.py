"""Wiring for one process: each configured account's HTTP client, tokens, limiter and stream.

Workers call `open_account` with their process kind (``track_a``, ``gap_recovery``,
``jobs``; ``manual``: a hand-run ``gap-recovery verify`` beside the daemon); the REST limiter
gets that kind's share of the account's budget, so the processes of one account together
stay under it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from httpx_aiohttp import AiohttpTransport

from bus.events import Alert, AlertResolved, Event, TokenRefreshed
from observer.calendar.clock import Clock
from observer.calendar.venues import SessionOf
from observer.errors import ConfigError
from observer.kis.account_health import REST_ERRORS, counter
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import account_credentials
from observer.kis.endpoints import ENVIRONMENTS, MASTER_BASE_URL
from observer.kis.journal import Journal
from observer.kis.rest_get import AiohttpGet
from observer.kis.settings import KisSettings
from observer.kis.stream import KisStream, StreamListener, StreamSettings

__all__ = [
    "TOKEN_UNAVAILABLE",
    "KisAccount",
    "TokenAlert",
    "master_http",
    "open_account",
    "rate_limits",
    "rest_error_counters",
    "token_alert",
]

_CONNECT_S, _READ_S = 5.0, 10.0
_STREAM = StreamSettings()
_TIMEOUT = httpx.Timeout(_READ_S, connect=_CONNECT_S)
TOKEN_UNAVAILABLE = "token_unavailable"  # noqa: S105 - an alert code: a worker lacks a token
REST_ERRORS_WINDOW_S = 300.0  # ctl status shows each account's REST errors of this window


def _rest_http(base_url: str) -> httpx.AsyncClient:
    """The token manager's client: httpx's API over aiohttp's connection handling.

    httpx's own transport spends about 4 ms of CPU a request (measured with py-spy against
    the simulator); aiohttp's spends a fraction of that. The quotes go through `AiohttpGet`.
    """
    return httpx.AsyncClient(base_url=base_url, timeout=_TIMEOUT, transport=AiohttpTransport())


def rate_limits(kis: KisSettings, process: str, *, share: float | None = None) -> RateLimits:
    """Limiters for one process: each account's budget (less the headroom) times the share.

    ``share`` instead of the kind's: what the configured shares leave, for a process that
    has no kind of its own (`workers.gap_recovery.share`).
    """
    if share is None:
        share = kis.process_share.get(process)
    if share is None:
        raise ConfigError(f"kis.process_share has no entry for process kind {process!r}")
    per_second = {a.alias: kis.usable_per_second(a) * share for a in kis.accounts}
    return RateLimits(per_second, kis.pace_recover_s)


def _urls(kis: KisSettings) -> tuple[str, str]:
    if kis.environment == "sim":
        rest = kis.sim_url.rstrip("/")
        return rest, rest.replace("http", "ws", 1) + "/tryitout"
    environment = ENVIRONMENTS[kis.environment]
    return environment.rest_url, environment.ws_url


@dataclass
class KisAccount:
    """Everything one process needs to talk to KIS as one account."""

    alias: str
    http: httpx.AsyncClient  # the token manager's (a few calls a day)
    rest: AiohttpGet  # the quotes' (Track A's cycles: every call counts)
    tokens: TokenManager
    client: KisClient
    ws_url: str
    clock: Clock
    journal: Journal | None = None  # the process's: every frame and answer received

    def stream(
        self,
        listener: StreamListener,
        settings: StreamSettings = _STREAM,
        session_of: SessionOf | None = None,
    ) -> KisStream:
        """The account's WebSocket session (one per app key).

        Its events carry the alias, and the session ``session_of`` gives their venue and stamp.
        """
        return KisStream(
            self.ws_url,
            self.tokens,
            self.clock,
            listener,
            settings,
            account=self.alias,
            session_of=session_of,
            journal=self.journal,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        try:
            await self.rest.aclose()
        finally:
            await self.http.aclose()


def open_account(
    kis: KisSettings,
    alias: str,
    clock: Clock,
    limits: RateLimits,
    on_issued: Callable[[TokenRefreshed], None] | None = None,
    *,
    issuer: bool | None = None,
    on_unavailable: Callable[[str, str], None] | None = None,
    on_available: Callable[[str, str], None] | None = None,
    alerts: Callable[[Event], object] | None = None,
    journal: Journal | None = None,
) -> KisAccount:
    """Build the client, token manager and limiter of account ``alias``.

    The token manager issues unless ``[kis] token_issuer = "job"`` makes this process a
    reader (``issuer`` overrides: the token job is the issuer); ``on_unavailable`` hears
    when a reader waits for a token that is not in the cache, ``on_available`` when it holds
    a valid one again (for a `TokenAlert`, its `TokenAlert.resolved` unless given).
    ``alerts`` sends the alert of a token cache file that does not read (for a `TokenAlert`,
    its own ``send`` unless given; without either it is only logged). The account's answers
    and its stream's frames go to ``journal`` (the process's: `observer.runtime.journal_for`).
    """
    if isinstance(on_unavailable, TokenAlert):
        on_available = on_available or on_unavailable.resolved
        alerts = alerts or on_unavailable.send
    account = next((a for a in kis.accounts if a.alias == alias), None)
    if account is None:
        raise ConfigError(f"no kis.accounts entry with alias {alias!r}")
    rest, ws = _urls(kis)
    http = _rest_http(rest)
    credentials = account_credentials(kis, alias)
    tokens = TokenManager(
        http,
        credentials,
        clock,
        Path(kis.token_dir),
        kis.environment,
        on_issued=on_issued,
        issuer=kis.token_issuer == "any" if issuer is None else issuer,  # noqa: S105
        reader_wait_s=kis.token_wait_s,
        on_unavailable=on_unavailable,
        on_available=on_available,
        on_unreadable=alerts,
    )
    rest_get = AiohttpGet(rest, connect_s=_CONNECT_S, read_s=_READ_S)
    client = KisClient(
        rest_get,
        credentials,
        tokens,
        clock,
        limits.for_account(alias),
        environment="paper" if kis.paper else kis.environment,
        paper_codes=kis.paper_refusal_codes,
        journal=journal,
    )
    return KisAccount(alias, http, rest_get, tokens, client, ws, clock, journal)


@dataclass(frozen=True, slots=True)
class TokenAlert:
    """The critical `TOKEN_UNAVAILABLE` alert of one account (subject: its alias), and its end.

    Called as ``on_unavailable``, it raises the alert when a reader starts waiting for a token
    the cache lacks; `resolved` (the ``on_available`` `open_account` gives it) ends it once
    the reader holds a valid one again, so it is not reminded long after the token job
    has issued.
    """

    alias: str
    send: Callable[[Event], object]

    def __call__(self, kind: str, message: str) -> None:
        """Raise the alert: no valid ``kind`` in the cache."""
        context = {"account": self.alias, "kind": kind}
        alert = Alert(
            severity="critical",
            code=TOKEN_UNAVAILABLE,
            message=message,
            context=context,
            subject=self.alias,
        )
        self.send(alert)

    def resolved(self, kind: str, message: str) -> None:
        """End the alert: the reader holds a valid token and key again."""
        self.send(
            AlertResolved(
                code=TOKEN_UNAVAILABLE, severity="critical", subject=self.alias, message=message
            )
        )


def token_alert(alias: str, send: Callable[[Event], object]) -> TokenAlert:
    """The ``on_unavailable`` of account ``alias``: a critical `TOKEN_UNAVAILABLE`, resolved."""
    return TokenAlert(alias, send)


def rest_error_counters(accounts: Sequence[KisAccount]) -> dict[str, float]:
    """Each account's REST errors of the last five minutes, for a heartbeat."""
    return {
        counter(a.alias, REST_ERRORS): float(a.client.errors_within(REST_ERRORS_WINDOW_S))
        for a in accounts
    }


def master_http(kis: KisSettings) -> httpx.AsyncClient:
    """A client for the master-file host (KIS's public one, or the simulator's)."""
    base = kis.master_url or (
        kis.sim_url.rstrip("/") + "/common/master/" if kis.environment == "sim" else MASTER_BASE_URL
    )
    return httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0))
