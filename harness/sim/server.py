"""The simulator's server: KIS's REST gateway, real-time WebSocket and master-file host.

Written from shared/reference/kis-api.md (never from ``observer.kis``). `Simulator` wires into
one aiohttp application the parts that each own one side of KIS: `harness.sim.gateway` (tokens,
app keys, call rates), `harness.sim.quotes` (``/uapi/...``), `harness.sim.realtime` (the
WebSocket), `harness.sim.master_host`, `harness.sim.yahoo` (``/v10/...``) and
`harness.sim.control` (``/_sim/...``, where the demo injects faults; tests set `Faults`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from harness.sim.config import MASTER_DAMAGE, Faults, MasterDamage, SimConfig
from harness.sim.control import Control
from harness.sim.gateway import Gateway
from harness.sim.krx import Krx
from harness.sim.market import Market
from harness.sim.master_host import MasterHost
from harness.sim.quotes import Quotes
from harness.sim.realtime import Realtime
from harness.sim.yahoo import Yahoo
from observer.calendar.clock import Clock

__all__ = ["MASTER_DAMAGE", "Faults", "MasterDamage", "SimConfig", "Simulator"]


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
        self.gateway = Gateway(self.config, clock, self.faults)
        self.quotes = Quotes(market, clock, self.gateway)
        self.realtime = Realtime(market, clock, self.config, self.gateway)
        self.masters = MasterHost(market, clock, self.config, self.faults)
        self.krx = Krx(market, clock, self.config, self.faults)
        self.yahoo = Yahoo(market.overseas, self.config, self.faults)
        control = Control(self.config, self.faults, self.gateway, self.realtime, self.masters)
        control.extra_stats["yahoo"] = lambda: dict(self.yahoo.counts)
        # The REST answers, callable directly (tests read them without HTTP).
        self.inquire_price = self.quotes.inquire_price
        self.minute_bars_today = self.quotes.minute_bars_today
        self.minute_bars_past = self.quotes.minute_bars_past
        self.time_trades = self.quotes.time_trades
        self.daily_chart = self.quotes.daily_chart
        self.daily_price = self.quotes.daily_price
        self.etf_price = self.quotes.etf_price
        self.etf_nav_daily = self.quotes.etf_nav_daily
        self.etf_components = self.quotes.etf_components
        self.overseas_price = self.quotes.overseas_price
        self.overseas_info = self.quotes.overseas_info
        self.app = web.Application()
        self.app.add_routes(
            [
                web.post("/oauth2/tokenP", self.gateway.token),
                web.post("/oauth2/Approval", self.gateway.approval),
                web.get("/uapi/{path:.*}", self.quotes.rest),
                web.get("/", self.realtime.websocket),
                web.get("/tryitout", self.realtime.websocket),
                web.get("/tryitout/{tr_id}", self.realtime.websocket),
                web.get("/common/master/{name}", self.masters.master),  # HEAD comes with GET
                web.post("/comm/bldAttendant/getJsonData.cmd", self.krx.data),
                web.get("/contents/MDC/COMS/client/MDCCOMS001.cmd", self.krx.session),
                web.get("/contents/MDC/COMS/client/view/login.jsp", self.krx.login_page),
                web.post("/contents/MDC/COMS/client/MDCCOMS001D1.cmd", self.krx.login),
                web.get("/v10/finance/quoteSummary/{symbol}", self.yahoo.quote_summary),
                web.post("/_sim/krx_logout_all", self._krx_logout_all),
                web.post("/_sim/faults", control.set_faults),
                web.post("/_sim/drop_websockets", control.drop_websockets),
                web.post("/_sim/expire_tokens", control.expire_tokens),
                web.post("/_sim/listing_changes", control.listing_changes),
                web.get("/_sim/stats", control.stats),
            ]
        )

    # ------------------------------------------------------------------ fault control

    async def drop_websockets(self) -> int:
        """Close every live WebSocket session without a close handshake; return how many."""
        return await self.realtime.drop_websockets()

    def expire_tokens(self) -> None:
        """Make every issued token expired (EGW00123 on next use)."""
        self.gateway.expire_tokens()

    def change_listings(self, new: int = 0, delist: int = 0, rename: int = 0) -> dict[str, Any]:
        """Evolve the masters as a real day does: listings, delistings and renames.

        See `MasterHost.change_listings`. Returns what changed.
        """
        return self.masters.change_listings(new, delist, rename)

    # ------------------------------------------------------------------ what it saw

    @property
    def calls(self) -> defaultdict[str, int]:
        """Answered REST calls per tr_id."""
        return self.gateway.calls

    @property
    def rate_limited(self) -> int:
        """EGW00201 answers so far."""
        return self.gateway.rate_limited

    @property
    def peak_per_second(self) -> dict[str, int]:
        """Per app key, the most calls it made in one wall-clock second."""
        return self.gateway.peak_per_second

    @property
    def records_sent(self) -> defaultdict[str, int]:
        """Real-time records pushed per tr_id."""
        return self.realtime.records_sent

    async def _krx_logout_all(self, request: web.Request) -> web.Response:
        """``POST /_sim/krx_logout_all``: every KRX session ends (as a login elsewhere does)."""
        return web.json_response({"ended": self.krx.kill_sessions()})
