"""The async KRX data-portal client: the login, its session, and the two ETF screens.

The portal's facts are `KrxClient`'s. A ``LOGOUT`` is answered by one new login and the same
request again; a second is raised (`KrxLoggedOut`), so a caller never reads an empty answer as "no
ETFs". Rows lacking a key the screen must carry (a column renamed by a site update) are a
`KrxProtocolError`, never rows of empty fields. 5xx and timeouts are retried through
`observer.process.retry`; every request, the login's included, passes one limiter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Generic, TypeVar

import httpx
import msgspec
from aiolimiter import AsyncLimiter

from observer.calendar.clock import Clock
from observer.errors import (
    KrxError,
    KrxLoggedOut,
    KrxLoginError,
    KrxProtocolError,
    KrxServerError,
    KrxTransportError,
)
from observer.kis.settings import KisSettings
from observer.krx.credentials import KrxCredentials, krx_credentials
from observer.krx.schemas import (
    ETF_DAILY_BLD,
    ETF_DAILY_KEYS,
    ETF_LIST_BLD,
    ETF_LIST_KEYS,
    KrxEtfDailyRow,
    KrxEtfRow,
    missing_keys,
)
from observer.krx.settings import KrxSettings
from observer.process.retry import retry

__all__ = ["DATA_PATH", "LOGIN_OK", "KrxClient", "open_krx"]

log = logging.getLogger(__name__)

_Row = TypeVar("_Row", KrxEtfRow, KrxEtfDailyRow)

DATA_PATH = "/comm/bldAttendant/getJsonData.cmd"
SESSION_PATH = "/contents/MDC/COMS/client/MDCCOMS001.cmd"  # issues JSESSIONID
LOGIN_PAGE_PATH = "/contents/MDC/COMS/client/view/login.jsp"
LOGIN_PATH = "/contents/MDC/COMS/client/MDCCOMS001D1.cmd"
REFERER = "https://data.krx.co.kr/contents/MDC/MDI/outerLoader/index.cmd"
LOGIN_OK = "CD001"
LOGIN_ELSEWHERE = "CD011"
_HEADERS = {
    "User-Agent": "Mozilla/5.0",
    "Referer": REFERER,
    "X-Requested-With": "XMLHttpRequest",
}


class _LoginAnswer(msgspec.Struct):
    error_code: str = msgspec.field(default="", name="_error_code")
    error_message: str = msgspec.field(default="", name="_error_message")


class _Output(msgspec.Struct, Generic[_Row]):
    output: list[_Row]


class _Keys(msgspec.Struct):
    output: list[dict[str, msgspec.Raw]]


class KrxClient:
    """The portal as one member.

    Facts from shared/reference/krx-etf-and-metadata.md §1.1-1.2: data is ``POST
    /comm/bldAttendant/getJsonData.cmd`` (form ``bld`` plus the screen's parameters) with
    ``User-Agent``, ``Referer`` and ``X-Requested-With``, answered as ``text/html`` carrying
    ``{"output": [...]}``; since 2026-02-27 an anonymous or expired session gets HTTP 400 with
    the body ``LOGOUT``; a session is good for about an hour, and another login of the same
    member ends it.

    Parameters
    ----------
    http:
        An ``httpx.AsyncClient`` whose base URL is the portal (or the simulator).
    credentials:
        The member's id and password.
    clock:
        Session age and retry backoff.
    limiter:
        Paces every request, the login's included.
    session_ttl_s:
        Log in again once the session is this old (clock seconds).
    attempts, backoff_s, backoff_cap_s:
        Tries per request for 5xx and timeouts, the first pause and its cap.
    skip_duplicate:
        On CD011, log in again with ``skipDup=Y`` (ending the other session).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: KrxCredentials,
        clock: Clock,
        limiter: AsyncLimiter,
        *,
        session_ttl_s: float = 3300.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        skip_duplicate: bool = True,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._clock = clock
        self._limiter = limiter
        self._ttl_ns = int(session_ttl_s * 1e9)
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._backoff_cap_s = backoff_cap_s
        self._skip_duplicate = skip_duplicate
        self._cookies: dict[str, str] = {}
        self._session_ns: int | None = None  # when the current session logged in
        self._login_lock = asyncio.Lock()
        self.requests = 0
        self.logins = 0
        self.retries = 0
        self.logged_out = 0  # LOGOUT answers seen

    def __repr__(self) -> str:
        return (
            f"<KrxClient requests={self.requests} logins={self.logins} "
            f"retries={self.retries} logged_out={self.logged_out}>"
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # ------------------------------------------------------------------ the screens

    async def etf_list(self) -> list[KrxEtfRow]:
        """MDCSTAT04601: every listed ETF (may be empty: the caller decides what that means).

        Raises `KrxProtocolError` when a row lacks one of the screen's keys (`ETF_LIST_KEYS`).
        """
        return await self.rows(ETF_LIST_BLD, {}, KrxEtfRow, ETF_LIST_KEYS)

    async def etf_daily(self, day: date) -> list[KrxEtfDailyRow]:
        """MDCSTAT04301: every ETF's prices, NAV and net assets on session ``day``.

        Raises `KrxProtocolError` when a row lacks a key the rows are read from.
        """
        params = {"trdDd": day.strftime("%Y%m%d")}
        return await self.rows(ETF_DAILY_BLD, params, KrxEtfDailyRow, ETF_DAILY_KEYS)

    async def rows(
        self, bld: str, params: Mapping[str, str], row: type[_Row], keys: Sequence[str] = ()
    ) -> list[_Row]:
        """One screen's ``output`` rows, logged in, with retries (see the module docstring).

        ``keys``: the keys every row must carry. The row types default what is absent to
        ``""`` ("not available"), so a renamed column would pass for an empty one.
        """
        relogged = False

        async def once() -> list[_Row]:
            nonlocal relogged
            await self._ensure_session()
            try:
                return await self._post(bld, params, row, keys)
            except KrxLoggedOut:
                if relogged:
                    raise
                relogged = True
                log.info("KRX %s: LOGOUT, logging in again", bld.rsplit("/", 1)[-1])
                self._session_ns = None
                return await once()

        def retried(error: BaseException, attempt: int, pause: float) -> None:
            self.retries += 1
            log.info("KRX %s: %s, retry %d in %.2fs", bld.rsplit("/", 1)[-1], error, attempt, pause)

        return await retry(
            once,
            clock=self._clock,
            attempts=self._attempts,
            initial_s=self._backoff_s,
            max_s=self._backoff_cap_s,
            retry_if=lambda error: isinstance(error, KrxError) and error.retryable,
            on_retry=retried,
        )

    async def _post(
        self, bld: str, params: Mapping[str, str], row: type[_Row], keys: Sequence[str]
    ) -> list[_Row]:
        response = await self._send("POST", DATA_PATH, data={"bld": bld, **params})
        if response.content.strip() == b"LOGOUT":  # HTTP 400 (JSON), 200 (CSV OTP)
            self.logged_out += 1
            raise KrxLoggedOut(f"KRX {bld.rsplit('/', 1)[-1]}: LOGOUT")
        if response.status_code != 200:
            raise KrxProtocolError(f"KRX {bld}: HTTP {response.status_code}")
        try:
            answer: _Output[_Row] = msgspec.json.decode(
                response.content,
                type=_Output[row],  # type: ignore[valid-type]
            )
            raw = msgspec.json.decode(response.content, type=_Keys).output if keys else []
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise KrxProtocolError(f"KRX {bld}: not the portal's JSON ({exc})") from None
        missing = missing_keys(raw, keys)
        if missing:
            lacks = ", ".join(f"{key} ({n} of {len(raw)} rows)" for key, n in missing.items())
            raise KrxProtocolError(
                f"KRX {bld.rsplit('/', 1)[-1]}: the answer lacks {lacks} "
                "(the portal's columns changed)"
            )
        return answer.output

    # ------------------------------------------------------------------ the session

    async def login(self) -> None:
        """The three-step login; a new session replaces the old one.

        JSESSIONID, the login page, the form post, whose answer's ``_error_code`` says CD001
        (in), CD011 (logged in elsewhere: post again with ``skipDup=Y``, which ends the other
        session) or CD010 (the password must be changed).

        Raises
        ------
        KrxLoginError
            Any ``_error_code`` but CD001 (CD011 too when ``skip_duplicate`` is off).
        """
        self._cookies.clear()
        self._session_ns = None
        await self._send("GET", SESSION_PATH)
        await self._send("GET", LOGIN_PAGE_PATH, params={"site": "mdc"})
        form = {
            "mbrId": self._credentials.member_id.reveal(),
            "pw": self._credentials.password.reveal(),
            "mbrNm": "",
            "telNo": "",
            "di": "",
            "certType": "",
        }
        answer = await self._login_post(form)
        if answer.error_code == LOGIN_ELSEWHERE and self._skip_duplicate:
            log.info("KRX login: %s (logged in elsewhere), again with skipDup", LOGIN_ELSEWHERE)
            answer = await self._login_post(form | {"skipDup": "Y"})
        if answer.error_code != LOGIN_OK:
            raise KrxLoginError(answer.error_code or "none", answer.error_message)
        self.logins += 1
        self._session_ns = self._clock.now_ns()
        log.info("KRX login: %s", LOGIN_OK)

    async def _login_post(self, form: dict[str, str]) -> _LoginAnswer:
        response = await self._send("POST", LOGIN_PATH, data=form)
        if response.status_code != 200:
            raise KrxProtocolError(f"KRX login: HTTP {response.status_code}")
        try:
            return msgspec.json.decode(response.content, type=_LoginAnswer)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise KrxProtocolError("KRX login: the answer is not JSON") from None

    async def _ensure_session(self) -> None:
        async with self._login_lock:
            at = self._session_ns
            if at is None or self._clock.now_ns() - at >= self._ttl_ns:
                await self.login()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request with the portal's headers and the session's cookies; 5xx raised."""
        headers = dict(_HEADERS)
        if self._cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self._cookies.items())
        async with self._limiter:
            self.requests += 1
            try:
                response = await self._http.request(
                    method, path, data=data, params=params, headers=headers
                )
            except httpx.TimeoutException:
                raise KrxTransportError(f"KRX {path}: timed out") from None
            except httpx.HTTPError as exc:
                raise KrxTransportError(f"KRX {path}: {type(exc).__name__}") from None
        self._cookies.update(response.cookies.items())
        if response.status_code >= 500:
            raise KrxServerError(f"KRX {path}: HTTP {response.status_code}")
        return response


def open_krx(krx: KrxSettings, kis: KisSettings, clock: Clock) -> KrxClient:
    """The configured portal client (the simulator's with ``kis.environment = "sim"``).

    Raises
    ------
    ConfigError
        No KRX login configured (see `krx_credentials`).
    """
    base = kis.sim_url if kis.environment == "sim" else krx.url
    http = httpx.AsyncClient(
        base_url=base.rstrip("/"), timeout=httpx.Timeout(krx.timeout_s, connect=10.0)
    )
    rate = krx.calls_per_second
    burst = max(1, int(rate))
    return KrxClient(
        http,
        krx_credentials(krx, kis),
        clock,
        AsyncLimiter(burst, burst / rate),
        session_ttl_s=krx.session_ttl_s,
        attempts=krx.attempts,
        backoff_s=krx.backoff_s,
        backoff_cap_s=krx.backoff_cap_s,
        skip_duplicate=krx.skip_duplicate,
    )
