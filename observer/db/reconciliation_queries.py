"""The read queries of the day's reconciliation with the exchange's minute bars.

Beside `observer.db.queries` (every other read query): what the verify compares, the stored
ticks per minute, the slot events and gaps that say which minutes were watched and why one
may be short, and the reconciliations already stored (`workers.gap_recovery.verify`,
`workers.gap_recovery.report`).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, Connection, func, select, true
from sqlalchemy.orm import InstrumentedAttribute

from observer.db.models import (
    BarRow,
    Gap,
    MinuteCheckRow,
    ReconciliationRow,
    SlotDecisionRow,
    TradeTickRow,
)
from observer.db.retention_queries import day_bounds

__all__ = [
    "RECOVERED_BY",
    "chain_span",
    "gaps_of",
    "last_reconciled_minutes",
    "reconciled_minutes",
    "reconciled_symbols",
    "recovered_bar_minutes",
    "settled_minutes",
    "slot_events_between",
    "slot_venues_between",
    "tick_minutes",
]

_MINUTE_NS = 60 * 1_000_000_000


def slot_events_between(
    conn: Connection, lo_ns: int, hi_ns: int, host: str = "", venue: str = "KRX"
) -> list[tuple[str, str, str, int]]:
    """Track B's slot decisions on ``venue`` in ``[lo_ns, hi_ns)``, in order.

    Rows of ``action, symbol, replaced_symbol, produced_ns``. With ``host``, that host's: a
    named host's decisions are those of its sources (``track_b@c2``), and each collectors
    host reconciles what it watched. A decision's venue is its registration's: each venue's
    watched minutes are its own.
    """
    s = SlotDecisionRow
    query = (
        select(s.action, s.symbol, s.replaced_symbol, s.produced_ns)
        .where(
            s.produced_ns >= lo_ns,
            s.produced_ns < hi_ns,
            s.venue == venue,
            _of_host(s.source, host),
        )
        .order_by(s.produced_ns, s.seq)
    )
    return [(a, sym, rep, at) for a, sym, rep, at in conn.execute(query)]


def slot_venues_between(conn: Connection, lo_ns: int, hi_ns: int, host: str = "") -> set[str]:
    """The venues of Track B's slot decisions in ``[lo_ns, hi_ns)``; with ``host``, its."""
    s = SlotDecisionRow
    query = (
        select(s.venue)
        .distinct()
        .where(s.produced_ns >= lo_ns, s.produced_ns < hi_ns, _of_host(s.source, host))
    )
    return set(conn.execute(query).scalars())


def _of_host(source: InstrumentedAttribute[str], host: str) -> ColumnElement[bool]:
    """Rows whose source is qualified with ``host`` (``track_b@c2``, ``gap_verify@c2``).

    A host without a name (``host`` empty) takes every row, whatever its source: it is the
    only collectors host.
    """
    return source.endswith(f"@{host}", autoescape=True) if host else true()


# The source of the trades gap recovery stores (and @host): `workers.gap_recovery.SOURCE`
RECOVERED_BY = "gap_recovery"


