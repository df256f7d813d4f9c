"""``observer bench etf``: the ETF daily run against the rate-limit bound N / rate.

The run over N ETFs after the close (one FHPST02400000 each, plus KRX's all-ETF table, which gives
every NAV in one call) against the simulator at real speed is timed, its KIS part against N /
(accounts x rate x ``[etf] share_of``'s share): the rate limit, not this machine, is what it
should wait for (target <= 1.05).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import date
from typing import Annotated, Any

import httpx
import typer

from harness.bench.simulator import simulator_kis, simulator_process
from harness.sim.market import Market
from observer.calendar.clock import Clock
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.config.workers import EtfSettings
from observer.kis.session import open_account, rate_limits
from observer.krx.client import open_krx
from observer.krx.settings import KrxSettings
from observer.process.logs import setup_logging
from workers.etf.collect import collect_daily

__all__ = ["app", "bench_daily"]

app = typer.Typer(help="The ETF daily run against the rate-limit bound N / rate.")
DAY = date(2026, 11, 20)
CLOCK = "2026-11-20T16:10:00+09:00@1x"  # after the close: the session's final figures


def _etfs(count: int) -> list[str]:
    listings = Market(1, TradingCalendar()).listings
    etfs = sorted(s for s, x in listings.items() if x.group == "EF")
    return etfs if count <= 0 else etfs[:count]


async def _run(settings: Settings, clock: Clock, symbols: list[str]) -> dict[str, Any]:
    limits = rate_limits(settings.kis, settings.etf.share_of)
    for a in settings.kis.accounts:  # tokens are a once-a-day cost, not the run's
        account = open_account(settings.kis, a.alias, clock, limits)
        await account.tokens.token()
        await account.aclose()
    krx = open_krx(settings.krx, settings.kis, clock)
    try:  # no backfill: a normal day's run
        got = await collect_daily(settings, clock, symbols, DAY, None, {}, krx)
    finally:
        await krx.aclose()
    bound_s = len(symbols) / got.rate_limit_per_s
    return {
        "etfs": len(symbols),
        "collected": len(got.rows),
        "failed": len(got.failed),
        "kis_calls": got.kis_calls,
        "duration_s": round(got.elapsed_s, 2),
        "bound_s": round(bound_s, 2),
        "ratio": round(got.elapsed_s / bound_s, 3),
        "limit_per_s": round(got.rate_limit_per_s, 2),
        "krx_calls": got.krx_calls,
        "krx_rows": got.krx_rows,
        "krx_error": got.krx_error,
        # NAV and net assets of every ETF: one KRX table call against one KIS call each.
        "kis_calls_saved_by_krx": max(min(got.krx_rows, len(symbols)) - 1, 0),
        "with_nav": sum(r.nav is not None for r in got.rows.values()),
    }


def bench_daily(count: int, rate: int, accounts: int) -> dict[str, Any]:
    """One daily run against a fresh simulator; the report as one object.

    The run takes ``[etf] share_of``'s share of each account's ``rate`` (the jobs', 0.15).
    """
    with simulator_process(rate, CLOCK) as (rest, clock), tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            kis=simulator_kis(rest, tmp, rate, accounts),
            krx=KrxSettings(calls_per_second=5.0),
            etf=EtfSettings(),
        )
        report = asyncio.run(_run(settings, clock, _etfs(count)))
        gateway = httpx.get(rest + "/_sim/stats", timeout=10).json()
    return report | {"egw00201": gateway["rate_limited"], "gateway_limit_per_s": rate}


@app.callback(invoke_without_command=True)
def etf(
    etfs: Annotated[int, typer.Option(help="ETFs to collect (0: all the market's)")] = 0,
    rate: Annotated[int, typer.Option(min=1, help="each account's REST calls/s at KIS")] = 20,
    accounts: Annotated[int, typer.Option(min=1, max=8, help="accounts")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """One ETF daily run at real speed, against N / rate."""
    setup_logging("WARNING")
    r = bench_daily(etfs, rate, accounts)
    typer.echo("etf bench (real time; the simulator enforces each key's window)")
    typer.echo(
        f"  {r['etfs']:>5} ETFs  {r['duration_s']:>8.2f} s  bound N/rate {r['bound_s']:>8.2f} s  "
        f"ratio {r['ratio']:.3f} (target <= 1.05)  {r['limit_per_s']}/s, {r['failed']} failed"
    )
    typer.echo(
        f"  KRX: {r['krx_calls']} calls (login included) for {r['krx_rows']} ETFs' NAV and net "
        f"assets: {r['kis_calls_saved_by_krx']} KIS calls saved; {r['egw00201']} EGW00201"
    )
    if as_json:
        typer.echo(json.dumps(r))
    raise typer.Exit(1 if r["failed"] or r["egw00201"] or r["krx_error"] else 0)
