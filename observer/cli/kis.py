"""``observer kis check``: the conformance check a user runs with real credentials."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from observer.cli.support import fail, settings_or_exit
from observer.errors import ConfigError

__all__ = ["kis_app"]

kis_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # help names configuration tables: "[kis] environment"
    help="KIS itself: what the client assumes about it, measured.",
)


@kis_app.command()
def check(
    account: Annotated[
        str | None, typer.Option("--account", help="[kis.accounts] alias (default: the first)")
    ] = None,
    symbol: Annotated[str, typer.Option("--symbol", help="a liquid stock")] = "005930",
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.5, help="WebSocket session length (wall)")
    ] = 60.0,
    etf: Annotated[str, typer.Option("--etf", help="an ETF, for the ETF TRs")] = "069500",
    overseas: Annotated[
        str, typer.Option("--overseas", help="EXCHANGE:SYMBOL, for the overseas TRs")
    ] = "NAS:AAPL",
    budget: Annotated[
        float,
        typer.Option(
            "--budget",
            min=0,
            help="seconds of calls at the account's whole REST budget (0: none; never beside "
            "the running processes)",
        ),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON report on stdout")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml to load")] = None,
) -> None:
    """Measure KIS against what the client assumes, read-only (exit 1 on any mismatch).

    Uses the cached token when one is valid; calls each REST TR once, watches one WebSocket
    session for SECONDS, asks the master host as the master-file job does; with --budget,
    first calls at the account's whole REST budget for that long (EGW00201 counted). Today's
    investor postings answered are held against those the database stores. Secrets are never
    printed. What each row means: docs/kis.md.
    """
    # deferred: the client, WebSocket and rich (about 0.2 s) for this command only
    from datetime import datetime

    from rich.console import Console

    from observer.calendar.clock import clock_from_env
    from observer.calendar.phases import KST
    from observer.kis_check.after_markets import measured_target
    from observer.kis_check.investor import stored_postings
    from observer.kis_check.render import print_table
    from observer.kis_check.rest import Targets
    from observer.kis_check.run import Configured, run_check

    settings = settings_or_exit("observer kis check", config)
    kis, nxt = settings.kis, settings.venues.nxt
    alias = account or kis.accounts[0].alias
    exchange, _, abroad = overseas.partition(":")
    if not abroad:
        fail("observer kis check", f"--overseas {overseas!r}: expected EXCHANGE:SYMBOL", 2)
    targets = Targets(symbol=symbol, etf=etf, exchange=exchange, overseas=abroad)
    clock = clock_from_env()
    today = datetime.fromtimestamp(clock.now_ns() / 1e9, KST).date()
    try:
        report = asyncio.run(
            run_check(
                kis,
                alias,
                targets,
                seconds,
                clock,
                configured=Configured.of(settings),
                budget_s=budget,
                postings=stored_postings(settings.database, symbol, today),
                measured=(
                    measured_target(settings.database, today, "NXT", nxt.after_market_excludes),
                    measured_target(
                        settings.database,
                        today,
                        "KRX",
                        settings.venues.krx.after_market_excludes,
                        otherwise=nxt.after_market_excludes,  # the likeliest, KRX naming none
                    ),
                ),
            )
        )
    except ConfigError as exc:
        fail("observer kis check", str(exc), 2)
    if as_json:
        sys.stdout.write(report.to_json().decode() + "\n")
    else:
        print_table(report, Console(soft_wrap=False, width=max(100, Console().width)))
    raise typer.Exit(1 if report.mismatches else 0)
