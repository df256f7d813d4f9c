"""The simulator's gateway: tokens, approval keys, app-key checks, rate limits, REST faults.

Rules as KIS enforces them (shared/reference/kis-api.md): tokens only for configured app
keys, issued at most once a minute per key (``EGW00133``; the same token again within 6 h),
expiring (``EGW00123``); the per-app-key call rate (``EGW00201`` as HTTP 500). The
``http_5xx``, ``rate_limited``, ``latency_s``, ``token_failures`` and ``rest_down`` faults are
applied here.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from harness.sim.config import Faults, SimConfig
from harness.sim.market import KST
from harness.sim.protocol import NS, fail, read_json, token_error
from observer.calendar.clock import Clock

__all__ = ["Gateway"]


@dataclass(slots=True)
class _Token:
    value: str
    app_key: str
    issued_ns: int
    expires_ns: int


class Gateway:
    """Who may call, how often, and what the gateway saw.

    Parameters
    ----------
    config:
        App keys and limits.
    clock:
        Simulated time (token issuance and expiry).
    faults:
        The injected faults, shared with the rest of the simulator.
    """

    def __init__(self, config: SimConfig, clock: Clock, faults: Faults) -> None:
        self.config = config
        self.clock = clock
        self.faults = faults
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, _Token] = {}  # app key -> its newest token
        self._last_request: dict[str, int] = {}  # app key -> when it last got one
        self._approvals: dict[str, str] = {}  # approval key -> app key
        self._window: dict[str, tuple[int, int]] = {}  # app key -> (wall second, calls)
        self.calls: defaultdict[str, int] = defaultdict(int)  # tr_id -> answered calls
        # tr_id -> calls refused as not offered on paper accounts (`SimConfig.paper`)
        self.paper_refused: defaultdict[str, int] = defaultdict(int)
        self.rate_limited = 0
        self.tokens_refused = 0  # token requests refused by `SimConfig.token_spacing_s`
        self._last_issue_wall = -math.inf  # monotonic: the last token request answered
        self.peak_per_second: dict[str, int] = {}  # app key -> most calls in one wall second

    def budget(self, app_key: str) -> int:
        """``app_key``'s REST calls a second: its kind's (`SimConfig.calls_per_second`)."""
        config = self.config
        per_second = config.paper_calls_per_second if config.paper else config.calls_per_second
        if app_key in config.new_keys:
            return min(per_second, config.new_key_calls_per_second)
        return per_second

    def expire_tokens(self) -> None:
        """Make every issued token expired (EGW00123 on next use)."""
        for token in self._tokens.values():
            token.expires_ns = self.clock.now_ns() - 1

    def approval_owner(self, approval_key: str) -> str | None:
        """The app key an approval key was issued to, or None if it was not issued."""
        return self._approvals.get(approval_key)

    def _known(self, app_key: str, secret: str) -> bool:
        keys = self.config.app_keys
        return bool(app_key) and (keys is None or keys.get(app_key) == secret)

    async def token(self, request: web.Request) -> web.Response:
        """``POST /oauth2/tokenP``: an access token, or KIS's refusal."""
        body = await read_json(request)
        app_key = str(body.get("appkey", ""))
        if body.get("grant_type") != "client_credentials" or not self._known(
            app_key, str(body.get("appsecret", ""))
        ):
            return token_error(403, "EGW00103", "유효하지 않은 AppKey입니다.")
        if self.faults.token_failures > 0:  # the gateway fails; no token is issued
            self.faults.token_failures -= 1
            return token_error(500, "EGW00002", "서버 에러가 발생했습니다.")
        wall = time.monotonic()
        if wall - self._last_issue_wall < self.config.token_spacing_s:
            self.tokens_refused += 1
            return token_error(500, "EGW00201", "초당 거래건수를 초과하였습니다.")
        now = self.clock.now_ns()
        asked = self._last_request.get(app_key)
        if asked is not None and now - asked < self.config.token_min_interval_s * NS:
            return token_error(403, "EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
        self._last_request[app_key] = now
        self._last_issue_wall = wall
        token = self._current.get(app_key)
        reuse_ns = self.config.same_token_within_s * NS
        if token is None or now - token.issued_ns >= reuse_ns or now >= token.expires_ns:
            token = _Token(
                secrets.token_urlsafe(48), app_key, now, now + self.config.token_ttl_s * NS
            )
            self._tokens[token.value] = token
            self._current[app_key] = token
        # else: KIS returns the same token when asked again within 6 h
        expires = datetime.fromtimestamp(token.expires_ns / NS, tz=KST)
        return web.json_response(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": max(0, (token.expires_ns - now) // NS),
                "access_token_token_expired": expires.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )

    async def approval(self, request: web.Request) -> web.Response:
        """``POST /oauth2/Approval``: a WebSocket approval key."""
        body = await read_json(request)
        app_key = str(body.get("appkey", ""))
        if not self._known(app_key, str(body.get("secretkey", ""))):
            return token_error(403, "EGW00103", "유효하지 않은 AppKey입니다.")
        key = secrets.token_hex(18)  # 36 characters, like KIS's
        self._approvals[key] = app_key
        return web.json_response({"approval_key": key})

    async def admit(self, request: web.Request) -> web.Response | None:
        """Delay a REST call by the injected latency; None if it may pass, else the refusal."""
        if self.clock.now_ns() < self.faults.rest_down_until and request.transport is not None:
            request.transport.abort()  # the `rest_down` fault: the host does not answer
            return web.Response(status=503)  # never reaches the client
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        _, failure = self._check_call(request)
        return failure

    def _check_call(self, request: web.Request) -> tuple[str, web.Response | None]:
        """The app key of a REST call, or the error answer KIS would give."""
        headers = request.headers
        app_key = headers.get("appkey", "")
        if not self._known(app_key, headers.get("appsecret", "")):
            return app_key, fail(500, "EGW00103", "유효하지 않은 AppKey입니다.")
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return app_key, fail(500, "EGW00205", "credentials_type이 유효하지 않습니다.(Bearer)")
        token = self._tokens.get(authorization.removeprefix("Bearer "))
        if token is None or token.app_key != app_key:
            return app_key, fail(500, "EGW00121", "유효하지 않은 token 입니다.")
        if self.clock.now_ns() >= token.expires_ns:
            return app_key, fail(500, "EGW00123", "기간이 만료된 token 입니다.")
        second = int(time.monotonic())
        window, calls = self._window.get(app_key, (second, 0))
        calls = calls + 1 if window == second else 1
        self._window[app_key] = (second, calls)
        self.peak_per_second[app_key] = max(self.peak_per_second.get(app_key, 0), calls)
        if calls > self.budget(app_key) or self.faults.rate_limited > 0:
            self.faults.rate_limited = max(0, self.faults.rate_limited - 1)
            self.rate_limited += 1
            return app_key, fail(500, "EGW00201", "초당 거래건수를 초과하였습니다.")
        if self.faults.http_5xx > 0:
            self.faults.http_5xx -= 1
            return app_key, fail(500, "EGW00002", "서버 에러가 발생했습니다.")
        return app_key, None
