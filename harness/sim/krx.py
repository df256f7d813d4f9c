"""The KRX data portal: its login, its sessions and the ETF screens, as pykrx meets them.

`Krx` serves the three-step login, the data endpoint (MDCSTAT04601, every listed ETF, and
MDCSTAT04301, every ETF on a day) to live sessions only, and the portal's faults, after
shared/reference/krx-etf-and-metadata.md §1.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime

from aiohttp import web

from harness.sim.config import Faults, SimConfig
from harness.sim.etf import etf_day, multiple_label, nav_published, units
from harness.sim.market import Listing, Market
from harness.sim.protocol import NS, now_kst
from observer.calendar.clock import Clock

__all__ = ["ETF_DAILY_BLD", "ETF_LIST_BLD", "Krx", "etf_daily_rows", "etf_list_rows"]

ETF_LIST_BLD = "dbms/MDC/STAT/standard/MDCSTAT04601"
ETF_DAILY_BLD = "dbms/MDC/STAT/standard/MDCSTAT04301"
WRONG_PASSWORD = "CD002"  # noqa: S105 - a KRX answer code (UNCONFIRMED), not a password

_MANAGERS = {
    "KODEX": "삼성자산운용", "TIGER": "미래에셋자산운용", "KBSTAR": "케이비자산운용",
    "ARIRANG": "한화자산운용", "HANARO": "엔에이치아문디자산운용", "KOSEF": "키움투자자산운용",
    "ACE": "한국투자신탁운용", "SOL": "신한자산운용", "PLUS": "한화자산운용",
}  # fmt: skip


def _row(etf: Listing, listed_units: int) -> dict[str, str]:
    brand, _, theme = etf.name.partition(" ")
    overseas = theme.startswith("미국")
    return {
        "ISU_CD": etf.isin,
        "ISU_SRT_CD": etf.symbol,
        "ISU_NM": f"{_MANAGERS.get(brand, brand)} {brand}{theme} 증권상장지수투자신탁[주식]",
        "ISU_ABBRV": etf.name,
        "ISU_ENG_NM": f"{brand} {theme} ETF",
        "LIST_DD": etf.listed_on.strftime("%Y/%m/%d"),
        "ETF_OBJ_IDX_NM": theme,
        "IDX_CALC_INST_NM1": "S&P" if overseas else "KRX",
        "IDX_CALC_INST_NM2": multiple_label(etf.name),
        "ETF_REPLICA_METHD_TP_CD": "실물(패시브)",
        "IDX_MKT_CLSS_NM": "해외" if overseas else "국내",
        "IDX_ASST_CLSS_NM": "채권" if "채권" in theme else "주식",
        "LIST_SHRS": f"{listed_units:,}",
        "COM_ABBRV": _MANAGERS.get(brand, "기타자산운용"),
        "CU_QTY": "50,000",
        "ETF_TOT_FEE": f"{0.05 + (etf.volatility * 10) % 0.5:.6f}",
        "TAX_TP_CD": "배당소득세(보유기간과세)" if overseas else "비과세",
    }


def _etfs(market: Market, delisted: Collection[str]) -> list[Listing]:
    return [x for x in market.listings.values() if x.group == "EF" and x.symbol not in delisted]


def etf_list_rows(
    market: Market, day: date, delisted: Collection[str] = ()
) -> list[dict[str, str]]:
    """Every listed ETF as a MDCSTAT04601 row, with its units of session ``day``."""
    return [_row(x, units(market, x.symbol, day)) for x in _etfs(market, delisted)]


def etf_daily_rows(
    market: Market, day: date, now: datetime, faults: Faults
) -> list[dict[str, str]]:
    """Every ETF on session ``day`` as a MDCSTAT04301 row (closes of past days, today's so far).

    Prices come from the day's path, as KIS's quotes do; a NAV not yet published is ``-``
    and its net assets ``0`` (KRX's habit, §1.4).
    """
    published = nav_published(faults.etf_nav_late_until, day, now)
    rows = []
    for etf in _etfs(market, faults.delisted):
        path = market.day_path(etf.symbol, day)
        minutes = 391 if day < now.date() else _minutes_done(now)
        if minutes == 0:
            continue
        close = int(path.close[minutes - 1])
        figures = etf_day(market, etf.symbol, day, close, published)
        volume = int(path.volume[:minutes].sum())
        rows.append(
            {
                "ISU_SRT_CD": etf.symbol,
                "ISU_CD": etf.isin,
                "SECUGRP_ID": "EF",
                "ISU_ABBRV": etf.name,
                "TDD_CLSPRC": f"{close:,}",
                "CMPPREVDD_PRC": f"{close - path.prev_close:,}",
                "FLUC_TP_CD": _fluctuation(close, path.prev_close),
                "FLUC_RT": f"{(close / path.prev_close - 1) * 100:.2f}",
                "NAV": f"{figures.nav:,.2f}" if figures.nav is not None else "-",
                "TDD_OPNPRC": f"{int(path.open[0]):,}",
                "TDD_HGPRC": f"{int(path.high[:minutes].max()):,}",
                "TDD_LWPRC": f"{int(path.low[:minutes].min()):,}",
                "ACC_TRDVOL": f"{volume:,}",
                "ACC_TRDVAL": f"{volume * close:,}",
                "MKTCAP": f"{figures.units * close:,}",
                "INVSTASST_NETASST_TOTAMT": f"{figures.net_assets_krw:,}",
                "LIST_SHRS": f"{figures.units:,}",
                "IDX_IND_NM": etf.name.partition(" ")[2],
            }
        )
    return rows


def _fluctuation(close: int, prev_close: int) -> str:
    """``FLUC_TP_CD``: 1 up, 2 down, 3 unchanged."""
    return "1" if close > prev_close else "2" if close < prev_close else "3"


def _minutes_done(now: datetime) -> int:
    """Bars of today's session completed (or begun) by ``now``: 0 before 09:00, 391 after."""
    minutes = (now.hour - 9) * 60 + now.minute + 1
    return max(0, min(391, minutes))


@dataclass(slots=True)
class _Session:
    created_ns: int
    member: str | None = None  # set once logged in
    login_ns: int = 0


@dataclass(slots=True)
class Krx:
    """The portal's handlers and its sessions.

    Facts from shared/reference/krx-etf-and-metadata.md §1: ``GET MDCCOMS001.cmd`` issues
    ``JSESSIONID``; ``GET login.jsp`` shows the form; ``POST MDCCOMS001D1.cmd`` (``mbrId``,
    ``pw``) answers ``{"_error_code": ...}``: CD001 in, CD011 the member is logged in
    elsewhere (``skipDup=Y`` logs in anyway and ends the other session), CD010 the password
    must be changed; a wrong password's code is UNCONFIRMED, answered here as CD002. ``POST
    getJsonData.cmd`` (form ``bld``) answers JSON served as ``text/html``, ``{"output": [...],
    "CURRENT_DATETIME": ...}``; without a ``Referer``, an empty list (since 2024-07); without
    a live logged-in session, HTTP 400 ``LOGOUT`` (since 2026-02-27). A session lasts
    ``SimConfig.krx_session_ttl_s`` of simulated time.

    Faults (`Faults`): ``krx_5xx`` and ``krx_empty`` answer the next N data calls with HTTP
    500 or an empty ``output``; ``krx_logout`` ends the asking session (LOGOUT) N times;
    ``krx_latency_s`` delays every answer (a client timeout); ``krx_password_change`` answers
    logins with CD010; ``delisted`` symbols leave the list, as they leave the masters.

    Parameters
    ----------
    market, clock:
        What is served, and when "now" is.
    config, faults:
        Members and session life; the injected faults (shared with the simulator).
    """

    market: Market
    clock: Clock
    config: SimConfig
    faults: Faults
    sessions: dict[str, _Session] = field(default_factory=dict)
    logged_in: dict[str, str] = field(default_factory=dict)  # member -> its session id
    logins: int = 0
    data_calls: int = 0
    logouts: int = 0  # LOGOUT answers

    async def session(self, request: web.Request) -> web.Response:
        """``GET MDCCOMS001.cmd``: a new JSESSIONID."""
        sid = secrets.token_hex(16)
        self.sessions[sid] = _Session(self.clock.now_ns())
        response = web.Response(text="<html>KRX Data Marketplace</html>", content_type="text/html")
        response.set_cookie("JSESSIONID", sid, path="/", httponly=True)
        return response

    async def login_page(self, request: web.Request) -> web.Response:
        """``GET login.jsp?site=mdc``: the form (nothing to check)."""
        return web.Response(text="<html><form id='login'></form></html>", content_type="text/html")

    async def login(self, request: web.Request) -> web.Response:
        """``POST MDCCOMS001D1.cmd``: the ``_error_code`` of a login attempt."""
        form = await request.post()
        sid = request.cookies.get("JSESSIONID", "")
        if sid not in self.sessions:
            return web.Response(status=400, text="LOGOUT", content_type="text/html")
        member, password = str(form.get("mbrId", "")), str(form.get("pw", ""))
        members = self.config.krx_members
        if self.faults.krx_password_change:
            return _code("CD010", "비밀번호를 변경하셔야 합니다.")
        if not member or (members is not None and members.get(member) != password):
            return _code(WRONG_PASSWORD, "아이디 또는 비밀번호가 일치하지 않습니다.")
        other = self.logged_in.get(member)
        if other not in (None, sid) and self._live(other) and form.get("skipDup") != "Y":
            return _code("CD011", "다른 곳에서 로그인 중입니다.")
        if other is not None and other != sid:
            self.sessions.pop(other, None)  # a second login ends the first session
        self.sessions[sid].member = member
        self.sessions[sid].login_ns = self.clock.now_ns()
        self.logged_in[member] = sid
        self.logins += 1
        return _code("CD001", "정상")

    def _live(self, sid: str | None) -> bool:
        session = self.sessions.get(sid or "")
        if session is None or session.member is None:
            return False
        return self.clock.now_ns() - session.login_ns < self.config.krx_session_ttl_s * NS

    def kill_sessions(self) -> int:
        """End every logged-in session (their next call gets LOGOUT); return how many."""
        live = [sid for sid, s in self.sessions.items() if s.member is not None]
        for sid in live:
            del self.sessions[sid]
        self.logged_in.clear()
        return len(live)

    async def data(self, request: web.Request) -> web.Response:
        """``POST getJsonData.cmd``: the screen asked for, to a live session only."""
        faults = self.faults
        if faults.krx_latency_s:
            await asyncio.sleep(faults.krx_latency_s)  # wall time: a client's timeout
        form = await request.post()
        self.data_calls += 1
        if faults.krx_5xx > 0:
            faults.krx_5xx -= 1
            return web.Response(status=500, text="<html>500 Internal Server Error</html>")
        sid = request.cookies.get("JSESSIONID", "")
        if self.config.krx_login_required and not self._live(sid):
            return self._logout()
        if faults.krx_logout > 0:
            faults.krx_logout -= 1
            self.sessions.pop(sid, None)
            return self._logout()
        now = now_kst(self.clock)
        rows: list[dict[str, str]] = []
        if "Referer" not in request.headers:
            rows = []  # KRX since 2024-07: no Referer, no data
        elif faults.krx_empty > 0:
            faults.krx_empty -= 1
        elif form.get("bld") == ETF_LIST_BLD:
            rows = etf_list_rows(self.market, _today_session(self.market, now), faults.delisted)
        elif form.get("bld") == ETF_DAILY_BLD:
            day = _day(str(form.get("trdDd", "")))
            if day is not None and day <= now.date() and self.market.calendar.is_session(day):
                rows = etf_daily_rows(self.market, day, now, faults)
        body = {"output": rows, "CURRENT_DATETIME": now.strftime("%Y.%m.%d %p %I:%M:%S")}
        return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="text/html")

    def _logout(self) -> web.Response:
        self.logouts += 1
        return web.Response(status=400, text="LOGOUT", content_type="text/html")


def _code(code: str, message: str) -> web.Response:
    body = {"_error_code": code, "_error_message": message}
    return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="text/html")


def _today_session(market: Market, now: datetime) -> date:
    """The list's units are those of today if a session, else of the last session."""
    today = now.date()
    return today if market.calendar.is_session(today) else market.calendar.previous_session(today)


def _day(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
