"""What the simulator's parts share: KIS's answer envelope and errors, and simulated now."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web

from harness.sim.market import KST, Market
from harness.sim.price_units import price_limits
from observer.calendar.clock import Clock

__all__ = [
    "NS",
    "OK",
    "envelope",
    "fail",
    "now_kst",
    "price_sign",
    "read_json",
    "session_day",
    "sign",
    "token_error",
]

NS = 1_000_000_000
OK = ("0", "MCA00000", "정상처리 되었습니다.")


def envelope(rt_cd: str, msg_cd: str, msg1: str, **outputs: Any) -> dict[str, Any]:
    """KIS's REST answer: ``rt_cd``, ``msg_cd``, ``msg1`` and the outputs."""
    return {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1, **outputs}


def fail(status: int, msg_cd: str, msg1: str) -> web.Response:
    """A REST error answer (KIS sends gateway errors as HTTP 500 with the envelope)."""
    return web.json_response(envelope("1", msg_cd, msg1), status=status)


def token_error(status: int, code: str, description: str) -> web.Response:
    """An error answer of the token and approval endpoints."""
    return web.json_response({"error_code": code, "error_description": description}, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or an empty one if the body is not one."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def sign(change: int) -> str:
    """KIS's sign code of a change: 2 up, 5 down, 3 unchanged."""
    return "2" if change > 0 else "5" if change < 0 else "3"


def price_sign(price: int, prev_close: int) -> str:
    """The sign code of a price: 1 at the upper limit, 4 at the lower, else as `sign`."""
    lower, upper = price_limits(prev_close)
    return "1" if price >= upper else "4" if price <= lower else sign(price - prev_close)


def now_kst(clock: Clock) -> datetime:
    """The clock's now, in KST."""
    return datetime.fromtimestamp(clock.now_ns() / NS, tz=KST)


def session_day(market: Market, now: datetime) -> date:
    """Today if it is a session and the open has passed, else the last session."""
    today = now.date()
    calendar = market.calendar
    if calendar.is_session(today) and now.hour >= 9:
        return today
    return calendar.previous_session(today)
