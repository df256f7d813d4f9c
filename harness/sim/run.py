"""``observer sim``: serve the simulator on one port until SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from harness.sim.config import RealtimeLayout
from harness.sim.market import Market
from harness.sim.server import SimConfig, Simulator
from observer.calendar.clock import clock_from_spec
from observer.calendar.trading import TradingCalendar
from observer.errors import ConfigError

__all__ = ["serve"]


async def serve(
    host: str,
    port: int,
    seed: int,
    clock_spec: str,
    app_keys: dict[str, str] | None,
    calls_per_second: int = 18,
    stocks: int = 2500,
    fallback_per_second: float = 1.0,
    *,
    realtime_layout: RealtimeLayout = "2026-09",
    realtime_extra_fields: int = 0,
) -> None:
    """Run until SIGTERM/SIGINT; print one line with the URLs once listening.

    A port it cannot listen on raises `ConfigError`.

    ``stocks`` sizes the domestic market (KRX lists about 2,500); ETFs are 2 for every 5.
    ``fallback_per_second`` is the fallback sector source's sustained rate per client: its
    sliding window holds that many calls per second of the window (1: 5 calls in 5 s).
    ``realtime_layout`` and ``realtime_extra_fields``: the real-time records' layout
    (`SimConfig`).
    """
    clock = clock_from_spec(clock_spec)
    config = SimConfig(
        app_keys=app_keys,
        calls_per_second=calls_per_second,
        realtime_layout=realtime_layout,
        realtime_extra_fields=realtime_extra_fields,
    )
    config.yahoo_limit = max(1, round(fallback_per_second * config.yahoo_window_s))
    market = Market(seed, TradingCalendar(), stocks=stocks, etfs=stocks * 2 // 5)
    simulator = Simulator(market, clock, config)
    runner = web.AppRunner(simulator.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except (OSError, OverflowError) as exc:  # in use, not this host's, out of 0-65535
        await runner.cleanup()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        # A ConfigError is one line and exit 2 (`observer.cli.main.main`), not a traceback.
        raise ConfigError(f"the simulator cannot listen on {host}:{port}: {reason}") from None
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"{host}:{bound}"
    print(
        f"observer sim ready rest=http://{base} ws=ws://{base}/tryitout "
        f"masters=http://{base}/common/master clock={clock.spec}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
