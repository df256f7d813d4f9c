"""The simulator's server: KIS's REST gateway, real-time WebSocket and master-file host.

Written from shared/reference/kis-api.md (never from ``observer.kis``). Rules enforced as KIS
does: tokens only for configured app keys, issued at most once a minute per key
(``EGW00133``; the same token again within 6 h), expiring (``EGW00123``); the per-app-key call
rate (``EGW00201`` as HTTP 500); one WebSocket session per app key (``OPSP8996``); 41
registrations per session (``OPSP0008``); JSON ``PINGPONG`` keep-alives. Faults are injected
through `Faults` (from tests) or ``POST /_sim/faults`` (from the demo).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import secrets
import time
import typing
import zlib
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from operator import attrgetter
from typing import Any, Literal

from aiohttp import WSMsgType, web

from harness.sim.krx import krx_json
from harness.sim.market import (
    BARS_PER_DAY,
    KST,
    Listing,
    Market,
    Quote,
    bar_value,
    bars_value,
    quote_at,
    tick_size,
)
from harness.sim.masters import damaged, master_files
from observer.clock import Clock

__all__ = ["MASTER_DAMAGE", "Faults", "MasterDamage", "SimConfig", "Simulator"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000


@dataclass(slots=True)
class SimConfig:
    """What the simulator accepts and enforces."""

    app_keys: dict[str, str] | None = None  # key -> secret; None accepts any pair
    calls_per_second: int = 20  # per app key, wall-clock seconds (UNCONFIRMED at KIS)
    token_ttl_s: int = 86_400
    token_min_interval_s: int = 60
    same_token_within_s: int = 6 * 3600
    max_registrations: int = 41
    pingpong_s: float = 110.0  # clock seconds between keep-alives (UNCONFIRMED at KIS)
    push_interval_s: float = 0.05  # wall seconds between real-time pushes
    master_validators: bool = True  # ETag / Last-Modified on master files (UNCONFIRMED at KIS)


MasterDamage = Literal["truncated", "crc", "encoding", "columns", "empty", "short_body"]
MASTER_DAMAGE: tuple[MasterDamage, ...] = typing.get_args(MasterDamage)


@dataclass(slots=True)
class Faults:
    """Faults to inject; counters are consumed as requests arrive."""

    http_5xx: int = 0  # answer the next N REST calls with EGW00002 / HTTP 500
    rate_limited: int = 0  # answer the next N REST calls with EGW00201
    latency_s: float = 0.0  # added to every REST answer
    master_damage: dict[str, MasterDamage] = field(default_factory=dict)  # file name -> how
    delisted: set[str] = field(default_factory=set)  # symbols left out of the masters
    renamed: dict[str, str] = field(default_factory=dict)  # symbol -> new name
    new_listings: int = 0  # synthetic KOSDAQ listings added to the masters


@dataclass(slots=True)
class _Token:
    value: str
    app_key: str
    issued_ns: int
    expires_ns: int


def _envelope(rt_cd: str, msg_cd: str, msg1: str, **outputs: Any) -> dict[str, Any]:
    return {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1, **outputs}


_OK = ("0", "MCA00000", "정상처리 되었습니다.")


class Simulator:
    """The aiohttp application and the state behind it.

    Parameters
    ----------
    market:
        The synthetic market it serves.
    clock:
        Simulated time shared with the observer processes.
    config:
        Rules and limits.
    """

    def __init__(self, market: Market, clock: Clock, config: SimConfig | None = None) -> None:
        self.market = market
        self.clock = clock
        self.config = config or SimConfig()
        market.sessions  # noqa: B018 - load the calendar now, not in the first answer (~2 s)
        self.faults = Faults()
        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, _Token] = {}  # app key -> its newest token
        self._last_request: dict[str, int] = {}  # app key -> when it last got one
        self._approvals: dict[str, str] = {}  # approval key -> app key
        self._window: dict[str, tuple[int, int]] = {}  # app key -> (wall second, calls)
        self._sessions: dict[str, web.WebSocketResponse] = {}  # app key -> live session
        self.calls: defaultdict[str, int] = defaultdict(int)  # tr_id -> answered calls
        self.records_sent: defaultdict[str, int] = defaultdict(int)  # tr_id -> pushed records
        self._masters: tuple[object, dict[str, tuple[bytes, str]]] | None = None
        self._fresh_codes: list[str] = []  # codes of synthetic new listings, in order
        self.rate_limited = 0
        self.peak_per_second: dict[str, int] = {}  # app key -> most calls in one wall second
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/oauth2/tokenP", self._token),
                web.post("/oauth2/Approval", self._approval),
                web.get("/uapi/{path:.*}", self._rest),
                web.get("/", self._websocket),
                web.get("/tryitout", self._websocket),
                web.get("/tryitout/{tr_id}", self._websocket),
                web.get("/common/master/{name}", self._master),  # HEAD comes with GET
                web.post("/comm/bldAttendant/getJsonData.cmd", self._krx),
                web.post("/_sim/faults", self._set_faults),
                web.post("/_sim/drop_websockets", self._drop_websockets),
                web.post("/_sim/expire_tokens", self._expire_tokens),
                web.post("/_sim/listing_changes", self._listing_changes),
                web.get("/_sim/stats", self._stats),
            ]
        )

    # ------------------------------------------------------------------ fault control

    async def drop_websockets(self) -> int:
        """Close every live WebSocket session without a close handshake; return how many."""
        sessions = list(self._sessions.values())
        for ws in sessions:
            if ws._writer is not None:  # abort the transport like a network cut
                ws._writer.transport.abort()
        return len(sessions)

    def expire_tokens(self) -> None:
        """Make every issued token expired (EGW00123 on next use)."""
        for token in self._tokens.values():
            token.expires_ns = self.clock.now_ns() - 1

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("http_5xx", "rate_limited", "latency_s"):
            if name in body:
                setattr(self.faults, name, body[name])
        damage = dict(body.get("master_damage", {}))
        if not set(damage.values()) <= set(MASTER_DAMAGE):
            return web.json_response({"ok": False, "known": MASTER_DAMAGE}, status=400)
        self.faults.master_damage |= damage
        self.faults.delisted |= set(body.get("delisted", []))
        self.faults.renamed |= dict(body.get("renamed", {}))
        self.faults.new_listings += int(body.get("new_listings", 0))
        return web.json_response({"ok": True})

    async def _drop_websockets(self, request: web.Request) -> web.Response:
        return web.json_response({"dropped": await self.drop_websockets()})

    async def _expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"ok": True})

    def change_listings(self, new: int = 0, delist: int = 0, rename: int = 0) -> dict[str, Any]:
        """Evolve the masters as a real day does: listings, delistings and renames.

        Delistings come from KOSDAQ and renames from KOSPI stocks, synthetic ones only, in
        code order, so the same calls always pick the same symbols. Returns what changed.
        """
        f = self.faults

        def stocks(market: str) -> list[str]:
            return sorted(
                s
                for s, x in self.market.listings.items()
                if x.market == market and x.group == "ST" and not x.known
                and s not in f.delisted and s not in f.renamed
            )  # fmt: skip

        gone = stocks("KOSDAQ")[:delist]
        renamed = {s: f"{self.market.listings[s].name}홀딩스" for s in stocks("KOSPI")[:rename]}
        f.delisted |= set(gone)
        f.renamed |= renamed
        f.new_listings += new
        listed = [self._new_listing(n).symbol for n in range(f.new_listings - new, f.new_listings)]
        return {"new": listed, "delisted": gone, "renamed": renamed}

    async def _stats(self, request: web.Request) -> web.Response:
        """What the gateway saw: calls and real-time records per TR, EGW00201s, busiest seconds."""
        peaks = sorted(self.peak_per_second.values(), reverse=True)
        return web.json_response(
            {
                "calls": dict(self.calls),
                "rate_limited": self.rate_limited,
                "peak_per_second": peaks,  # per app key, busiest first (keys are not shown)
                "limit_per_second": self.config.calls_per_second,
                "records_sent": {k: v for k, v in self.records_sent.items() if v},  # per tr_id
            }
        )

    async def _listing_changes(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(
            self.change_listings(
                int(body.get("new", 0)), int(body.get("delist", 0)), int(body.get("rename", 0))
            )
        )

    # ------------------------------------------------------------------ auth

    def _known(self, app_key: str, secret: str) -> bool:
        keys = self.config.app_keys
        return bool(app_key) and (keys is None or keys.get(app_key) == secret)

    async def _token(self, request: web.Request) -> web.Response:
        body = await _json(request)
        app_key = str(body.get("appkey", ""))
        if body.get("grant_type") != "client_credentials" or not self._known(
            app_key, str(body.get("appsecret", ""))
        ):
            return _token_error(403, "EGW00103", "유효하지 않은 AppKey입니다.")
        now = self.clock.now_ns()
        asked = self._last_request.get(app_key)
        if asked is not None and now - asked < self.config.token_min_interval_s * _NS:
            return _token_error(403, "EGW00133", "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)")
        self._last_request[app_key] = now
        token = self._current.get(app_key)
        reuse_ns = self.config.same_token_within_s * _NS
        if token is None or now - token.issued_ns >= reuse_ns or now >= token.expires_ns:
            token = _Token(
                secrets.token_urlsafe(48), app_key, now, now + self.config.token_ttl_s * _NS
            )
            self._tokens[token.value] = token
            self._current[app_key] = token
        # else: KIS returns the same token when asked again within 6 h
        expires = datetime.fromtimestamp(token.expires_ns / _NS, tz=KST)
        return web.json_response(
            {
                "access_token": token.value,
                "token_type": "Bearer",
                "expires_in": max(0, (token.expires_ns - now) // _NS),
                "access_token_token_expired": expires.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )

    async def _approval(self, request: web.Request) -> web.Response:
        body = await _json(request)
        app_key = str(body.get("appkey", ""))
        if not self._known(app_key, str(body.get("secretkey", ""))):
            return _token_error(403, "EGW00103", "유효하지 않은 AppKey입니다.")
        key = secrets.token_hex(18)  # 36 characters, like KIS's
        self._approvals[key] = app_key
        return web.json_response({"approval_key": key})

    def _check_call(self, request: web.Request) -> tuple[str, web.Response | None]:
        """The app key of a REST call, or the error answer KIS would give."""
        headers = request.headers
        app_key = headers.get("appkey", "")
        if not self._known(app_key, headers.get("appsecret", "")):
            return app_key, _fail(500, "EGW00103", "유효하지 않은 AppKey입니다.")
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return app_key, _fail(500, "EGW00205", "credentials_type이 유효하지 않습니다.(Bearer)")
        token = self._tokens.get(authorization.removeprefix("Bearer "))
        if token is None or token.app_key != app_key:
            return app_key, _fail(500, "EGW00121", "유효하지 않은 token 입니다.")
        if self.clock.now_ns() >= token.expires_ns:
            return app_key, _fail(500, "EGW00123", "기간이 만료된 token 입니다.")
        second = int(time.monotonic())
        window, calls = self._window.get(app_key, (second, 0))
        calls = calls + 1 if window == second else 1
        self._window[app_key] = (second, calls)
        self.peak_per_second[app_key] = max(self.peak_per_second.get(app_key, 0), calls)
        if calls > self.config.calls_per_second or self.faults.rate_limited > 0:
            self.faults.rate_limited = max(0, self.faults.rate_limited - 1)
            self.rate_limited += 1
            return app_key, _fail(500, "EGW00201", "초당 거래건수를 초과하였습니다.")
        if self.faults.http_5xx > 0:
            self.faults.http_5xx -= 1
            return app_key, _fail(500, "EGW00002", "서버 에러가 발생했습니다.")
        return app_key, None

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.Response:
        if self.faults.latency_s:
            await asyncio.sleep(self.faults.latency_s)
        _, failure = self._check_call(request)
        if failure is not None:
            return failure
        tr_id = request.headers.get("tr_id", "")
        handler = _ROUTES.get((request.match_info["path"], tr_id))
        if handler is None:
            return _fail(500, "OPSQ0002", "없는 서비스 코드 입니다")
        self.calls[tr_id] += 1
        try:
            return handler(self, request.query)
        except KeyError:
            return web.json_response(_envelope("7", "KIOK0560", "조회할 자료가 없습니다"))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ns() / _NS, tz=KST)

    def _session_day(self, now: datetime) -> date:
        """Today if it is a session and the open has passed, else the last session."""
        today = now.date()
        calendar = self.market.calendar
        if calendar.is_session(today) and now.hour >= 9:
            return today
        return calendar.previous_session(today)

    def inquire_price(self, query: Any) -> web.Response:
        """FHKST01010100 (§4.1)."""
        symbol = query.get("FID_INPUT_ISCD", "")
        listing = self.market.listings.get(symbol)
        if listing is None:
            return web.json_response(_envelope(*_OK, output={"stck_prpr": "0"}))
        _, q = self._latest_quote(symbol)
        change = q.price - q.prev_close
        output = {
            "stck_prpr": str(q.price), "prdy_vrss": str(change),
            "prdy_vrss_sign": _sign(change), "prdy_ctrt": f"{change * 100 / q.prev_close:.2f}",
            "acml_vol": str(q.volume), "acml_tr_pbmn": str(q.value), "stck_oprc": str(q.open),
            "stck_hgpr": str(q.high), "stck_lwpr": str(q.low),
            "stck_mxpr": str(_limit(q.prev_close, 1.3)),
            "stck_llam": str(_limit(q.prev_close, 0.7)), "stck_sdpr": str(q.prev_close),
            "hts_avls": str(listing.listed_shares * q.price // 100_000_000),
            "lstn_stcn": str(listing.listed_shares),
            "temp_stop_yn": "Y" if listing.suspended else "N",
            "iscd_stat_cls_code": "58" if listing.suspended else "55",
            "mang_issu_cls_code": "Y" if listing.administrative else "N",
            "rprs_mrkt_kor_name": listing.market, "stck_shrn_iscd": symbol,
        }  # fmt: skip
        return web.json_response(_envelope(*_OK, output=output))

    def _bar_rows(self, symbol: str, day: date, until: str, limit: int) -> list[dict[str, str]]:
        path = self.market.day_path(symbol, day)
        now = self._now()
        last = BARS_PER_DAY - 1
        if day == now.date():
            last = min(last, now.hour * 60 + now.minute - 9 * 60)
        upto = min(last, int(until[:2]) * 60 + int(until[2:4]) - 9 * 60)
        rows = []
        cumulative = bars_value(path, upto + 1)
        for index in range(upto, max(-1, upto - limit), -1):
            start = path.bar_start(index)
            rows.append({
                "stck_bsop_date": day.strftime("%Y%m%d"),
                "stck_cntg_hour": start.strftime("%H%M00"), "stck_prpr": str(path.close[index]),
                "stck_oprc": str(path.open[index]),
                "stck_hgpr": str(path.high[index]), "stck_lwpr": str(path.low[index]),
                "cntg_vol": str(path.volume[index]), "acml_tr_pbmn": str(cumulative),
            })  # fmt: skip
            cumulative -= bar_value(path, index)
        return rows

    def _chart_summary(self, symbol: str, q: Quote) -> dict[str, str]:
        """The minute charts' ``output1`` (§4.3a): the issue as it stands when asked."""
        change = q.price - q.prev_close
        return {
            "prdy_vrss": str(change), "prdy_vrss_sign": _sign(change),
            "prdy_ctrt": f"{change * 100 / q.prev_close:.2f}", "stck_prdy_clpr": str(q.prev_close),
            "acml_vol": str(q.volume), "acml_tr_pbmn": str(q.value),
            "hts_kor_isnm": self.market.listings[symbol].name, "stck_prpr": str(q.price),
        }  # fmt: skip

    def minute_bars_today(self, query: Any) -> web.Response:
        """FHKST03010200 (§4.3a): today only, 30 rows, newest first, and today's summary."""
        symbol = query["FID_INPUT_ISCD"]
        now = self._now()
        rows = self._bar_rows(symbol, now.date(), query.get("FID_INPUT_HOUR_1", "153000"), 30)
        summary = self._chart_summary(symbol, quote_at(self.market, symbol, now))
        return web.json_response(_envelope(*_OK, output1=summary, output2=rows))

    def minute_bars_past(self, query: Any) -> web.Response:
        """FHKST03010230 (§4.3b): any past day, 120 rows, newest first; the latest summary."""
        symbol = query["FID_INPUT_ISCD"]
        raw = query.get("FID_INPUT_DATE_1", "")
        day = date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
        rows = self._bar_rows(symbol, day, query.get("FID_INPUT_HOUR_1", "153000"), 120)
        summary = self._chart_summary(symbol, self._latest_quote(symbol)[1])
        return web.json_response(_envelope(*_OK, output1=summary, output2=rows))

    def _daily_rows(self, symbol: str, start: date, end: date, limit: int) -> list[dict[str, str]]:
        """Daily bars, newest first; today's row (during a session) is the day so far."""
        rows: list[dict[str, str]] = []
        now = self._now()
        day = min(end, self._session_day(now))
        calendar = self.market.calendar
        if not calendar.is_session(day):
            day = calendar.previous_session(day)
        while day >= start and len(rows) < limit:
            if day == now.date():
                q = quote_at(self.market, symbol, now)
                bar = (q.price, q.open, q.high, q.low, q.volume, q.value, q.prev_close)
            else:
                path = self.market.day_path(symbol, day)
                value = bars_value(path, BARS_PER_DAY)
                bar = (
                    path.day_close,
                    path.day_open,
                    int(path.high.max()),
                    int(path.low.min()),
                    int(path.volume.sum()),
                    value,
                    path.prev_close,
                )
            close, open_, high, low, volume, value, prev_close = bar
            rows.append({
                "stck_bsop_date": day.strftime("%Y%m%d"), "stck_clpr": str(close),
                "stck_oprc": str(open_), "stck_hgpr": str(high), "stck_lwpr": str(low),
                "acml_vol": str(volume), "acml_tr_pbmn": str(value),
                "prdy_vrss": str(close - prev_close), "prdy_vrss_sign": _sign(close - prev_close),
            })  # fmt: skip
            day = calendar.previous_session(day)
        return rows

    def daily_chart(self, query: Any) -> web.Response:
        """FHKST03010100 (§4.2): daily bars between two dates, 100 rows, newest first."""
        start, end = (_date(query[k]) for k in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"))
        rows = self._daily_rows(query["FID_INPUT_ISCD"], start, end, 100)
        return web.json_response(_envelope(*_OK, output1={}, output2=rows))

    def daily_price(self, query: Any) -> web.Response:
        """FHKST01010400 (§4.4): the most recent 30 days, no paging."""
        rows = self._daily_rows(query["FID_INPUT_ISCD"], date(2000, 1, 1), date(9999, 1, 1), 30)
        return web.json_response(_envelope(*_OK, output=rows))

    def _latest_quote(self, symbol: str) -> tuple[date, Quote]:
        """The session day and quote: now during a session, else the last session's close."""
        now = self._now()
        day = self._session_day(now)
        at = now if day == now.date() else datetime.combine(day, _SESSION_END, tzinfo=KST)
        return day, quote_at(self.market, symbol, at)

    def _etf(self, query: Any) -> tuple[str, date, Quote]:
        symbol = query.get("FID_INPUT_ISCD", "")
        if self.market.listings[symbol].group != "EF":
            raise KeyError(symbol)
        day, quote = self._latest_quote(symbol)
        return symbol, day, quote

    def etf_price(self, query: Any) -> web.Response:
        """FHPST02400000 (§4.5): price, NAV, premium (dprt), net assets (억 KRW, assumed)."""
        symbol, day, q = self._etf(query)
        listing = self.market.listings[symbol]
        premium = self.market.etf_premium(symbol, day)
        nav = q.price / (1 + premium)
        prev_nav = q.prev_close / (
            1 + self.market.etf_premium(symbol, self.market.calendar.previous_session(day))
        )
        output = {
            "stck_prpr": str(q.price), "stck_prdy_clpr": str(q.prev_close),
            "prdy_vrss": str(q.price - q.prev_close),
            "prdy_ctrt": f"{(q.price / q.prev_close - 1) * 100:.2f}",
            "acml_vol": str(q.volume), "nav": f"{nav:.2f}", "prdy_last_nav": f"{prev_nav:.2f}",
            "trc_errt": f"{abs(premium) * 50:.2f}", "dprt": f"{premium * 100:.2f}",
            "etf_ntas_ttam": str(int(listing.listed_shares * nav / 100_000_000)),
            "etf_cnfg_issu_cnt": str(len(self.market.components(symbol))),
            "lstn_stcn": str(listing.listed_shares),
            "stck_lstn_date": listing.listed_on.strftime("%Y%m%d"),
        }  # fmt: skip
        return web.json_response(_envelope(*_OK, output=output))

    def etf_nav_daily(self, query: Any) -> web.Response:
        """FHPST02440200 (§4.6): daily close and NAV, 100 rows, newest first."""
        symbol = query["FID_INPUT_ISCD"]
        if self.market.listings[symbol].group != "EF":
            raise KeyError(symbol)
        start, end = (_date(query[k]) for k in ("FID_INPUT_DATE_1", "FID_INPUT_DATE_2"))
        rows = []
        for row in self._daily_rows(symbol, start, end, 100):
            premium = self.market.etf_premium(symbol, _date(row["stck_bsop_date"]))
            close = int(row["stck_clpr"])
            rows.append(
                {
                    "stck_bsop_date": row["stck_bsop_date"],
                    "stck_clpr": row["stck_clpr"],
                    "nav": f"{close / (1 + premium):.2f}",
                    "dprt": f"{premium * 100:.2f}",
                }
            )
        return web.json_response(_envelope(*_OK, output=rows))

    def etf_components(self, query: Any) -> web.Response:
        """FHKST121600C0 (§4.7): summary and constituents with weights."""
        symbol, day, q = self._etf(query)
        parts = self.market.components(symbol)
        nav = q.price / (1 + self.market.etf_premium(symbol, day))
        shares = self.market.listings[symbol].listed_shares
        summary = {
            "stck_prpr": str(q.price),
            "nav": f"{nav:.2f}",
            "etf_ntas_ttam": str(int(shares * nav / 100_000_000)),
            "etf_cnfg_issu_cnt": str(len(parts)),
        }
        rows = [{"stck_shrn_iscd": s, "hts_kor_isnm": self.market.listings[s].name,
                 "etf_cnfg_issu_rlim": f"{w:.2f}"} for s, w in parts]  # fmt: skip
        return web.json_response(_envelope(*_OK, output1=summary, output2=rows))

    def overseas_price(self, query: Any) -> web.Response:
        """HHDFS00000300 (§4.8a); an unknown symbol answers success with an empty ``last``."""
        exchange, symbol = query.get("EXCD", ""), query.get("SYMB", "")
        known = any(
            x.exchange == exchange and x.symbol == symbol
            for rows in self.market.overseas.values()
            for x in rows
        )
        if not known:
            return web.json_response(_envelope(*_OK, output={"rsym": "", "last": ""}))
        last, base, volume = self.market.overseas_quote(exchange, symbol, self._now().date())
        output = {
            "rsym": f"D{exchange}{symbol}", "zdiv": "4", "base": f"{base:.4f}", "pvol": "0",
            "last": f"{last:.4f}", "sign": _sign(int((last - base) * 10_000)),
            "diff": f"{last - base:.4f}", "rate": f"{(last / base - 1) * 100:.2f}",
            "tvol": str(volume), "tamt": str(int(volume * last)), "ordy": "매수가능",
        }  # fmt: skip
        return web.json_response(_envelope(*_OK, output=output))

    async def _krx(self, request: web.Request) -> web.Response:
        return await krx_json(self.market, self._now(), request)

    def overseas_info(self, query: Any) -> web.Response:
        """CTPF1702R (§4.9); an unknown product answers rt_cd 7, "no data"."""
        exchange = _PRODUCT_EXCHANGES.get(query.get("PRDT_TYPE_CD", ""), "")
        symbol = query.get("PDNO", "")
        row = next(
            (x for rows in self.market.overseas.values() for x in rows
             if x.exchange == exchange and x.symbol == symbol),
            None,
        )  # fmt: skip
        if row is None:
            raise KeyError(symbol)
        output = {
            "std_pdno": f"US{zlib.crc32(symbol.encode()):010d}" if row.currency == "USD" else "",
            "prdt_eng_name": row.name_en, "prdt_name": row.name, "natn_cd": row.currency[:2],
            "ovrs_excg_cd": row.exchange, "tr_crcy_cd": row.currency,
            "prdt_clsf_cd": row.industry_code, "prdt_clsf_name": f"업종{row.industry_code}",
            "lstg_stck_num": "100000000", "lstg_dt": "20100104",
            "ovrs_stck_tr_stop_dvsn_cd": "01", "lstg_abol_item_yn": "N",
        }  # fmt: skip
        return web.json_response(_envelope(*_OK, output=output))

    # ------------------------------------------------------------------ master files

    def _master_files(self) -> dict[str, tuple[bytes, str]]:
        """Today's archives and when each last changed, rebuilt when the day or listings do."""
        day = self._session_day(self._now())
        f = self.faults
        key = (day, frozenset(f.delisted), tuple(sorted(f.renamed.items())), f.new_listings)
        if self._masters is None or self._masters[0] != key:
            prices = {s: self.market.close(s, day) for s in self.market.listings}
            listed = [self._new_listing(n) for n in range(f.new_listings)]
            files = master_files(
                self.market, prices, delisted=f.delisted, renamed=f.renamed, listed=listed
            )
            previous = self._masters[1] if self._masters else {}
            stamp = self._now().astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
            self._masters = (
                key,
                {
                    name: (
                        data,
                        previous[name][1] if previous.get(name, (b"",))[0] == data else stamp,
                    )
                    for name, data in files.items()
                },
            )
        return self._masters[1]

    def _new_listing(self, n: int) -> Listing:
        """The ``n``-th synthetic new listing: codes from 990000 up, skipping listed ones."""
        while len(self._fresh_codes) <= n:
            number = int(self._fresh_codes[-1]) + 10 if self._fresh_codes else 990000
            while f"{number:06d}" in self.market.listings:
                number += 10
            self._fresh_codes.append(f"{number:06d}")
        code = self._fresh_codes[n]
        # The first synthetic KOSDAQ stock lends its traits (a real one only if there is none).
        template = min(
            self.market.listings.values(),
            key=lambda x: (x.market != "KOSDAQ", x.group != "ST", x.known),
        )
        return replace(template, symbol=code, isin=f"KR7{code}009", name=f"신규상장{n + 1}",
                       market="KOSDAQ", group="ST", known=False)  # fmt: skip

    async def _master(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self._master_files():
            return web.Response(status=404)
        data, modified = self._master_files()[name]
        damage = self.faults.master_damage.get(name)
        if damage is not None:
            data = damaged(data, name.removesuffix(".zip"), damage)
        headers = {"Content-Length": str(len(data)), "Content-Type": "application/zip"}
        if self.config.master_validators:
            headers["ETag"] = f'"{hashlib.sha256(data).hexdigest()[:20]}"'
            headers["Last-Modified"] = modified
        if request.method == "HEAD":
            return web.Response(headers=headers)
        if damage == "short_body":  # announces the whole file, sends half, hangs up
            response = web.StreamResponse(headers=headers)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=data, headers=headers)

    # ------------------------------------------------------------------ WebSocket

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        # No per-message deflate: on loopback it only costs CPU on both ends (KIS's own
        # server does not document it either).
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        app_key: str | None = None
        held: set[tuple[str, str]] = set()
        pusher: asyncio.Task[None] | None = None
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(message.data)
                    header, data = body["header"], body.get("body", {}).get("input", {})
                except (ValueError, KeyError, AttributeError):
                    await ws.send_json(
                        _control(
                            "", "", "9", "OPSP9999", "JSON PARSING ERROR : invalid json format"
                        )
                    )
                    continue
                if header.get("tr_id") == "PINGPONG":
                    continue  # the client's echo of our keep-alive
                tr_id, tr_key = data.get("tr_id", ""), data.get("tr_key", "")
                owner = self._approvals.get(header.get("approval_key", ""))
                if owner is None:
                    await ws.send_json(_control(tr_id, tr_key, "9", "OPSP9993", "INVALID appkey"))
                    continue
                if app_key is None:
                    if owner in self._sessions:
                        await ws.send_json(
                            _control("(null)", "", "9", "OPSP8996", "ALREADY IN USE appkey")
                        )
                        await ws.close()
                        break
                    app_key = owner
                    self._sessions[app_key] = ws
                    pusher = asyncio.create_task(self._push(ws, held))
                pair = (tr_id, tr_key)
                if header.get("tr_type") == "2":
                    if pair in held:
                        held.discard(pair)
                        await ws.send_json(
                            _control(tr_id, tr_key, "0", "OPSP0001", "UNSUBSCRIBE SUCCESS")
                        )
                    else:
                        await ws.send_json(
                            _control(
                                tr_id, tr_key, "1", "OPSP0003", "UNSUBSCRIBE ERROR(not found!)"
                            )
                        )
                elif tr_id not in ("H0STCNT0", "H0STASP0"):
                    await ws.send_json(
                        _control(tr_id, tr_key, "9", "OPSP8991", "SUBSCRIBE ERROR : invalid tr_id")
                    )
                elif tr_key not in self.market.listings:
                    await ws.send_json(
                        _control(tr_id, tr_key, "9", "OPSP8992", "SUBSCRIBE ERROR : invalid tr_key")
                    )
                elif pair in held:
                    await ws.send_json(
                        _control(tr_id, tr_key, "1", "OPSP0002", "ALREADY IN SUBSCRIBE")
                    )
                elif len(held) >= self.config.max_registrations:
                    await ws.send_json(
                        _control(tr_id, tr_key, "1", "OPSP0008", "MAX SUBSCRIBE OVER")
                    )
                else:
                    held.add(pair)
                    answer = _control(tr_id, tr_key, "0", "OPSP0000", "SUBSCRIBE SUCCESS")
                    answer["body"]["output"] = {
                        "iv": secrets.token_hex(8),
                        "key": secrets.token_hex(16),
                    }
                    await ws.send_json(answer)
        finally:
            if pusher is not None:
                pusher.cancel()
            if app_key is not None and self._sessions.get(app_key) is ws:
                del self._sessions[app_key]
        return ws

    async def _push(self, ws: web.WebSocketResponse, held: set[tuple[str, str]]) -> None:
        """Send each registered symbol's trades (and books) as their simulated time passes."""
        sent_until = self.clock.now_ns()
        next_ping = sent_until + int(self.config.pingpong_s * _NS)
        state: dict[str, _Running] = {}
        while not ws.closed:
            await asyncio.sleep(self.config.push_interval_s)
            now = self.clock.now_ns()
            frames: list[tuple[str, str, int]] = []  # (frame, tr_id, records)
            for tr_id, symbol in sorted(held):
                await asyncio.sleep(0)  # REST answers wait for one symbol, not for them all
                if (tr_id, symbol) not in held:  # released meanwhile
                    continue
                records = self._records(tr_id, symbol, sent_until, now, state)
                for start in range(0, len(records), 10):  # several records per frame
                    chunk = records[start : start + 10]
                    frames.append(
                        (f"0|{tr_id}|{len(chunk):03d}|{'^'.join(chunk)}", tr_id, len(chunk))
                    )
            sent_until = now
            if now >= next_ping:
                next_ping = now + int(self.config.pingpong_s * _NS)
                stamp = datetime.fromtimestamp(now / _NS, tz=KST).strftime("%Y%m%d%H%M%S")
                ping = json.dumps({"header": {"tr_id": "PINGPONG", "datetime": stamp}})
                frames.append((ping, "PINGPONG", 0))
            for frame, tr_id, count in frames:
                if _cut(ws):  # a dropped session's frames are not "sent"
                    return
                try:
                    await ws.send_str(frame)
                except (ConnectionResetError, RuntimeError):
                    return
                self.records_sent[tr_id] += count

    def _records(
        self, tr_id: str, symbol: str, after_ns: int, until_ns: int, state: dict[str, _Running]
    ) -> list[str]:
        start = datetime.fromtimestamp(after_ns / _NS, tz=KST)
        end = datetime.fromtimestamp(until_ns / _NS, tz=KST)
        day = end.date()
        if start.date() != day or not self.market.calendar.is_session(day):
            return []
        first = max(0, (start.hour * 60 + start.minute) - 9 * 60)
        last = min(BARS_PER_DAY - 1, (end.hour * 60 + end.minute) - 9 * 60)
        if last < 0 or first >= BARS_PER_DAY:
            return []
        running = state.get(symbol)
        if running is None:
            q = quote_at(self.market, symbol, start)
            running = state[symbol] = _Running(
                q.prev_close, q.open, q.high, q.low, q.volume, q.value
            )
        path = self.market.day_path(symbol, day)
        records = []
        for index in range(first, last + 1):
            bar = path.bar_start(index)
            ticks = self.market.ticks(symbol, day, index)
            # Only the ticks after ``start`` up to ``end`` (a busy minute holds 400 of them):
            # seconds into the bar, compared as `quote_at` does.
            after = bisect.bisect_right(ticks, (start - bar).total_seconds(), key=_second)
            upto = bisect.bisect_right(ticks, (end - bar).total_seconds(), key=_second)
            for tick in ticks[after:upto]:
                at = bar + timedelta(seconds=tick.second)
                running.add(tick.price, tick.qty)
                hhmmss = at.strftime("%H%M%S")
                if tr_id == "H0STCNT0":
                    records.append(
                        _trade_record(symbol, hhmmss, day, tick.price, tick.qty, running)
                    )
                else:
                    records.append(_book_record(symbol, hhmmss, tick.price, running))
        return records


def _cut(ws: web.WebSocketResponse) -> bool:
    """True once the session is closed or its connection aborted (`drop_websockets`)."""
    writer = ws._writer
    return ws.closed or writer is None or writer.transport.is_closing()


@dataclass(slots=True)
class _Running:
    """A symbol's day so far, as the real-time stream reports it."""

    prev_close: int
    open: int
    high: int
    low: int
    volume: int
    value: int

    def add(self, price: int, qty: int) -> None:
        self.open = self.open or price
        self.high = max(self.high, price)
        self.low = min(self.low, price) if self.low else price
        self.volume += qty
        self.value += price * qty


def _trade_record(symbol: str, hhmmss: str, day: date, price: int, qty: int, r: _Running) -> str:
    """One H0STCNT0 record: 46 fields in the order of §5.6."""
    change = price - r.prev_close
    unit = tick_size(price)
    fields = [
        symbol, hhmmss, str(price), _sign(change), str(change),
        f"{change * 100 / r.prev_close:.2f}", f"{r.value / max(r.volume, 1):.2f}", str(r.open),
        str(r.high), str(r.low), str(price + unit), str(price), str(qty), str(r.volume),
        str(r.value), "0", "0", "0", "100.00", "0", "0", "1", "50.00", "100.00", "090000", "3",
        "0", "090000", "3", "0", "090000", "3", "0", day.strftime("%Y%m%d"), "20", "N", "100",
        "100", "10000", "10000", "0.10", "0", "0.00", "0", "0", "0",
    ]  # fmt: skip
    return "^".join(fields)


def _book_record(symbol: str, hhmmss: str, price: int, r: _Running) -> str:
    """One H0STASP0 record: 59 fields in the order of §5.7."""
    unit = tick_size(price)
    asks = [str(price + unit * (i + 1)) for i in range(10)]
    bids = [str(max(unit, price - unit * i)) for i in range(10)]
    qtys = [str(100 * (i + 1)) for i in range(10)]
    tail = ["5500", "5500", "0", "0", "0", "0", "0", "0", "3", "0.00", str(r.volume), "0", "0",
            "0", "0", "0"]  # fmt: skip
    return "^".join([symbol, hhmmss, "0", *asks, *bids, *qtys, *qtys, *tail])


def _control(tr_id: str, tr_key: str, rt_cd: str, msg_cd: str, msg1: str) -> dict[str, Any]:
    return {
        "header": {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"},
        "body": {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1},
    }


def _fail(status: int, msg_cd: str, msg1: str) -> web.Response:
    return web.json_response(_envelope("1", msg_cd, msg1), status=status)


def _token_error(status: int, code: str, description: str) -> web.Response:
    return web.json_response({"error_code": code, "error_description": description}, status=status)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _sign(change: int) -> str:
    return "2" if change > 0 else "5" if change < 0 else "3"


def _limit(prev_close: int, factor: float) -> int:
    unit = tick_size(int(prev_close * factor))
    return int(prev_close * factor) // unit * unit


_SESSION_END = dtime(15, 30, 59)
_second = attrgetter("second")

# CTPF1702R product type code -> exchange code (§4.9), as the simulator reads it.
_PRODUCT_EXCHANGES = {
    "512": "NAS", "513": "NYS", "529": "AMS", "515": "TSE", "501": "HKS", "507": "HNX",
    "508": "HSX", "551": "SHS", "552": "SZS",
}  # fmt: skip


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


_ROUTES = {
    ("domestic-stock/v1/quotations/inquire-price", "FHKST01010100"): Simulator.inquire_price,
    ("domestic-stock/v1/quotations/inquire-time-itemchartprice", "FHKST03010200"):
        Simulator.minute_bars_today,
    ("domestic-stock/v1/quotations/inquire-time-dailychartprice", "FHKST03010230"):
        Simulator.minute_bars_past,
    ("domestic-stock/v1/quotations/inquire-daily-itemchartprice", "FHKST03010100"):
        Simulator.daily_chart,
    ("domestic-stock/v1/quotations/inquire-daily-price", "FHKST01010400"): Simulator.daily_price,
    ("etfetn/v1/quotations/inquire-price", "FHPST02400000"): Simulator.etf_price,
    ("etfetn/v1/quotations/nav-comparison-daily-trend", "FHPST02440200"): Simulator.etf_nav_daily,
    ("etfetn/v1/quotations/inquire-component-stock-price", "FHKST121600C0"):
        Simulator.etf_components,
    ("overseas-price/v1/quotations/price", "HHDFS00000300"): Simulator.overseas_price,
    ("overseas-price/v1/quotations/search-info", "CTPF1702R"): Simulator.overseas_info,
}  # fmt: skip
