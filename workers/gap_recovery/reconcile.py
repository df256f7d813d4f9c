"""The day's reconciliation as pure functions: which minutes were watched, and how each fares.

A symbol is *watched* while it holds a Track B slot (`held_spans`); a minute is compared
only if the slot was held for the whole of it with ``edge_ns`` to spare on both sides
(`watched_minutes`; both in `observer.db.slot_queries`, shared with `observer.data`). Each
watched minute's stored trades, by the minute of their exchange stamp, are compared with the
exchange's final bar by volume alone (`check_minutes`): KIS's bars carry no number of trades.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from bus.events import MinuteCheck, MinuteStatus, TradingSession
from observer.db.slot_queries import MINUTE_NS, Span, held_spans, watched_minutes
from workers.gap_recovery.plan import STAMP_NS

__all__ = ["MINUTE_NS", "Span", "check_minutes", "held_spans", "runs_of", "watched_minutes"]


def runs_of(minutes: list[int], join_ns: int) -> list[list[int]]:
    """``minutes`` (sorted) cut into runs wherever two are more than ``join_ns`` apart.

    One bar query covers a run; a long pause between two holdings costs a second query
    rather than pages of bars nobody compares.
    """
    runs: list[list[int]] = []
    for minute in minutes:
        if runs and minute - runs[-1][-1] <= join_ns:
            runs[-1].append(minute)
        else:
            runs.append([minute])
    return runs


def check_minutes(
    minutes: Iterable[int],
    stored: Mapping[int, tuple[int, int]],
    bars: Mapping[int, int],
    recovered: set[int],
    gaps: Iterable[tuple[str, int, int]],
    session_of: Callable[[int], TradingSession] = lambda minute_ns: "",
    recovered_trades: Mapping[int, int] | None = None,
) -> list[MinuteCheck]:
    """Compare each minute's stored trades with its bar.

    Parameters
    ----------
    minutes:
        The watched minutes (opening instants, UTC ns).
    stored:
        Minute -> (volume, trades) stored from the stream.
    bars:
        Minute -> the bar's volume; a minute KIS has no bar for had no trade.
    recovered:
        The minutes whose bar gap recovery has stored.
    gaps:
        The symbol's recorded gaps, ``(gap_id, start_ns, end_ns)``: a short (or recovered)
        minute one of them reaches is explained by it (``gap_id``); one none reaches is a
        detection miss (``gap_id`` empty), published as a gap of its own. Whatever its
        state: an unrecoverable gap was recorded all the same (no miss), and it is retaken
        for ``retake_days``, which recovers its minute when KIS has the bar.
    session_of:
        The venue's session of a minute (its opening instant).
    recovered_trades:
        Minute -> the volume of the exchange's trades gap recovery stored: a minute short
        in the stream that they make whole is ``recovered``; more than the bar, ``excess``.
    """
    extra = recovered_trades or {}
    spans = sorted(gaps, key=lambda g: g[1])
    checks = []
    for minute in minutes:
        volume, trades = stored.get(minute, (0, 0))
        added = extra.get(minute, 0)
        bar = bars.get(minute, 0)
        gap_id = ""
        if volume + added > bar:
            status: MinuteStatus = "excess"
        elif volume == bar:
            status = "complete"
        else:
            whole = added and volume + added == bar
            status = "recovered" if whole or minute in recovered else "short"
            gap_id = next(
                (
                    g
                    for g, start, end in spans
                    if start < minute + MINUTE_NS and max(end, start) + STAMP_NS > minute
                ),
                "",
            )
        checks.append(
            MinuteCheck(
                minute_ns=minute,
                status=status,
                stored_volume=volume,
                bar_volume=bar,
                stored_trades=trades,
                gap_id=gap_id,
                trading_session=session_of(minute),
            )
        )
    return checks
