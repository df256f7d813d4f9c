"""A quoteSummary-shaped fallback sector source, served by the simulator (no internet).

``GET /v10/finance/quoteSummary/{symbol}?modules=assetProfile`` answers as Yahoo does (ref-KRX
§5), with Morningstar-style ``sector``/``sectorKey``/``industry``/``industryKey``, from each
overseas listing's hidden true sector (`harness.sim.sectors.true_sector`). `Yahoo` says which
symbols it knows, how it limits a client and which faults it takes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict, deque

from aiohttp import web

from harness.sim.config import Faults, SimConfig
from harness.sim.listings import Overseas
from harness.sim.sectors import true_sector, unit

__all__ = ["Yahoo"]

_SUFFIXES = {".SS": ("SHS",), ".SZ": ("SZS",), ".HK": ("HKS",), ".T": ("TSE",), ".VN": ("HSX",)}
_US = ("NAS", "NYS", "AMS")

# GICS sector -> (Yahoo sector name, key, [(industry name, key), ...])
_PROFILES: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "10": ("Energy", "energy", (("Oil & Gas Integrated", "oil-gas-integrated"),
                                ("Oil & Gas E&P", "oil-gas-ep"))),
    "15": ("Basic Materials", "basic-materials", (("Chemicals", "chemicals"),
                                                  ("Steel", "steel"))),
    "20": ("Industrials", "industrials", (("Aerospace & Defense", "aerospace-defense"),
                                          ("Railroads", "railroads"))),
    "25": ("Consumer Cyclical", "consumer-cyclical", (("Auto Manufacturers", "auto-manufacturers"),
                                                      ("Restaurants", "restaurants"))),
    "30": ("Consumer Defensive", "consumer-defensive",
           (("Packaged Foods", "packaged-foods"), ("Beverages—Brewers", "beverages-brewers"))),
    "35": ("Healthcare", "healthcare", (("Biotechnology", "biotechnology"),
                                        ("Medical Devices", "medical-devices"))),
    "40": ("Financial Services", "financial-services", (("Banks—Regional", "banks-regional"),
                                                        ("Insurance—Life", "insurance-life"))),
    "45": ("Technology", "technology", (("Semiconductors", "semiconductors"),
                                        ("Software—Infrastructure", "software-infrastructure"))),
    "50": ("Communication Services", "communication-services",
           (("Telecom Services", "telecom-services"), ("Entertainment", "entertainment"))),
    "55": ("Utilities", "utilities", (("Utilities—Regulated Electric",
                                       "utilities-regulated-electric"),)),
    "60": ("Real Estate", "real-estate", (("REIT—Office", "reit-office"),
                                          ("Real Estate Services", "real-estate-services"))),
}  # fmt: skip


def _not_found(symbol: str) -> web.Response:
    error = {"code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}
    return web.json_response({"quoteSummary": {"result": None, "error": error}}, status=404)


class Yahoo:
    """The quoteSummary endpoint over the simulated overseas listings.

    * Suffixes: none for the US, ``.SS`` Shanghai, ``.SZ`` Shenzhen, ``.HK`` Hong Kong (at
      least 4 digits), ``.T`` Tokyo, ``.VN`` Ho Chi Minh; any other suffix (or a symbol it
      does not list, HNX's included) is 404 "Quote not found".
    * About 5 % of the symbols it lists have no ``assetProfile`` (a result without it).
    * A sliding window per client address: more than ``yahoo_limit`` calls within
      ``yahoo_window_s`` wall seconds answer 429 "Too Many Requests" (``Retry-After`` when
      ``yahoo_retry_after_s`` is set), as Yahoo limits per IP.
    * Faults: ``yahoo_429`` / ``yahoo_5xx`` answer the next N calls so; ``yahoo_latency_s``
      delays every answer (wall time: a client's timeout).
    """

    def __init__(
        self, overseas: dict[str, list[Overseas]], config: SimConfig, faults: Faults
    ) -> None:
        self.config = config
        self.faults = faults
        self._rows: dict[tuple[str, str], Overseas] = {
            (x.exchange, x.symbol): x for rows in overseas.values() for x in rows
        }
        self._hk = {str(int(x.symbol)): x for x in overseas.get("hks", [])}
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)
        self.counts: Counter[str] = Counter()  # answered, rate_limited, not_found, ...

    def find(self, symbol: str) -> Overseas | None:
        """The listing a Yahoo symbol names, if the simulator has it."""
        stem, dot, suffix = symbol.rpartition(".")
        if dot and f".{suffix}" in _SUFFIXES:
            (exchange,) = _SUFFIXES[f".{suffix}"]
            if exchange == "HKS":
                return self._hk.get(stem.lstrip("0") or "0") if stem.isdigit() else None
            return self._rows.get((exchange, stem))
        if dot and len(suffix) <= 2 and suffix.isalpha() and suffix.isupper():
            return None  # an unknown exchange suffix (class shares are "BRK-B")
        return next((self._rows[e, symbol] for e in _US if (e, symbol) in self._rows), None)

    def _limited(self, client: str) -> bool:
        """Whether ``client`` went over the sliding window (the call counts either way)."""
        now = time.monotonic()
        recent = self._recent[client]
        while recent and recent[0] <= now - self.config.yahoo_window_s:
            recent.popleft()
        recent.append(now)
        return len(recent) > self.config.yahoo_limit

    async def quote_summary(self, request: web.Request) -> web.Response:
        """``GET /v10/finance/quoteSummary/{symbol}``."""
        if self.faults.yahoo_latency_s:
            await asyncio.sleep(self.faults.yahoo_latency_s)  # wall time: a client's timeout
        symbol = request.match_info["symbol"]
        if self.faults.yahoo_429 or self._limited(request.remote or ""):
            self.faults.yahoo_429 = max(self.faults.yahoo_429 - 1, 0)
            self.counts["rate_limited"] += 1
            headers = {}
            if self.config.yahoo_retry_after_s is not None:
                headers["Retry-After"] = str(self.config.yahoo_retry_after_s)
            return web.Response(status=429, text="Too Many Requests", headers=headers)
        if self.faults.yahoo_5xx:
            self.faults.yahoo_5xx -= 1
            self.counts["server_error"] += 1
            return web.Response(status=502, text="Bad Gateway")
        row = self.find(symbol)
        if row is None or row.security_type != "2":
            self.counts["not_found"] += 1
            return _not_found(symbol)
        self.counts["answered"] += 1
        if unit("profile", row.exchange, row.symbol) < 0.05:
            return web.json_response({"quoteSummary": {"result": [{}], "error": None}})
        name, key, industries = _PROFILES[true_sector(row.exchange, row.symbol, row.industry_code)]
        industry, industry_key = industries[int(unit("ind", row.symbol) * len(industries))]
        profile = {
            "sector": name,
            "sectorKey": key,
            "sectorDisp": name,
            "industry": industry,
            "industryKey": industry_key,
            "industryDisp": industry,
            "country": "",
        }
        return web.json_response(
            {"quoteSummary": {"result": [{"assetProfile": profile}], "error": None}}
        )
