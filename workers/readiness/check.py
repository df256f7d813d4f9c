"""One account's pre-market readiness: token, REST host and WebSocket session, retried.

The token and REST host are shown by one cheap current-price call with the cached token
(`check_rest`). The session is Track B's, pre-connected at 08:03 and read from its heartbeat
through the supervisor (a second session on the app key would be refused, ``OPSP8996``, or
push Track B's off); only when Track B does not run is one opened (`probe_session`). A
failed check is retried ``retries`` times with backoff; the last attempt's is the `Check`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from observer.calendar.clock import Clock
from observer.cluster.session_reports import StreamReport
from observer.errors import KisAuthError, KisError, KisTransportError
from observer.kis.parse import parse_control
from observer.kis.session import KisAccount
from observer.kis.stream import IDENTIFY, message
from observer.process.retry import retry

__all__ = ["Check", "NotReady", "check_rest", "probe_session", "ready"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """What one attempt found for one account; ``problems`` says why it is not ready."""

    account: str
    token: bool  # KIS took the cached access token
    rest: bool  # the REST host answered
    websocket: bool  # a session of the account is open and KIS counts it as the key's
    problems: tuple[str, ...] = field(default=())
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Ready: every check passed."""
        return self.token and self.rest and self.websocket


class NotReady(Exception):
    """An attempt failed; it carries what it found."""

    def __init__(self, check: Check) -> None:
        super().__init__("; ".join(check.problems))
        self.check = check


async def check_rest(account: KisAccount, symbol: str) -> tuple[bool, bool, str]:
    """``(token valid, REST reachable, problem)`` by one current price with the cached token.

    A refused token is renewed by the client (an emergency issuance, as in any process):
    the check passes if the renewed one works, since the day can go on with it.
    """
    try:
        await account.client.current_price(symbol)
    except KisTransportError as exc:
        return False, False, f"REST host unreachable ({exc})"
    except KisAuthError as exc:
        return False, True, f"access token refused ({exc.msg_cd})"
    except KisError as exc:
        return False, True, f"REST call failed ({exc})"
    return True, True, ""


async def probe_session(account: KisAccount, timeout_s: float) -> tuple[bool, str]:
    """Open a session of the account, present its approval key, close it: ``(ok, problem)``.

    KIS answers the release of a registration the session does not hold with ``OPSP0003``
    when the session is the key's, ``OPSP8996`` when another session holds the key.
    """
    try:
        key = await account.tokens.approval_key()
        async with asyncio.timeout(timeout_s):
            async with connect(account.ws_url, ping_interval=None, close_timeout=2.0) as socket:
                await socket.send(message(IDENTIFY, key.reveal(), register=False))
                while True:
                    raw = await socket.recv()
                    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                    control = parse_control(text)
                    if control.is_pingpong:
                        continue
                    if control.msg_cd in ("OPSP0001", "OPSP0003"):
                        return True, ""
                    return False, f"WebSocket session refused ({control.msg_cd} {control.msg1})"
    except TimeoutError:
        return False, f"WebSocket session gave no answer within {timeout_s:g}s"
    except (OSError, WebSocketException) as exc:
        return False, f"WebSocket host unreachable ({type(exc).__name__})"
    except KisError as exc:
        return False, f"no approval key ({exc})"


def judge_report(report: StreamReport) -> tuple[bool, str]:
    """Whether Track B's session of an account is ready: ``(ok, problem)``."""
    if report.state == "connected" and report.identified:
        return True, ""
    if report.state == "connected":
        return False, "Track B's session is open but KIS has not taken its approval key yet"
    return False, f"Track B's session is {report.state}"


async def attempt(
    account: KisAccount,
    symbol: str,
    stream: Callable[[], Awaitable[StreamReport | None]],
    ws_timeout_s: float,
) -> Check:
    """One attempt of every check of ``account``; raises `NotReady` if any fails."""
    token, rest, rest_problem = await check_rest(account, symbol)
    report = await stream()
    if report is None:  # Track B is not running: the session is ours to try
        websocket, ws_problem = await probe_session(account, ws_timeout_s)
    else:
        websocket, ws_problem = judge_report(report)
    problems = tuple(p for p in (rest_problem, ws_problem) if p)
    check = Check(account.alias, token, rest, websocket, problems)
    if not check.ok:
        raise NotReady(check)
    return check


async def ready(
    run: Callable[[], Awaitable[Check]],
    *,
    clock: Clock,
    retries: int,
    initial_s: float,
    max_s: float,
) -> Check:
    """``run`` tried ``retries`` more times while `NotReady`; the last attempt's `Check`."""
    attempts = 0

    async def counted() -> Check:
        nonlocal attempts
        attempts += 1
        return await run()

    def retried(error: BaseException, number: int, pause: float) -> None:
        log.warning("not ready (%s); check %d again in %.0fs", error, number + 1, pause)

    try:
        found = await retry(
            counted,
            clock=clock,
            attempts=retries + 1,
            initial_s=initial_s,
            max_s=max_s,
            retry_if=lambda error: isinstance(error, NotReady),
            on_retry=retried,
        )
    except NotReady as failed:
        found = failed.check
    return Check(found.account, found.token, found.rest, found.websocket, found.problems, attempts)
