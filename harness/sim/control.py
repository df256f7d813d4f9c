"""The simulator's control endpoints (``/_sim/...``): what tests and the demo break and read.

``POST /_sim/faults`` sets `Faults` (``tick_loss``: ``{"seconds", "share", "symbols"}`` from
now, in simulated time); ``/_sim/drop_websockets`` cuts every session;
``/_sim/expire_tokens`` expires every token; ``/_sim/listing_changes`` evolves the masters;
``GET /_sim/stats`` reports what the gateway saw.
"""

from __future__ import annotations

from aiohttp import web

from harness.sim.config import MASTER_DAMAGE, Faults, SimConfig, TickLoss
from harness.sim.gateway import Gateway
from harness.sim.master_host import MasterHost
from harness.sim.realtime import Realtime

__all__ = ["Control"]


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

    async def set_faults(self, request: web.Request) -> web.Response:
        """``POST /_sim/faults``: counters replace, damage and listing changes accumulate."""
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
        if "tick_loss" in body:
            loss = body["tick_loss"]
            now = self.realtime.clock.now_ns()
            self.faults.tick_loss.append(
                TickLoss(
                    start_ns=now,
                    end_ns=now + int(float(loss["seconds"]) * 1e9),
                    share=float(loss.get("share", 1.0)),
                    symbols=frozenset(loss.get("symbols", ())),
                )
            )
        return web.json_response({"ok": True})

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
                # trade records withheld by a silent tick loss, per symbol
                "records_withheld": dict(self.realtime.records_withheld),
            }
        )