def _recovered(source: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """Rows gap recovery published (``gap_recovery``, ``gap_recovery@c2``), not the stream."""
    return (source == RECOVERED_BY) | source.startswith(f"{RECOVERED_BY}@", autoescape=True)


def tick_minutes(
    conn: Connection,
    symbol: str,
    lo_ns: int,
    hi_ns: int,
    venue: str = "KRX",
    *,
    recovered: bool = False,
) -> dict[int, tuple[int, int]]:
    """The stored trades of ``symbol`` on ``venue`` per minute: (volume, count).

    The stream's (``recovered`` False), or those gap recovery got from the exchange for a
    gap (True). A minute is its trades' exchange stamp's; each venue's are checked against
    its own bars.
    """
    t = TradeTickRow
    minute = t.exchange_ns - t.exchange_ns % _MINUTE_NS
    by_source = _recovered(t.source)
    query = (
        select(minute, func.sum(t.qty), func.count())
        .where(
            t.symbol == symbol,
            t.venue == venue,
            t.exchange_ns >= lo_ns,
            t.exchange_ns < hi_ns,
            by_source if recovered else ~by_source,
        )
        .group_by(minute)
    )
    return {int(m): (int(volume), int(count)) for m, volume, count in conn.execute(query)}


def chain_span(
    conn: Connection, symbol: str, venue: str, lo_ns: int, hi_ns: int
) -> tuple[int, int, int, int]:
    """``symbol``'s stored trades on ``venue`` in ``[lo_ns, hi_ns]``, stream and recovered.

    ``(trades, shares, first, last)``: their count and quantities, the cumulative volume
    before the first (its ACML_VOL less its quantity) and the last's: the chain's difference
    is ``last - first``.
    """
    t = TradeTickRow
    query = select(
        func.count(), func.sum(t.qty), func.min(t.cum_volume - t.qty), func.max(t.cum_volume)
    ).where(t.symbol == symbol, t.venue == venue, t.exchange_ns >= lo_ns, t.exchange_ns <= hi_ns)
    count, shares, first, last = conn.execute(query).one()
    return int(count), int(shares or 0), int(first or 0), int(last or 0)


def recovered_bar_minutes(
    conn: Connection, symbol: str, lo_ns: int, hi_ns: int, venue: str = "KRX"
) -> set[int]:
    """The minutes in ``[lo_ns, hi_ns)`` of ``symbol``'s bars recovered on ``venue``."""
    query = select(BarRow.minute_ns).where(
        BarRow.symbol == symbol,
        BarRow.venue == venue,
        BarRow.quality == "recovered",
        BarRow.minute_ns >= lo_ns,
        BarRow.minute_ns < hi_ns,
    )
    return set(conn.execute(query).scalars())


def gaps_of(
    conn: Connection, symbol: str, lo_ns: int, hi_ns: int, venue: str = "KRX"
) -> list[tuple[str, int, int, str, str]]:
    """The recorded gaps of ``symbol`` on ``venue`` that touch ``[lo_ns, hi_ns)``.

    Rows of ``gap_id, start_ns, end_ns, reason, state``.
    """
    query = select(Gap.gap_id, Gap.start_ns, Gap.end_ns, Gap.reason, Gap.state).where(
        Gap.symbol == symbol, Gap.venue == venue, Gap.start_ns < hi_ns, Gap.end_ns >= lo_ns
    )
    return [(g, start, end, reason, state) for g, start, end, reason, state in conn.execute(query)]


def reconciled_symbols(conn: Connection, day: date, host: str = "") -> set[str]:
    """The symbols with a stored reconciliation of ``day``; with ``host``, by that host.

    A named host's reconciliations are those of its sources (``gap_recovery@c2``, and
    ``gap_verify@c2`` on demand), as its watched symbols are (`slot_events_between`): host
    c1's reconciliation of a day says nothing of what host c2 watched. Whether it covered the
    whole day is `last_reconciled_minutes`'s to say.
    """
    r = ReconciliationRow
    query = select(r.symbol).where(r.trade_date == day, _of_host(r.source, host))
    return set(conn.execute(query).scalars())


def last_reconciled_minutes(
    conn: Connection, day: date, host: str = ""
) -> dict[tuple[str, str], int]:
    """Each (symbol, venue)'s last minute a stored reconciliation of ``day`` compared.

    With ``host``, the host's reconciliations alone.

    A reconciliation compares a symbol's watched minutes up to when it ran: one made during
    the session (``observer gap-recovery verify``) stops at the minutes closed by then, and
    only one that reaches the symbol's last watched minute covers its day.
    """
    c = MinuteCheckRow
    query = (
        select(c.symbol, c.venue, func.max(c.minute_ns))
        .where(c.trade_date == day, _of_host(c.source, host))
        .group_by(c.symbol, c.venue)
    )
    return {(symbol, venue): int(last) for symbol, venue, last in conn.execute(query)}


def reconciled_minutes(
    conn: Connection, day: date
) -> tuple[list[tuple[str, int, str, int, int, str, str]], int]:
    """``day``'s newest reconciliation of each symbol on each venue, and the calls they cost.

    Minutes as rows of ``symbol, minute_ns, status, stored_volume, bar_volume, gap_id, venue``.
    """
    r = ReconciliationRow
    headers = conn.execute(
        select(r.symbol, r.venue, r.source, r.seq, r.calls)
        .where(r.trade_date == day)
        .order_by(r.produced_ns, r.seq)
    ).all()
    newest = {
        (symbol, venue): (source, seq, calls) for symbol, venue, source, seq, calls in headers
    }
    chosen = {(source, seq) for source, seq, _ in newest.values()}
    c = MinuteCheckRow
    query = select(
        c.source,
        c.seq,
        c.symbol,
        c.minute_ns,
        c.status,
        c.stored_volume,
        c.bar_volume,
        c.gap_id,
        c.venue,
    ).where(c.trade_date == day)
    rows = [
        (symbol, minute, status, stored, bar, gap_id, venue)
        for source, seq, symbol, minute, status, stored, bar, gap_id, venue in conn.execute(query)
        if (source, seq) in chosen
    ]
    return sorted(rows), sum(calls for _, _, calls in newest.values())


def settled_minutes(
    conn: Connection, day: date
) -> tuple[list[tuple[str, int, str, int, int, str, str]], int]:
    """`reconciled_minutes`, each short minute whose bar KIS gave since as ``recovered``.

    The one rule of when a minute the reconciliation found short stops being missing: its
    trades are lost, and the exchange's own bar of it (a recovered bar stored for the
    symbol, venue and minute) stands in for them. The day report and `observer.data`'s
    coverage both count by it.
    """
    minutes, calls = reconciled_minutes(conn, day)
    lo, hi = day_bounds(day)
    short = {(symbol, venue) for symbol, _, status, _, _, _, venue in minutes if status == "short"}
    recovered = {
        (symbol, venue, minute)
        for symbol, venue in short
        for minute in recovered_bar_minutes(conn, symbol, lo, hi, venue)
    }
    settled = [
        (symbol, minute, "recovered", stored, bar, gap_id, venue)
        if status == "short" and (symbol, venue, minute) in recovered
        else (symbol, minute, status, stored, bar, gap_id, venue)
        for symbol, minute, status, stored, bar, gap_id, venue in minutes
    ]
    return settled, calls
