"""The ``etf_holdings`` job (weekly): every ETF's constituents, checked against its count.

One FHKST121600C0 per ETF, one answer each (KIS cannot continue it with ``tr_cont``), over
every account under the ETF jobs' share, sent as one `EtfHoldings` each. The lines are
checked against the answer's own count and the day's stored quote count: a difference (or an
answer saying there is more, which cannot be asked for) is an
``etf_holdings_count_mismatch`` warning per ETF, resolved by a run that finds them equal;
failed calls, and answers listing a constituent twice, are ``etf_holdings_failures`` (the
ETF's earlier set stays current); KIS refusing an account's calls as over its rate limit too
often, ``kis_rate_limited`` (`observer.kis.rate_alert.rate_alerts`), over once a run's calls
as that account are not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import date

import msgspec

from bus.events import Alert, EtfDaily, EtfHoldings, EtfRun, Event
from bus.producer import Producer
from observer.calendar.clock import Clock
from observer.config.tree import Settings
from observer.db.etf_queries import etf_history
from observer.kis.client import KisClient
from observer.kis.etf import holdings_of
from observer.kis.rate_alert import KIS_RATE_LIMITED, judged, rate_alerts
from observer.process.heartbeat import Heartbeat
from workers.etf.collect import Collected, fan_out
from workers.etf.jobs import beat, read, resolve, symbols_of

__all__ = ["HoldingsSummary", "count_problem", "run_holdings"]

CODES = ("etf_holdings_count_mismatch", "etf_holdings_failures", KIS_RATE_LIMITED)


class HoldingsSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``observer etf holdings`` prints (``--json``: these keys, in this order)."""

    date: str
    listed: int
    collected: int
    lines: int
    most_lines: int
    cut_short: int  # ETFs whose answer said there is more, or held fewer lines than it counts
    count_mismatches: int
    unchecked: int  # ETFs without FHPST02400000's count to check against
    failures: int
    failed_over_limit: bool  # more than ``max_failed_pct`` failed: the command exits 1
    kis_calls: int
    elapsed_s: float
    resolved: int


def count_problem(holdings: EtfHoldings, more: bool = False) -> str | None:
    """Why the ETF's counts disagree (None: they agree, or nothing to compare).

    ``more``: the answer said there is more (``tr_cont`` F or M), which this TR cannot page.
    Fewer lines than the answer's own count, or ``more``, reads as an answer cut short.
    """
    lines = len(holdings.lines)
    problems = []
    if holdings.reported_count is not None and holdings.reported_count != lines:
        problems.append(f"the answer counts {holdings.reported_count}")
    if holdings.quote_count is not None and holdings.quote_count != lines:
        problems.append(f"FHPST02400000 counts {holdings.quote_count}")
    if more:
        problems.append("the answer says there is more (tr_cont), which cannot be asked for")
    if not problems:
        return None
    return (
        f"{holdings.symbol} has {lines} holdings on {holdings.trade_date}, but "
        + " and ".join(problems)
        + (f" (the answer looks cut short at {lines} lines)" if _cut_short(holdings, more) else "")
    )


def _cut_short(holdings: EtfHoldings, more: bool) -> bool:
    return more or (holdings.reported_count or 0) > len(holdings.lines)


async def _collect(
    settings: Settings,
    clock: Clock,
    symbols: Sequence[str],
    day: date,
    quotes: dict[str, EtfDaily],
    progress: Callable[[int, int], None],
) -> tuple[dict[str, tuple[EtfHoldings, bool]], Collected]:
    found: dict[str, tuple[EtfHoldings, bool]] = {}
    out = Collected()

    async def one(client: KisClient, symbol: str) -> None:
        summary, rows, more = await client.etf_components(symbol)
        found[symbol] = (holdings_of(symbol, day, summary, rows, quotes.get(symbol)), more)

    await fan_out(settings, clock, symbols, one, out, progress)
    return found, out


def run_holdings(
    settings: Settings,
    clock: Clock,
    day: date,
    producer: Producer,
    notifier: Heartbeat,
    only: Sequence[str] = (),
) -> HoldingsSummary:
    """The ``etf_holdings`` job for session ``day`` (``only``: these ETFs, not every one)."""
    started = time.monotonic()
    send: Callable[[Event], object] = producer.send
    symbols = sorted(set(only)) if only else symbols_of(settings, send)[1]
    stored = read(settings, lambda conn: etf_history(conn, day, day))
    quotes = {s: days[day] for s, days in stored.items() if day in days}
    found, out = asyncio.run(_collect(settings, clock, symbols, day, quotes, beat(notifier)))
    present: set[tuple[str, str]] = set()
    for symbol in sorted(found):
        holdings, more = found[symbol]
        send(holdings)
        problem = count_problem(holdings, more)
        if problem is not None:
            present.add(("etf_holdings_count_mismatch", symbol))
            send(
                Alert(
                    severity="warning",
                    code="etf_holdings_count_mismatch",
                    subject=symbol,
                    message=problem,
                    context={"day": day.isoformat()},
                )
            )
    failed_pct = 100 * len(out.failed) / max(len(symbols), 1)
    if out.failed:
        present.add(("etf_holdings_failures", ""))
        sample = "; ".join(f"{s}: {e}" for s, e in list(out.failed.items())[:3])
        send(
            Alert(
                severity="error" if failed_pct > settings.etf.max_failed_pct else "warning",
                code="etf_holdings_failures",
                message=f"{len(out.failed)} of {len(symbols)} ETFs' holdings failed for {day} "
                f"(their earlier sets stay current): {sample}"[:2000],
            )
        )
    present |= rate_alerts(settings.kis, send, "etf_holdings", out.refusals)
    subjects = set(found) | ({""} if not only else set()) | judged(out.refusals)
    resolved = resolve(settings, send, CODES, present, clock, subjects)
    send(
        EtfRun(
            job="etf_holdings",
            trade_date=day,
            applied=True,
            listed=len(symbols),
            collected=len(found),
            calls=out.kis_calls,
            failures=len(out.failed),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    lines = [len(h.lines) for h, _ in found.values()]
    return HoldingsSummary(
        date=day.isoformat(),
        listed=len(symbols),
        collected=len(found),
        lines=sum(lines),
        most_lines=max(lines, default=0),
        cut_short=sum(_cut_short(h, more) for h, more in found.values()),
        count_mismatches=sum(c == "etf_holdings_count_mismatch" for c, _ in present),
        unchecked=sum(h.quote_count is None for h, _ in found.values()),
        failures=len(out.failed),
        failed_over_limit=failed_pct > settings.etf.max_failed_pct,
        kis_calls=out.kis_calls,
        elapsed_s=round(out.elapsed_s, 3),
        resolved=resolved,
    )
