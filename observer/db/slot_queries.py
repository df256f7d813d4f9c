"""Track B's slots as its decisions left them: what a restarted run must account for.

A Track B that dies holding slots leaves them held in the database (``slot_events``); its
successor reads them here, with the data each one's run delivered (the ticks and gaps that
start its ``process_restart`` gap), and takes them over (`workers.track_b.earlier_run`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import NamedTuple, cast

from sqlalchemy import ColumnElement, Connection, func, select

from bus.events import SlotTrigger
from observer.calendar.phases import KST
from observer.db.models import Gap, SlotDecisionRow, TradeTickRow

__all__ = [
    "MINUTE_NS",
    "AsOf",
    "HeldSlot",
    "Span",
    "held_slots",
    "held_spans",
    "watched_minutes",
    "watched_since",
]

MINUTE_NS = 60 * 1_000_000_000
Span = tuple[int, int]  # [from, to) in UTC ns


@dataclass(frozen=True, slots=True)
class HeldSlot:
    """A symbol a Track B source left holding a slot: its latest decision put it there."""

    account: str
    slot: int
    symbol: str
    trigger: SlotTrigger  # as the writer accepted it
    score: Decimal
    expires_ns: int
    since_ns: int  # when the allocation or replacement that put it there was produced
    last_tick_ns: int | None  # the exchange time of its newest stored tick since then
    last_gap_end_ns: int | None  # the end of its newest recorded gap since then
    run: int = 0  # which of the runs `held_slots` tells apart placed it (0: the oldest)
    # A later run placed the symbol again at this time: the slot is that run's holding, this
    # one is only the data it missed from its run's end until then.
    until_ns: int | None = None
    # Each venue's newest stored trade of the symbol in its last minute of trades:
    # (venue, cumulative volume, exchange time), where the volume chain goes on from
    chains: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class AsOf:
    """A process's start: the earlier ones' events are up to ``seq``, their gaps before ``ns``."""

    seq: int
    ns: int


def held_slots(
    conn: Connection,
    source: str,
    day: date,
    as_of: AsOf | None = None,
    runs: Sequence[AsOf] = (),
) -> list[HeldSlot]:
    """The slots ``source`` held at its last decision of KST ``day``, by account and slot.

    A symbol is held from an ``allocate`` or ``replace`` naming it until a ``release`` or
    ``expire`` naming it, or a ``replace`` naming it as the replaced symbol, on every venue it
    was placed on: each decision is one venue's (KRX's feeds released at 15:00, a Nextrade
    name is still held on Nextrade's through its after-market). What a process
    held when it died is what its successor must account for. With ``as_of``, what the
    processes before that start held, and their ticks and gaps alone: the successor's own
    decisions, ticks and gaps since are left out.

    ``runs``: the starts of earlier runs, oldest first and before ``as_of``, that streamed
    before they had taken over what the run before them left, and ended first
    (`workers.track_b.earlier_run`). Each holding's ticks and gaps are then its own run's (a
    later run's ticks on the same account are no data of its), and a holding whose symbol
    a later run placed again is returned too, with ``until_ns``: its run's data ends
    somewhere before, and the slot is the later run's.
    """
    if runs and as_of is None:
        raise ValueError("the runs before a start need that start")
    lo = int(datetime.combine(day, time(0), tzinfo=KST).timestamp()) * 1_000_000_000
    hi = lo + 86_400 * 1_000_000_000
    s, t = SlotDecisionRow, TradeTickRow
    before = (s.seq <= as_of.seq,) if as_of else ()
    events = conn.execute(
        select(
            s.seq,
            s.action,
            s.account,
            s.slot,
            s.symbol,
            s.trigger,
            s.score,
            s.replaced_symbol,
            s.expires_ns,
            s.produced_ns,
            s.venue,
        )
        .where(s.source == source, s.produced_ns >= lo, s.produced_ns < hi, *before)
        .order_by(s.seq)
    )
    starts = [r.seq for r in runs]
    held: dict[str, _Holding] = {}
    venues: dict[str, set[str]] = {}  # symbol -> the venues it is held on
    superseded: list[tuple[_Holding, int]] = []  # an earlier run's, and when placed again

    def leave(symbol: str, venue: str) -> None:
        on = venues.get(symbol, set())
        on.discard(venue)
        if not on:
            held.pop(symbol, None)
            venues.pop(symbol, None)

    for (
        seq,
        action,
        account,
        slot,
        symbol,
        trigger,
        score,
        replaced,
        expires_ns,
        at,
        venue,
    ) in events:
        if action in ("release", "expire"):
            leave(symbol, venue)
        elif action in ("allocate", "replace"):
            if replaced:
                leave(replaced, venue)
            run = bisect.bisect_left(starts, seq)
            earlier = held.get(symbol)
            if earlier is not None and earlier.run < run:
                superseded.append((earlier, at))
                venues.pop(symbol, None)  # the later run's placement: its venues from now
            held[symbol] = _Holding(account, slot, symbol, trigger, score, expires_ns, at, run)
            venues.setdefault(symbol, set()).add(venue)
    ends = [*runs, as_of]  # where each run's events and gaps end

    def found(h: _Holding, until_ns: int | None = None) -> HeldSlot:
        ticks: tuple[ColumnElement[bool], ...] = ()
        gaps: tuple[ColumnElement[bool], ...] = ()
        if (end := ends[h.run]) is not None:
            ticks = (t.source == source, t.seq <= end.seq)
            gaps = (Gap.start_ns < end.ns,)
            if h.run:
                ticks += (t.seq > runs[h.run - 1].seq,)
        # Two index lookups each: (symbol, exchange_ns) on the ticks, symbol on the gaps.
        last_tick = conn.execute(
            select(func.max(t.exchange_ns)).where(
                t.symbol == h.symbol, t.exchange_ns >= h.since, *ticks
            )
        ).scalar_one()
        last_gap_end = conn.execute(
            select(func.max(Gap.end_ns)).where(
                Gap.symbol == h.symbol, Gap.start_ns >= h.since, *gaps
            )
        ).scalar_one()
        chains: dict[str, tuple[int, int]] = {}  # venue -> (cumulative volume, stamp)
        if last_tick is not None and until_ns is None:  # a minute's trades: an index range
            recent = conn.execute(
                select(t.venue, t.cum_volume, t.exchange_ns).where(
                    t.symbol == h.symbol,
                    t.exchange_ns >= max(h.since, last_tick - MINUTE_NS),
                    *ticks,
                )
            )
            newest: dict[str, tuple[int, int]] = {}  # venue -> (stamp, cumulative volume)
            for venue, cum, at in recent:
                newest[venue] = max(newest.get(venue, (0, 0)), (at, cum))
            chains = {venue: (cum, at) for venue, (at, cum) in newest.items()}
        return HeldSlot(
            h.account,
            h.slot,
            h.symbol,
            cast(SlotTrigger, h.trigger),
            h.score,
            h.expires_ns,
            h.since,
            last_tick,
            last_gap_end,
            h.run,
            until_ns,
            tuple((venue, cum, at) for venue, (cum, at) in sorted(chains.items())),
        )

    holdings = [found(h) for h in held.values()]
    holdings += [found(h, until) for h, until in superseded]
    return sorted(holdings, key=lambda h: (h.account, h.slot, h.symbol, h.run))


class _Holding(NamedTuple):
    account: str
    slot: int
    symbol: str
    trigger: str
    score: Decimal
    expires_ns: int
    since: int
    run: int


def held_spans(events: Iterable[tuple[str, str, str, int]], end_ns: int) -> dict[str, list[Span]]:
    """Each symbol's slot holdings ``[from, to)`` from Track B's slot decisions, in order.

    ``events`` are ``(action, symbol, replaced_symbol, at_ns)``; a holding still open at the
    end closes at ``end_ns``. An allocation of a symbol already held (Track B restarted and
    placed it again) continues the holding.
    """
    held: dict[str, int] = {}
    spans: dict[str, list[Span]] = {}
    for action, symbol, replaced, at in events:
        leaving = symbol if action in ("release", "expire") else replaced
        if leaving and leaving in held:
            spans.setdefault(leaving, []).append((held.pop(leaving), at))
        if action in ("allocate", "replace"):
            held.setdefault(symbol, at)
    for symbol, since in held.items():
        spans.setdefault(symbol, []).append((since, max(since, end_ns)))
    return spans


def watched_since(conn: Connection, since_ns: int, now_ns: int) -> dict[str, int]:
    """How long Track B's slots held each symbol from ``since_ns`` to ``now_ns`` (seconds).

    A holding open at ``now_ns`` counts to it. A decision is a row per venue it registers the
    symbol on (KRX's and Nextrade's feeds side by side), and Nextrade's sessions of its own
    decide on its feed alone, so a symbol's figure is its busiest venue's. Time held, not
    placements: a name held all day is placed once, one the triggers churn many times.
    """
    query = (
        select(
            SlotDecisionRow.venue,
            SlotDecisionRow.action,
            SlotDecisionRow.symbol,
            SlotDecisionRow.replaced_symbol,
            SlotDecisionRow.produced_ns,
        )
        .where(SlotDecisionRow.produced_ns >= since_ns, SlotDecisionRow.produced_ns <= now_ns)
        .order_by(SlotDecisionRow.produced_ns, SlotDecisionRow.seq)
    )
    by_venue: dict[str, list[tuple[str, str, str, int]]] = {}
    for venue, action, symbol, replaced, at in conn.execute(query):
        by_venue.setdefault(venue, []).append((action, symbol, replaced, at))
    held: dict[str, int] = {}
    for events in by_venue.values():
        for symbol, spans in held_spans(events, now_ns).items():
            seconds = sum(end - start for start, end in spans) // 1_000_000_000
            held[symbol] = max(held.get(symbol, 0), seconds)
    return held


def watched_minutes(spans: Iterable[Span], edge_ns: int, until_ns: int) -> list[int]:
    """The minutes (opening instants) a span holds whole, ``edge_ns`` clear of its ends.

    Only minutes closed by ``until_ns`` count.

    A slot taken at 10:00:59.5 cannot stream 10:01's first trades before its registration's
    round trip, and Track B publishes a release after it has unregistered: minutes cut by an
    allocation or a release are partial by construction and left out.
    """
    minutes: set[int] = set()
    for start, end in spans:
        first = start + edge_ns
        first += -first % MINUTE_NS  # the first minute boundary at or after it
        last = min(end - edge_ns, until_ns) - MINUTE_NS  # the last must end within both
        minutes.update(range(first, last + 1, MINUTE_NS))
    return sorted(minutes)
