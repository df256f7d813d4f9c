"""The daily run's own alerts, as events: KRX's table, failed calls, NAVs, history gaps.

`workers.etf.daily` decides what is present and what is over; the subjects here are what
its `over` matches: ``etf_daily_failures`` and ``etf_nav_pending`` name their session,
``kis_rate_limited`` its account (`observer.kis.rate_alert.rate_alerts`, as the holdings and
repair jobs), the others are one per run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date

from bus.events import Alert, Event
from observer.config.tree import Settings
from observer.kis.rate_alert import rate_alerts
from workers.etf.collect import Collected
from workers.etf.details import mismatch_message, premium_mismatches

__all__ = ["gaps_alert", "pending_alert", "run_alerts"]


def run_alerts(
    settings: Settings,
    send: Callable[[Event], object],
    day: date,
    symbols: Sequence[str],
    got: Collected,
) -> set[tuple[str, str]]:
    """The run's own alerts, sent; returns their conditions.

    KRX's table, failed calls and charts, premiums off, and KIS refusing an account's calls
    as over its rate limit (`refused_too_often`).
    """
    present: set[tuple[str, str]] = set()
    etf = settings.etf
    if got.krx_error:
        present.add(("etf_krx_table_failed", ""))
        send(
            Alert(
                severity="warning",
                code="etf_krx_table_failed",
                message=f"KRX's ETF table for {day}: {got.krx_error}; KIS rows only",
            )
        )
    if got.failed:
        present.add(("etf_daily_failures", day.isoformat()))
        failed_pct = 100 * len(got.failed) / max(len(symbols), 1)
        sample = "; ".join(f"{s}: {e}" for s, e in list(got.failed.items())[:3])
        send(
            Alert(
                severity="error" if failed_pct > etf.max_failed_pct else "warning",
                code="etf_daily_failures",
                subject=day.isoformat(),
                message=f"{len(got.failed)} of {len(symbols)} ETFs failed for {day} "
                f"(their earlier rows are kept; the next run asks the day again): {sample}"[:2000],
            )
        )
    if got.chart_failed:
        present.add(("etf_chart_failures", ""))
        sample = "; ".join(f"{s}: {e}" for s, e in list(got.chart_failed.items())[:3])
        send(
            Alert(
                severity="warning",
                code="etf_chart_failures",
                message=f"{len(got.chart_failed)} ETFs got no daily highs and lows for {day} "
                f"(their 52-week range stays close-based; the next run asks again): {sample}"[
                    :2000
                ],
            )
        )
    mismatched = premium_mismatches(got.rows.values())
    if mismatched:
        present.add(("etf_premium_mismatch", ""))
        message = mismatch_message(mismatched, len(got.rows), day)
        send(Alert(severity="warning", code="etf_premium_mismatch", message=message))
    present |= rate_alerts(settings.kis, send, "etf_daily", got.refusals)
    return present


def pending_alert(session: date, symbols: Sequence[str], day: date) -> Alert:
    """``etf_nav_pending`` for ``session``'s rows without a NAV."""
    later = "a later run replaces them" if session == day else "later runs ask KIS again"
    return Alert(
        severity="warning",
        code="etf_nav_pending",
        subject=session.isoformat(),
        message=f"{len(symbols)} ETFs have no published NAV for {session} yet "
        f"(e.g. {', '.join(symbols[:5])}); {later}",
    )


def gaps_alert(
    left: Mapping[str, Sequence[date]], unfilled: Sequence[str], window: Sequence[date], repair: int
) -> Alert:
    """``etf_history_gaps``: sessions missing that the series, asked, did not give."""
    sample = "; ".join(f"{s}: {len(left[s])} from {left[s][0]}" for s in unfilled[:5])
    return Alert(
        severity="warning",
        code="etf_history_gaps",
        message=f"{len(left)} ETFs lack {sum(len(h) for h in left.values())} stored sessions "
        f"of the last {len(window)}, and KIS's series did not give them ({sample}); their "
        f"premium windows and 52-week range count without them; `observer etf backfill "
        f"--date D` mends the {repair} sessions up to D"[:2000],
    )
