"""``observer bench kis``: the frame parser and the REST client's pacing, against baselines.

Parsing (records/s of `parse_frame` and of a stream's decoding into `TradeTick` events, against a
bare ``str.split`` of the same frames), the stream's read of a message already received (CPU
against a bare await, `_read_cpu`), pacing (the client's achieved rate against the
simulator's per-app-key limit, and the EGW00201 answers it drew) and the client's CPU per call
against a bare aiohttp GET (`run_kis_bench`).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from harness.bench.simulator import simulator_process
from harness.sim.market import Market
from observer.calendar.clock import SystemClock
from observer.calendar.trading import TradingCalendar
from observer.kis.auth import TokenManager
from observer.kis.client import KisClient, RateLimits
from observer.kis.credentials import Credentials, Secret
from observer.kis.endpoints import ENDPOINTS
from observer.kis.realtime import RealtimeDecoder, parse_frame
from observer.kis.rest_get import AiohttpGet
from observer.kis.waits import QuietGuard

__all__ = ["KisBenchReport", "run_kis_bench"]

_RECORD = (
    "005930^093001^73100^5^-400^-0.54^73321.45^73500^73800^72900^73200^73100^5^8123468^"
    "594001000000^41203^39874^-1329^98.73^4031222^3980111^5^49.69^87.12^090000^5^-400^"
    "093512^5^-700^101412^2^200^20261120^20^N^1500^2100^250000^310000^0.14^9300000^87.35^0^0^0"
)


@dataclass
class KisBenchReport:
    """Numbers of one run."""

    frames_per_s_baseline: float = 0.0
    records_per_s_baseline: float = 0.0
    records_per_s_frames: float = 0.0
    records_per_s_ticks: float = 0.0
    rest_limit: float = 0.0
    rest_per_s: float = 0.0
    rest_requests: int = 0
    rate_limited: int = 0
    client_cpu_us: float = 0.0  # per call, best round
    bare_cpu_us: float = 0.0  # per bare aiohttp GET, best round
    read_us: float = 0.0  # CPU per message through the stream's `QuietGuard`, best round
    read_bare_us: float = 0.0  # CPU per message of a bare await of the same queue

    def summary(self) -> dict[str, Any]:
        """One JSON-able object."""
        return {
            "parser_records_per_s": round(self.records_per_s_frames),
            "parser_baseline_per_s": round(self.records_per_s_baseline),
            "parser_ratio": round(self.records_per_s_frames / self.records_per_s_baseline, 3),
            "ticks_per_s": round(self.records_per_s_ticks),
            "ticks_ratio": round(self.records_per_s_ticks / self.records_per_s_baseline, 3),
            "rest_limit_per_s": self.rest_limit,
            "rest_per_s": round(self.rest_per_s, 2),
            "rest_ratio": round(self.rest_per_s / self.rest_limit, 3),
            "rest_requests": self.rest_requests,
            "egw00201": self.rate_limited,
            "client_cpu_us_per_call": round(self.client_cpu_us, 1),
            "bare_get_cpu_us_per_call": round(self.bare_cpu_us, 1),
            "client_cpu_ratio": round(self.bare_cpu_us / self.client_cpu_us, 3)
            if self.client_cpu_us
            else 0.0,
            "read_us_per_message": round(self.read_us, 2),
            "read_bare_us_per_message": round(self.read_bare_us, 2),
        }

    def lines(self) -> list[str]:
        """Human-readable report."""
        s = self.summary()
        return [
            "kis bench",
            f"  bare str.split          {s['parser_baseline_per_s']:>10,} records/s",
            f"  parse_frame             {s['parser_records_per_s']:>10,} records/s  "
            f"ratio {s['parser_ratio']}",
            f"  frame -> TradeTick      {s['ticks_per_s']:>10,} records/s  "
            f"ratio {s['ticks_ratio']}",
            f"  REST against simulator  {s['rest_per_s']} req/s of {s['rest_limit_per_s']} "
            f"allowed (ratio {s['rest_ratio']}), {s['egw00201']} EGW00201 answers",
            f"  bare aiohttp GET        {s['bare_get_cpu_us_per_call']:>10} µs CPU a call",
            f"  KisClient.current_price {s['client_cpu_us_per_call']:>10} µs CPU a call  "
            f"ratio {s['client_cpu_ratio']}",
            f"  bare await of a message {s['read_bare_us_per_message']:>10} µs CPU",
            f"  the stream's read       {s['read_us_per_message']:>10} µs CPU a message "
            "(QuietGuard: the stop and the silence limit watched)",
        ]


def _frames(count: int, per_frame: int) -> list[str]:
    payload = "^".join([_RECORD] * per_frame)
    return [f"0|H0STCNT0|{per_frame:03d}|{payload}" for _ in range(count)]


def _best_rate(work: Any, frames: list[str], records: int, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        work(frames)
        best = max(best, records / (time.perf_counter() - started))
    return best


def _baseline(frames: list[str]) -> None:
    for frame in frames:
        frame.split("|", 3)[3].split("^")


def _frames_only(frames: list[str]) -> None:
    for frame in frames:
        parse_frame(frame)


def _to_ticks(frames: list[str]) -> None:
    decode = RealtimeDecoder("bench").decode
    for frame in frames:
        decode(frame, 0)


async def _read_cpu(messages: int, rounds: int = 3) -> tuple[float, float]:
    """CPU us per message already received: the stream's guarded read, and a bare await.

    A busy feed's frames are in the socket before the reader asks: what the read costs
    then is all the guard's (`QuietGuard`), against awaiting the same queue bare.
    """
    queue: asyncio.Queue[int] = asyncio.Queue()
    guard = QuietGuard(SystemClock(), asyncio.Event(), lambda: (90.0, 5.0))
    guarded = bare = float("inf")
    async with guard:
        for _ in range(rounds):
            for n in range(messages):
                queue.put_nowait(n)
            started = time.process_time()
            for _ in range(messages):
                await guard.next(queue.get)
            guarded = min(guarded, time.process_time() - started)
            for n in range(messages):
                queue.put_nowait(n)
            started = time.process_time()
            for _ in range(messages):
                await queue.get()
            bare = min(bare, time.process_time() - started)
    return guarded / messages * 1e6, bare / messages * 1e6


@asynccontextmanager
async def _client(server_limit: int, limit: float) -> AsyncIterator[tuple[str, KisClient, str]]:
    """A client on the production path and its token, against a simulator in its own process.

    The simulator allows ``server_limit``/s per app key, as KIS's gateway does; the client
    is paced at ``limit``/s.
    """
    with simulator_process(server_limit) as (rest, clock), tempfile.TemporaryDirectory() as tmp:
        async with httpx.AsyncClient(base_url=rest) as http:
            credentials = Credentials("bench", Secret("bench-key"), Secret("bench-secret"))
            tokens = TokenManager(http, credentials, clock, Path(tmp), "sim")
            limiter = RateLimits({"bench": limit}).for_account("bench")
            quotes = AiohttpGet(rest, connect_s=5, read_s=10)  # the production path's GETs
            try:
                client = KisClient(quotes, credentials, tokens, clock, limiter)
                yield rest, client, (await tokens.token()).reveal()
            finally:
                await quotes.aclose()


def _symbols() -> list[str]:
    return list(Market(1, TradingCalendar()).listings)[:500]


async def _rest(limit: float, server_limit: int, requests: int) -> tuple[float, int]:
    """Pace ``requests`` calls at ``limit``/s; the rate achieved and the EGW00201 answers."""
    symbols = _symbols()
    async with _client(server_limit, limit) as (_, client, _token):
        pending = list(range(requests))

        async def worker() -> None:
            while pending:
                n = pending.pop()
                await client.current_price(symbols[n % len(symbols)])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(2 * server_limit)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, client.rate_limited


async def _client_cpu(calls: int, rounds: int = 3) -> tuple[float, float]:
    """CPU per call in this process (µs, best round): the client's, a bare aiohttp GET's."""
    symbols = _symbols()
    endpoint = ENDPOINTS["current_price"]
    async with _client(1_000_000, 1_000_000) as (rest, client, token):
        headers = client.headers(endpoint, token)  # what the client sends
        async with aiohttp.ClientSession() as bare:

            async def bare_get(symbol: str) -> None:
                params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
                async with bare.get(rest + endpoint.path, params=params, headers=headers) as r:
                    await r.read()

            async def cpu_per_call(call: Callable[[str], Awaitable[object]]) -> float:
                pending = list(range(calls))

                async def lane() -> None:
                    while pending:
                        await call(symbols[pending.pop() % len(symbols)])

                started = time.process_time()
                await asyncio.gather(*(lane() for _ in range(8)))
                return (time.process_time() - started) / calls * 1e6

            client_us = bare_us = float("inf")
            for _ in range(rounds):
                client_us = min(client_us, await cpu_per_call(client.current_price))
                bare_us = min(bare_us, await cpu_per_call(bare_get))
    return client_us, bare_us


def run_kis_bench(
    frames: int = 20_000,
    per_frame: int = 5,
    limit: float = 19.0,
    server_limit: int = 20,
    requests: int = 200,
    client_calls: int = 1000,
) -> KisBenchReport:
    """Run the parser and REST measurements.

    The client is configured one call/s under the gateway's limit (as python-kis does):
    its pacing is exact, but arrival times jitter across the server's one-second windows.
    The client's CPU is this process's per `KisClient.current_price` without a limit, against
    a bare aiohttp GET of the same request (same headers, same simulator, same calls in
    flight), alternated so that both meet the same load; the simulator runs in its own
    process, so only the client's side is counted.
    """
    report = KisBenchReport(rest_limit=limit, rest_requests=requests)
    data = _frames(frames, per_frame)
    records = frames * per_frame
    report.records_per_s_baseline = _best_rate(_baseline, data, records)
    report.records_per_s_frames = _best_rate(_frames_only, data, records)
    report.records_per_s_ticks = _best_rate(_to_ticks, data, records)
    report.rest_per_s, report.rate_limited = asyncio.run(_rest(limit, server_limit, requests))
    report.client_cpu_us, report.bare_cpu_us = asyncio.run(_client_cpu(client_calls))
    report.read_us, report.read_bare_us = asyncio.run(_read_cpu(frames))
    return report
