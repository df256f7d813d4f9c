"""``observer bench track-b``: one slot evaluation over N candidates (target < 20 ms for 2,500).

The worst case, every universe stock triggered at once and every slot already held: the trigger
engine over N Track A snapshots plus `SlotBook.evaluate` (best of ``repeats``), against a bare
``sorted`` of N score tuples. Also the context sync's computation for 1,000 symbols (< 2 s).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import typer

from bus.events import PriceSnapshot
from harness.bench.timing import best_seconds
from observer.calendar.phases import KST
from observer.config.workers import TrackBSettings
from observer.kis.settings import StreamSettings
from workers.track_b import opening_rank as sync
from workers.track_b.slots import SlotBook
from workers.track_b.triggers import Reference, TriggerEngine

__all__ = ["app", "bench_slots"]

app = typer.Typer(help="Trigger and slot evaluation time against a bare sort.")

_OPEN = datetime(2026, 11, 20, 9, 0, tzinfo=KST)


def _inputs(count: int) -> tuple[dict[str, Reference], list[PriceSnapshot], int]:
    references, snapshots = {}, []
    at = _OPEN + timedelta(minutes=40)
    now_ns = int(at.timestamp() * 1e9)
    for n in range(count):
        symbol = f"{100000 + n:06d}"
        references[symbol] = Reference(symbol, 10**11 + n * 10**8, 10_000, 100_000, 200.0)
        volume = 100_000 * (1 + n % 7)  # every one far above a tenth of its daily average
        snapshots.append(
            PriceSnapshot(
                cycle_id="20261120-0940",
                symbol=symbol,
                market="KOSPI",
                observed_ns=now_ns,
                price=10_300,
                change=300,
                change_rate=Decimal("3.00"),
                open=10_000,
                high=10_400 + n % 50,
                low=9_900,
                volume=volume,
                traded_value=volume * 10_000,
                base_price=10_000,
            )
        )
    return references, snapshots, now_ns


def bench_slots(count: int, accounts: int, repeats: int) -> dict[str, Any]:
    """Time the triggers of ``count`` snapshots, then one evaluation over full sessions."""
    settings = TrackBSettings()
    references, snapshots, now_ns = _inputs(count)
    names = [f"acct{n}" for n in range(1, accounts + 1)]
    outcome: dict[str, int] = {}
    engines: list[TriggerEngine] = []

    def triggers() -> None:
        engine = TriggerEngine(settings, references, _OPEN)
        for snapshot in snapshots:
            engine.on_snapshot(snapshot)
        engines[:] = [engine]

    triggers()
    capacity = StreamSettings().max_registrations

    def evaluate() -> None:
        candidates = engines[0].candidates(now_ns)
        book = SlotBook(names, capacity)
        book.evaluate(candidates[: len(names) * capacity], now_ns - 10**12, names)  # all held
        decisions = book.evaluate(candidates, now_ns, names, min_hold_ns=0)
        outcome.clear()
        for d in decisions:
            outcome[d.action] = outcome.get(d.action, 0) + 1

    def baseline() -> None:
        rows = [(-float(s.volume), -references[s.symbol].market_cap, s.symbol) for s in snapshots]
        sorted(rows)

    # Context sync's computation: four opening cycles of 1,000 symbols (required < 30 s;
    # target < 2 s), replayed into a fresh engine, summarised and ranked.
    opening = [
        msgspec.structs.replace(
            s, observed_ns=s.observed_ns - k * 600 * 10**9, volume=s.volume // (k + 1)
        )
        for k in range(4)
        for s in snapshots[:1000]
    ]

    def context() -> None:
        engine = TriggerEngine(settings, references, _OPEN)
        for snapshot in sorted(opening, key=lambda s: s.observed_ns):
            engine.on_snapshot(snapshot)
        found = sync.openings(opening)
        sync.ranked(found, sync.baseline(found))

    context_s = best_seconds(context, repeats)
    trigger_s = best_seconds(triggers, repeats)
    evaluate_s = best_seconds(evaluate, repeats)
    raw = best_seconds(baseline, repeats)
    return {
        "candidates": count,
        "accounts": accounts,
        "slots": accounts * capacity,
        "triggers_ms": round(trigger_s * 1000, 2),
        "context_symbols": len(opening) // 4,
        "context_ms": round(context_s * 1000, 2),
        "evaluate_ms": round(evaluate_s * 1000, 2),
        "baseline_ms": round(raw * 1000, 3),
        "ratio": round(evaluate_s / raw, 1),
        "outcome": outcome,
    }


@app.callback(invoke_without_command=True)
def track_b(
    candidates: Annotated[int, typer.Option(min=1, help="triggered universe stocks")] = 2500,
    accounts: Annotated[int, typer.Option(min=1, max=8, help="accounts, 41 slots each")] = 3,
    repeats: Annotated[int, typer.Option(min=1, help="best of this many")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Triggers and one slot evaluation over every candidate, against a bare sort."""
    report = bench_slots(candidates, accounts, repeats)
    typer.echo(
        f"track-b bench: {report['candidates']:,} candidates, {report['slots']} slots held\n"
        f"  slot evaluation  {report['evaluate_ms']} ms (target < 20 ms; seed: < 1 s)\n"
        f"  bare sort        {report['baseline_ms']} ms  ratio {report['ratio']}\n"
        f"  triggers         {report['triggers_ms']} ms for {report['candidates']:,} snapshots\n"
        f"  context sync     {report['context_ms']} ms for {report['context_symbols']:,} "
        f"symbols x 4 cycles (target < 2 s; seed: < 30 s)\n"
        f"  decisions        {report['outcome']}"
    )
    if as_json:
        typer.echo(json.dumps(report))
