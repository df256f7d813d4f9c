"""``observer bench track-a``: cycle duration against the rate-limit bound N / rate.

For every size N, one cycle over N symbols of the simulator (in its own process, at real speed,
with KIS's per-app-key window) is timed against N / (accounts x rate x Track A's share): the rate
limit, not this machine, is what a cycle should wait for (target <= 1.05). The gateway's EGW00201
answers and busiest second are read from the simulator.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from typing import Annotated, Any

import httpx
import typer

from harness.bench.simulator import simulator_kis, simulator_process
from harness.sim.market import Market
from observer.calendar.clock import Clock
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.kis.session import open_account, rate_limits
from observer.process.logs import setup_logging
from workers.track_a.cycle import SnapshotTarget, run_cycle

__all__ = ["app", "bench_cycles"]

app = typer.Typer(help="Track A cycle duration against the rate-limit bound N / rate.")
_NS = 1_000_000_000


def _targets(count: int) -> list[SnapshotTarget]:
    """``count`` domestic listings of the simulated market (stocks first)."""
    listings = Market(1, TradingCalendar()).listings
    ordered = sorted(listings.items(), key=lambda item: (item[1].group != "ST", item[0]))
    domestic = [SnapshotTarget(s, x.market) for s, x in ordered if x.market in ("KOSPI", "KOSDAQ")]
    if count > len(domestic):
        raise typer.BadParameter(f"the simulated market lists {len(domestic)} symbols")
    return domestic[:count]


async def _cycle(settings: Settings, clock: Clock, targets: list[SnapshotTarget]) -> dict[str, Any]:
    limits = rate_limits(settings.kis, "track_a")
    accounts = [open_account(settings.kis, a.alias, clock, limits) for a in settings.kis.accounts]
    try:
        for account in accounts:  # tokens are a once-a-day cost, not the cycle's
            await account.tokens.token()
        published: list[object] = []
        run = await run_cycle(
            [a.client for a in accounts],
            targets,
            "bench",
            clock,
            clock.now_ns() + 3600 * _NS,
            published.append,
            per_client=settings.track_a.requests_per_account,
        )
    finally:
        for account in accounts:
            await account.aclose()
    share = settings.kis.process_share["track_a"]
    limit = sum(settings.kis.usable_per_second(a) for a in settings.kis.accounts) * share
    bound_s = len(targets) / limit
    return {
        "symbols": len(targets),
        "succeeded": len(run.succeeded),
        "failed": len(run.failed),
        "calls": run.calls,
        "duration_s": round(run.wall_s, 2),
        "bound_s": round(bound_s, 2),
        "ratio": round(run.wall_s / bound_s, 3),
        "rate_per_s": round(run.rate_per_s, 2),
        "limit_per_s": round(limit, 2),
    }


def bench_cycles(sizes: list[int], rate: int, accounts: int) -> dict[str, Any]:
    """Time one cycle per size against a fresh simulator; the report as one object."""
    with (
        simulator_process(rate) as (rest, clock),
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = Settings(kis=simulator_kis(rest, tmp, rate, accounts))
        cycles = [asyncio.run(_cycle(settings, clock, _targets(n))) for n in sizes]
        gateway = httpx.get(rest + "/_sim/stats", timeout=10).json()
    return {
        "cycles": cycles,
        "egw00201": gateway["rate_limited"],
        "busiest_second": max(gateway["peak_per_second"], default=0),
        "gateway_limit_per_s": rate,
    }


@app.callback(invoke_without_command=True)
def track_a(
    symbols: Annotated[str, typer.Option(help="cycle sizes, comma-separated")] = "1000,2500",
    rate: Annotated[int, typer.Option(min=1, help="each account's REST calls/s at KIS")] = 20,
    accounts: Annotated[int, typer.Option(min=1, max=8, help="accounts")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """One Track A cycle per size at real speed, against N / rate."""
    setup_logging("WARNING")
    sizes = [int(n) for n in symbols.split(",")]
    report = bench_cycles(sizes, rate, accounts)
    typer.echo("track-a bench (real time; the simulator enforces each key's window)")
    for c in report["cycles"]:
        typer.echo(
            f"  {c['symbols']:>5} symbols  {c['duration_s']:>8.2f} s  bound N/rate "
            f"{c['bound_s']:>8.2f} s  ratio {c['ratio']:.3f} (target <= 1.05)  "
            f"{c['rate_per_s']}/s of {c['limit_per_s']}/s, {c['failed']} failed"
        )
    typer.echo(
        f"  gateway: {report['egw00201']} EGW00201, busiest second {report['busiest_second']} "
        f"calls of {report['gateway_limit_per_s']} allowed"
    )
    if as_json:
        typer.echo(json.dumps(report))
    failed = any(c["failed"] for c in report["cycles"]) or report["egw00201"]
    raise typer.Exit(1 if failed else 0)
