"""``observer bench etf-series``: the simulator serving a year of ETF daily rows.

A first load asks, for every ETF, 250 sessions of NAV series (FHPST02440200) and 52 weeks of
daily chart (FHKST03010100), both answered from bars the simulator draws from each session's
minute path. The bench serves them for N ETFs ``batched`` (sessions drawn in blocks, as the
simulator does) and ``per_day`` (the baseline: one path per ETF and session, built alone), on
fresh markets of the same seed; it prints both costs and checks the answers are identical.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

import typer

from harness.sim.market import BARS_PER_DAY, DayBar, Market, bars_value
from harness.sim.server import Simulator
from observer.calendar.clock import clock_from_spec
from observer.calendar.trading import TradingCalendar

__all__ = ["app", "bench_series"]

app = typer.Typer(help="The simulator serving 250 sessions of daily rows for N ETFs.")
CLOCK = "2026-11-20T15:38:00+09:00@1x"  # the demo's ETF daily run
PAGES = (("20260624", "20261120"), ("20260130", "20260623"), ("20251120", "20260129"))


def _per_day(market: Market) -> Callable[[str, date], DayBar]:
    """The baseline: every session's bar from its own minute path, built alone."""

    def bar(symbol: str, day: date) -> DayBar:
        path = market._paths(symbol, (day,))[0]
        return DayBar(
            open=path.day_open,
            high=int(path.high.max()),
            low=int(path.low.min()),
            close=path.day_close,
            volume=int(path.volume.sum()),
            value=bars_value(path, BARS_PER_DAY),
            prev_close=path.prev_close,
        )

    return bar


def _serve(market: Market, symbols: list[str], per_day: bool) -> tuple[float, float, bytes, int]:
    """Both series of every symbol, three pages each: wall s, CPU s, the answers, rows."""
    if per_day:
        market.daily_bar = _per_day(market)  # type: ignore[method-assign, assignment]
    sim = Simulator(market, clock_from_spec(CLOCK))
    answers: list[bytes] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for symbol in symbols:
        for start, end in PAGES:
            query = {"FID_INPUT_ISCD": symbol, "FID_INPUT_DATE_1": start, "FID_INPUT_DATE_2": end}
            for answer in (sim.etf_nav_daily(query), sim.daily_chart(query)):
                answers.append(answer.body)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows = sum(len(a.get("output") or a.get("output2") or []) for a in map(json.loads, answers))
    return wall, cpu, b"".join(answers), rows


def bench_series(count: int, seed: int = 1) -> dict[str, Any]:
    """Serve both series for ``count`` ETFs, batched and per day; the report as one object."""

    def market() -> Market:
        return Market(seed, TradingCalendar(), stocks=2500, etfs=1000)

    symbols = sorted(s for s, x in market().listings.items() if x.group == "EF")[:count]
    batched = _serve(market(), symbols, per_day=False)
    baseline = _serve(market(), symbols, per_day=True)
    return {
        "etfs": len(symbols),
        "sessions": batched[3] // (2 * max(len(symbols), 1)),
        "answers": 2 * len(PAGES) * len(symbols),
        "rows": batched[3],
        "batched_s": round(batched[0], 2),
        "batched_cpu_s": round(batched[1], 2),
        "per_day_s": round(baseline[0], 2),
        "per_day_cpu_s": round(baseline[1], 2),
        "ratio": round(batched[0] / baseline[0], 3),
        "cpu_ratio": round(batched[1] / baseline[1], 3),
        "identical": batched[2] == baseline[2],
    }


@app.callback(invoke_without_command=True)
def etf_series(
    etfs: Annotated[int, typer.Option(min=1, help="ETFs to serve")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Serve 250 sessions of NAV series and daily chart for N ETFs: batched against per day."""
    r = bench_series(etfs)
    typer.echo(
        f"etf-series bench: {r['etfs']} ETFs x {r['sessions']} sessions: {r['answers']} answers, "
        f"{r['rows']} rows\n"
        f"  batched {r['batched_s']:>8.2f} s ({r['batched_cpu_s']:.2f} s CPU)   "
        f"per day {r['per_day_s']:>8.2f} s ({r['per_day_cpu_s']:.2f} s CPU)   "
        f"ratio {r['ratio']:.3f} (CPU {r['cpu_ratio']:.3f})   identical answers: {r['identical']}"
    )
    if as_json:
        typer.echo(json.dumps(r))
    raise typer.Exit(0 if r["identical"] and r["rows"] else 1)
