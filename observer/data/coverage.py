"""What the observer holds of each minute: one row per symbol, venue and minute of a day.

Every minute of the venue's sessions that day, for each symbol Track B watched on it (or each
asked for), says where it stands:

``ticks``             trades stored, and (once reconciled) as many as the exchange's bar says
``quiet``             watched whole, and no trade happened (the bar, once reconciled, agrees)
``recovered_trades``  trades were missed; the exchange's own trades, recovered for a gap the
                      volume chain measured, make the minute whole (stored trades of `source`
                      ``gap_recovery`` beside the streamed ones: `Catalog.ticks`)
``recovered``         trades were missed; KIS's minute bar stands in for them (`Catalog.bars`)
``missing``           trades were missed and nothing stands in: a gap not (yet) recovered
``not_watched``       the symbol held no slot for the whole minute: nothing was expected

A missed minute with a bar recovered for it is ``recovered``, whatever else covers it: the bar
is the exchange's whole minute.

``verified`` says whether the day's reconciliation with the exchange's bars judged the minute
(it runs after each venue's stream ends); before it, a watched minute's status is what the
stored trades and the recorded gaps say. ``volume`` and ``ticks`` are the stored trades',
``bar_volume`` the exchange's (reconciled minutes), ``gap_id`` the gap that covers it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine

from bus.events import Venue
from observer.calendar.venues import Venues
from observer.data.datasets import KST_TIME
from observer.db.reconciliation_queries import (
    settled_minutes,
    slot_events_between,
    slot_venues_between,
)
from observer.db.retention_queries import day_bounds
from observer.db.slot_queries import MINUTE_NS, held_spans, watched_minutes

__all__ = [
    "COVERAGE_SCHEMA",
    "STATUSES",
    "MinuteFacts",
    "by_trades",
    "coverage_table",
    "tick_facts",
]

STATUSES = ("ticks", "quiet", "recovered_trades", "recovered", "missing", "not_watched")
COVERAGE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("venue", pa.string()),
        ("trading_session", pa.string()),
        ("minute_ns", pa.int64()),
        ("minute_time", KST_TIME),
        ("status", pa.string()),
        ("verified", pa.bool_()),
        ("ticks", pa.int64()),
        ("volume", pa.int64()),
        ("bar_volume", pa.int64()),
        ("gap_id", pa.string()),
    ]
)
# A stream kept to a venue's close holds its last minute whole (an auction's match)
_CLOSE_SLACK_NS = 90 * 10**9
# A reconciled minute's status, as the reconciliation recorded it, in this table's words.
_JUDGED = {
    "complete": "ticks",
    "excess": "ticks",  # more than the bar: stored, and alerted by the reconciliation
    "shifted": "ticks",  # the bars' labels a minute off: compared shifted
    "recovered": "recovered",
    "short": "missing",  # a short minute KIS's bar stands in for since is "recovered"
}


@dataclass(frozen=True, slots=True)
class MinuteFacts:
    """What the database and the archive say of one day, gathered by the `Catalog`.

    ``ticks``: (symbol, venue, minute) -> (trades, volume); ``gaps``: (symbol, venue) ->
    [(gap_id, start_ns, end_ns, state)], a gap recovered with the exchange's trades in the state
    ``recovered_trades`` (`by_trades`); ``bars``: the (symbol, venue, minute)s with a bar
    recovered from KIS.
    """

    ticks: Mapping[tuple[str, str, int], tuple[int, int]]
    gaps: Mapping[tuple[str, str], list[tuple[str, int, int, str]]]
    bars: frozenset[tuple[str, str, int]] = frozenset()


def by_trades(state: str, missing_volume: int | None, bars: int, trades: int) -> bool:
    """Whether a gap was recovered with the exchange's own trades (or proven empty by the chain).

    Gap recovery asks a gap the volume chain measured for its trades first and publishes them
    only when they close the chain; otherwise it asks the bars (`workers.gap_recovery`), or
    finds them fetched for another gap (0 bars, 0 trades: not this).
    """
    settled = state == "recovered" and missing_volume is not None and bars == 0
    return settled and (trades > 0 or missing_volume == 0)


def coverage_table(
    engine: Engine,
    venues: Venues,
    day: date,
    symbols: tuple[str, ...] | None,
    venue: str | None,
    facts: MinuteFacts,
    *,
    edge_ns: int,
    now_ns: int,
) -> pa.Table:
    """The day's coverage (`COVERAGE_SCHEMA`), sorted by symbol, venue and minute."""
    lo, hi = day_bounds(day)
    with engine.connect() as conn:
        chosen = sorted(slot_venues_between(conn, lo, hi))
        watched: dict[tuple[str, str], set[int]] = {}
        for on in chosen if venue is None else [v for v in chosen if v == venue]:
            # A holding never released (its run killed) ends at the venue's close at the latest
            close = venues.close(cast(Venue, on), day)
            last = hi if close is None else int(close.timestamp()) * 10**9 + _CLOSE_SLACK_NS
            until = min(last, now_ns)
            spans = held_spans(slot_events_between(conn, lo, hi, "", on), until)
            for symbol, holdings in spans.items():
                watched[(symbol, on)] = set(watched_minutes(holdings, edge_ns, until))
        minutes, _ = settled_minutes(conn, day)
    judged = {
        (symbol, on, minute): (status, stored, bar, gap_id)
        for symbol, minute, status, stored, bar, gap_id, on in minutes
        if venue is None or on == venue
    }
    compared: dict[tuple[str, str], set[int]] = defaultdict(set)
    for symbol, on, minute in judged:
        compared[(symbol, on)].add(minute)
    pairs = set(watched) | set(compared)
    if symbols is not None:
        wanted = set(symbols)
        pairs = {p for p in pairs if p[0] in wanted}
        unseen = wanted - {symbol for symbol, _ in pairs}  # every minute not watched
        pairs |= {(s, on) for s in unseen for on in ([venue] if venue else chosen or ["KRX"])}
    grids = {on: _grid(venues, on, day) for on in {v for _, v in pairs}}
    columns: dict[str, list[object]] = defaultdict(list)
    for symbol, on in sorted(pairs):
        held = watched.get((symbol, on), set())
        gaps = facts.gaps.get((symbol, on), [])
        grid = grids[on]
        for minute in sorted(set(grid) | held | compared[(symbol, on)]):
            trades, volume = facts.ticks.get((symbol, on, minute), (0, 0))
            status, bar, gap_id, verified = _status(
                judged.get((symbol, on, minute)), minute in held, trades, minute, gaps
            )
            if status == "recovered" and (symbol, on, minute) not in facts.bars:
                status = _by_gaps(minute, gaps)
            for name, value in (
                ("symbol", symbol),
                ("venue", on),
                ("trading_session", grid.get(minute, "")),
                ("minute_ns", minute),
                ("minute_time", minute),
                ("status", status),
                ("verified", verified),
                ("ticks", trades),
                ("volume", volume),
                ("bar_volume", bar),
                ("gap_id", gap_id),
            ):
                columns[name].append(value)
    if not columns:
        return COVERAGE_SCHEMA.empty_table()
    return pa.table(
        [pa.array(columns[f.name], f.type) for f in COVERAGE_SCHEMA], schema=COVERAGE_SCHEMA
    )


