"""The simulator's control endpoints (``/_sim/...``): what tests and the demo break and read.

``POST /_sim/faults`` sets `Faults` (`Control.set_faults` lists them); ``/_sim/drop_websockets``
cuts every session, ``/_sim/expire_tokens`` expires every token, ``/_sim/listing_changes``
evolves the masters, and ``GET /_sim/stats`` reports what the gateway saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from aiohttp import web

from harness.sim.config import (
    MASTER_DAMAGE,
    Faults,
    FeedDelay,
    RegistrationRefusal,
    SimConfig,
    TickLoss,
)
from harness.sim.gateway import Gateway
from harness.sim.market import KST
from harness.sim.master_host import MasterHost
from harness.sim.protocol import NS, now_kst
from harness.sim.realtime import Realtime

__all__ = ["KRX_FAULTS", "Control"]

# Fault names set as they are (counters, switches): the KRX portal's, the ETF NAV's and
# the fallback sector source's.
KRX_FAULTS = (
    "krx_5xx",
    "krx_empty",
    "krx_logout",
    "krx_latency_s",
    "krx_password_change",
    "etf_nav_late_until",
    "yahoo_429",
    "yahoo_5xx",
    "yahoo_latency_s",
)
# The real-time counters: the next N trade records, or data frames, the client cannot read.
GARBLED = ("garbled_records", "garbled_frames")


class Control:
    """The ``/_sim/...`` handlers, over the simulator's parts.

    Parameters
    ----------
    config:
        The limits reported by the stats.
    faults:
        The injected faults, shared with the rest of the simulator.
    gateway, realtime, masters:
        The parts the endpoints act on and read.
    """

    def __init__(
        self,
        config: SimConfig,
        faults: Faults,
        gateway: Gateway,
        realtime: Realtime,
        masters: MasterHost,
    ) -> None:
        self.config = config
        self.faults = faults
        self.gateway = gateway
        self.realtime = realtime
        self.masters = masters
        # Sections added to /_sim/stats by other parts: name -> what to show now.
        self.extra_stats: dict[str, Callable[[], dict[str, int]]] = {}

    async def set_faults(self, request: web.Request) -> web.Response:
        """``POST /_sim/faults``: counters replace; the rest accumulates.

        Besides the REST and master faults:
        ``{"refuse_registrations": {"005930": "OPSP8992", "000660": {"code": "OPSP0007",
        "count": 2}}}`` answers the symbols' registrations with those codes (``null`` lifts
        it); ``{"halt": {"005930": ["10:00", "10:05"]}}`` / ``{"limit_lock": {...}}`` halt a
        symbol or lock it at its upper limit between two KST times of the simulated day
        (``null`` lifts it); ``{"ws_down": {APP_KEY: SECONDS}}`` cuts that key's sessions for
        SECONDS of simulated time; ``{"rest_down": SECONDS}`` resets every REST quote call's
        connection for SECONDS (the REST host unreachable; 0 lifts it); ``{"tick_loss":
        {"seconds", "share", "symbols", "feeds"}}`` withholds trade records from then on (of
        KRX's feed, or of the trade TRs ``feeds`` names);
        ``{"feed_delay": {"seconds", "delay_s"}}`` sends every session's trades ``delay_s``
        late for the next SECONDS; ``{"garbled_records": N}`` and ``{"garbled_frames": N}``
        send the next N trade records, or data frames, unreadable; ``{"unanswered_releases":
        true}`` answers no release and streams on what it names. All times are simulated.

        Damage, listing changes, Nextrade's list changes (``{"nxt": {"remove": [...], "add":
        [...], "halt": [...], "resume": [...]}}``) and minutes without trades (``no_trades``:
        symbol -> ``["HHMM", ...]``) add to what is there.
        """
        body = await request.json()
        counters = (
            "http_5xx",
            "rate_limited",
            "latency_s",
            "token_failures",
            "unanswered_releases",
            *GARBLED,
        )
        for name in (*counters, *KRX_FAULTS):
            if name in body:
                setattr(self.faults, name, body[name])
        damage = dict(body.get("master_damage", {}))
        if not set(damage.values()) <= set(MASTER_DAMAGE):
            return web.json_response({"ok": False, "known": MASTER_DAMAGE}, status=400)
        self.faults.master_damage |= damage
        self.faults.delisted |= set(body.get("delisted", []))
        self.faults.renamed |= dict(body.get("renamed", {}))
        self.faults.new_listings += int(body.get("new_listings", 0))
        self.faults.nxt.apply(dict(body.get("nxt", {})))
        try:
            self._trading_faults(body)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"ok": False, "error": repr(exc)}, status=400)
        for symbol, minutes in dict(body.get("no_trades", {})).items():
            self.faults.no_trades.setdefault(symbol, set()).update(minutes)
        if "rest_down" in body:
            seconds = float(body["rest_down"])
            self.faults.rest_down_until = self.gateway.clock.now_ns() + int(seconds * 1e9)
        for app_key, seconds in dict(body.get("ws_down", {})).items():
            self.faults.ws_down_until[app_key] = self.gateway.clock.now_ns() + int(seconds * 1e9)
            await self.realtime.cut(app_key)
        if "tick_loss" in body:
            loss = body["tick_loss"]
            now = self.realtime.clock.now_ns()
            self.faults.tick_loss.append(
                TickLoss(
                    start_ns=now,
                    end_ns=now + int(float(loss["seconds"]) * 1e9),
                    share=float(loss.get("share", 1.0)),
                    symbols=frozenset(loss.get("symbols", ())),
                    feeds=frozenset(loss.get("feeds", ("H0STCNT0",))),
                )
            )
        if "feed_delay" in body:
            delay = body["feed_delay"]
            now = self.realtime.clock.now_ns()
            end = now + int(float(delay["seconds"]) * 1e9)
            self.faults.feed_delay.append(FeedDelay(now, end, float(delay["delay_s"])))
        return web.json_response({"ok": True})

    def _trading_faults(self, body: dict[str, Any]) -> None:
        """Refused registrations, halts and limit locks; ValueError names what is wrong."""
        refusals: dict[str, RegistrationRefusal | None] = {}
        for symbol, what in dict(body.get("refuse_registrations", {})).items():
            if what is None:
                refusals[symbol] = None
                continue
            what = {"code": what} if isinstance(what, str) else dict(what)
            code, count = str(what["code"]), int(what.get("count", 0))
            if not re.fullmatch(r"OPSP\d{4}", code) or count < 0:
                raise ValueError(f"refuse_registrations: {symbol}: {code!r} x {count}")
            refusals[symbol] = RegistrationRefusal(code, count)
        windows = {
            name: {symbol: self._window(span) for symbol, span in dict(body.get(key, {})).items()}
            for name, key in (("halts", "halt"), ("limit_locks", "limit_lock"))
        }
        for symbol, refusal in refusals.items():  # all checked: now apply
            if refusal is None:
                self.faults.refuse_registrations.pop(symbol, None)
            else:
                self.faults.refuse_registrations[symbol] = refusal
        for name, spans in windows.items():
            held: dict[str, tuple[int, int]] = getattr(self.faults, name)
            for symbol, span in spans.items():
                if span is None:
                    held.pop(symbol, None)
                else:
                    held[symbol] = span

    def _window(self, span: list[str] | None) -> tuple[int, int] | None:
        """``["HH:MM[:SS]", "HH:MM[:SS]"]`` (KST, the simulated day) as [start_ns, end_ns)."""
        if span is None:
            return None
        day = now_kst(self.gateway.clock).date()
        start, end = (
            int(datetime.combine(day, time.fromisoformat(at), KST).timestamp()) * NS for at in span
        )
        if end <= start:
            raise ValueError(f"a window ends after it starts: {span}")
        return start, end

    async def drop_websockets(self, request: web.Request) -> web.Response:
        """``POST /_sim/drop_websockets``: how many sessions were cut."""
        return web.json_response({"dropped": await self.realtime.drop_websockets()})

    async def expire_tokens(self, request: web.Request) -> web.Response:
        """``POST /_sim/expire_tokens``."""
        self.gateway.expire_tokens()
        return web.json_response({"ok": True})

    async def listing_changes(self, request: web.Request) -> web.Response:
        """``POST /_sim/listing_changes``: ``{new, delist, rename}``; answers what changed."""
        body = await request.json()
        return web.json_response(
            self.masters.change_listings(
                int(body.get("new", 0)), int(body.get("delist", 0)), int(body.get("rename", 0))
            )
        )

    async def stats(self, request: web.Request) -> web.Response:
        """What the gateway saw: calls and real-time records per TR, EGW00201s, busiest seconds."""
        gateway = self.gateway
        peaks = sorted(gateway.peak_per_second.values(), reverse=True)
        return web.json_response(
            {
                "calls": dict(gateway.calls),
                "rate_limited": gateway.rate_limited,
                "peak_per_second": peaks,  # per app key, busiest first (keys are not shown)
                "limit_per_second": self.config.calls_per_second,
                # per tr_id
                "records_sent": {k: v for k, v in self.realtime.records_sent.items() if v},
                # per symbol, registrations refused by a fault
                "registrations_refused": dict(self.realtime.refused),
                # trade records withheld by a silent tick loss, per symbol
                "records_withheld": dict(self.realtime.records_withheld),
                # sessions dropped for a PINGPONG not answered as SimConfig.pingpong_accepts says
                "pingpong_drops": self.realtime.pingpong_drops,
                **{name: read() for name, read in self.extra_stats.items()},
            }
        )