def _status(
    judged: tuple[str, int, int, str] | None,
    held: bool,
    trades: int,
    minute: int,
    gaps: Iterable[tuple[str, int, int, str]],
) -> tuple[str, int | None, str | None, bool]:
    """(status, bar volume, gap id, verified) of one minute."""
    if judged is not None:
        status, _, bar, gap_id = judged
        word = _JUDGED.get(status, "ticks")
        if word == "ticks" and bar == 0 and trades == 0:
            word = "quiet"
        return word, bar, gap_id or None, True
    if not held:
        return "not_watched", None, None, False
    for gap_id, start, end, state in gaps:
        if start < minute + MINUTE_NS and end > minute:
            settled = state in ("recovered", "recovered_trades")
            return ("recovered" if settled else "missing"), None, gap_id, False
    return ("ticks" if trades else "quiet"), None, None, False


def _by_gaps(minute: int, gaps: Iterable[tuple[str, int, int, str]]) -> str:
    """A recovered minute with no bar of its own: by the exchange's trades, or by KIS's bars.

    ``recovered_trades`` if a gap recovered with the exchange's trades covers it, else
    ``recovered`` (KIS's bars proved it quiet).
    """
    for _, start, end, state in gaps:
        if state == "recovered_trades" and start < minute + MINUTE_NS and end > minute:
            return "recovered_trades"
    return "recovered"


def _grid(venues: Venues, venue: str, day: date) -> dict[int, str]:
    """Each minute (its opening instant) of ``venue``'s sessions on ``day``, with its session.

    A minute's session is its first instant's: an auction's match prints at its end, the
    first instant of a minute (KRX's 09:00 and 15:30, Nextrade's 15:40), so the minute is the
    auction's, as its trades, its bar and its reconciliation are (`Venues.session_of_ns`),
    and it is in the grid though no session follows (KRX's 15:30). A minute a session opens
    within (Nextrade's 09:00, its main session from 09:00:30) is that session's.
    """
    grid: dict[int, str] = {}
    for start, end, span in venues.spans(cast(Venue, venue), day):
        first = int(start.timestamp()) * 10**9
        first -= first % MINUTE_NS  # the minute the session opens in
        last = int(end.timestamp()) * 10**9 + (MINUTE_NS if span.match_at_end else 0)
        for minute in range(first, last, MINUTE_NS):
            at = venues.session_of_ns(cast(Venue, venue), minute)
            grid.setdefault(minute, at or span.session)
    return grid


def tick_facts(ticks: pa.Table) -> dict[tuple[str, str, int], tuple[int, int]]:
    """(symbol, venue, minute) -> (trades, volume) of a table of ticks."""
    if not ticks.num_rows:
        return {}
    # Integer division of positive instants: the minute each trade's stamp falls in.
    minute = pc.multiply(pc.divide(ticks["exchange_ns"], MINUTE_NS), MINUTE_NS)
    columns = {"symbol": ticks["symbol"], "venue": ticks["venue"], "minute": minute}
    grouped = (
        pa.table({**columns, "qty": ticks["qty"]})
        .group_by(["symbol", "venue", "minute"], use_threads=False)
        .aggregate([("qty", "count"), ("qty", "sum")])
    )
    return {
        (s, v, m): (n, q)
        for s, v, m, n, q in zip(
            grouped["symbol"].to_pylist(),
            grouped["venue"].to_pylist(),
            grouped["minute"].to_pylist(),
            grouped["qty_count"].to_pylist(),
            grouped["qty_sum"].to_pylist(),
            strict=True,
        )
    }
