"""A venue's minute bars of a span or a gap, from KIS, as `Bar`s of the minutes they cover.

Today's bars come from FHKST03010200 (30 rows per call, paged back by the client), an
earlier day's from FHKST03010230, of the asked venue (KRX, Nextrade or both, as KIS's market
codes J, NX, UN). KIS has no bar for a minute without trades: `fetch_gap` tells "no trades"
from "KIS did not say"; a garbled row is skipped, never the gap's good minutes. A row's
``stck_cntg_hour`` names the minute the bar opens (``"start"``) or the one it closes
(``"end"``), as ``[gap_recovery] bar_label`` says: every bar here is keyed by the minute it
covers (its opening instant).

A gap's bars are published once (`BarLedger`). Its answers are journaled with what they were
asked for (`GapAsk`, the gap and its minutes), so the journal's replay reads them as the live
run did (`read_gap_pages`, `observer.kis.answer_replay`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from bus.events import Bar, Venue
from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.asked import Asked, PagesShort, settled
from observer.kis.client import KisClient
from observer.kis.journal import answering_for
from observer.kis.minutes import MinuteRows, page_minutes
from observer.kis.parse import read_int
from observer.kis.schemas import MinuteBarRow

__all__ = [
    "BARS_PER_CALL",
    "BarLabel",
    "BarLedger",
    "BarsAnswer",
    "GapAsk",
    "bar_of",
    "fetch_bars",
    "fetch_gap",
    "gap_bars",
    "read_gap_pages",
]

BarLabel = Literal["start", "end"]  # the minute a bar's stck_cntg_hour names

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
BARS_PER_CALL = 30  # minutes one call of today's bars answers, up to a gap's last minute


def _hhmmss(minute_ns: int) -> str:
    return datetime.fromtimestamp(minute_ns / _NS, KST).strftime("%H%M00")


def _label_ns(label: BarLabel) -> int:
    """How far a bar's label lies after the minute it covers opens."""
    return _MINUTE_NS if label == "end" else 0


def _labelled(minute_ns: int, label: BarLabel) -> str:
    """The ``stck_cntg_hour`` of the bar covering the minute opening at ``minute_ns``."""
    return _hhmmss(minute_ns + _label_ns(label))


def bar_of(row: MinuteBarRow, label: BarLabel = "start") -> Bar:
    """One KIS minute-bar row as a bar of the minute it covers (``label`` says which).

    ``KisProtocolError`` if it is not one.
    """
    try:
        at = datetime.strptime(row.stck_bsop_date + row.stck_cntg_hour, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise KisProtocolError(f"minute bar: {exc}") from exc
    # Bounded like every KIS number: one absurd value must not make the whole batch of bars
    # an event the database refuses.
    prices = [
        read_int(row.stck_oprc, "stck_oprc"),
        read_int(row.stck_hgpr, "stck_hgpr"),
        read_int(row.stck_lwpr, "stck_lwpr"),
        read_int(row.stck_prpr, "stck_prpr"),
    ]
    volume = read_int(row.cntg_vol, "cntg_vol")
    open_, high, low, close = prices
    if min(prices) <= 0 or volume < 0 or not low <= min(open_, close) <= max(open_, close) <= high:
        raise KisProtocolError(f"minute bar {row.stck_cntg_hour}: inconsistent prices {prices}")
    minute_ns = int(at.replace(tzinfo=KST, second=0).timestamp()) * _NS - _label_ns(label)
    # acml_tr_pbmn is the day's cumulative value, not the bar's: left out (0).
    return Bar(minute_ns=minute_ns, open=open_, high=high, low=low, close=close, volume=volume)


async def fetch_bars(
    client: KisClient,
    symbol: str,
    minutes: list[int],
    today: date,
    label: BarLabel = "start",
    venue: Venue = "KRX",
) -> dict[int, Bar]:
    """The bars of ``minutes`` (opening instants, one day) that KIS has of ``venue``."""
    since, until = _labelled(minutes[0], label), _labelled(minutes[-1], label)
    day = datetime.fromtimestamp(minutes[0] / _NS, KST).date()
    if day == today:
        rows = await client.minute_bars_today(symbol, until=until, since=since, venue=venue)
    else:
        rows = await client.minute_bars_on(symbol, day.strftime("%Y%m%d"), until, since, venue)
    # Only the wanted minutes' rows are read: one KIS garbled between them must not fail the
    # symbol's whole reconciliation (every day it recurs).
    wanted, hours = set(minutes), {_labelled(minute, label)[:4] for minute in minutes}
    bars = (bar_of(row, label) for row in rows if row.stck_cntg_hour[:4] in hours)
    return {bar.minute_ns: bar for bar in bars if bar.minute_ns in wanted}


@dataclass(frozen=True, slots=True)
class BarsAnswer:
    """KIS's answer for a gap: the bars of its minutes, whether it is all of them, what failed."""

    bars: dict[int, Bar]  # minute (opening instant, UTC ns) -> bar, the gap's minutes only
    reached: bool  # the answer went back to the minute before the gap (see the module)
    garbled: tuple[int, ...] = ()  # the gap's minutes whose row is not a bar

    @property
    def no_trades(self) -> bool:
        """True if the answer proves the gap's minutes had no trades (see the module)."""
        return not self.bars and self.reached and not self.garbled


class GapAsk(Asked, frozen=True, tag="gap_bars"):
    """What a gap's call of bars asked for, the context its answers are journaled with.

    ``first_ns`` and ``last_ns`` are the gap's first and last minutes (opening instants, UTC
    ns; every minute between is the gap's), ``label`` the bars' (`BarLabel`), ``ask`` this
    process's count of calls: the pages of one call share it, a retry has its own.
    """

    gap_id: str
    first_ns: int
    last_ns: int
    label: BarLabel
    ask: int

    @property
    def minutes(self) -> list[int]:
        """The gap's minutes (opening instants), as `fetch_gap` was given them."""
        return list(range(self.first_ns, self.last_ns + 1, _MINUTE_NS))


_asks = itertools.count(1)


def _span(minutes: Sequence[int], label: BarLabel) -> tuple[str, str]:
    """The ``stck_cntg_hour`` span a gap's call asks, ``(since, until)``.

    From the minute before the gap (at least the half hour up to its last minute: one call's
    rows) to its last minute.
    """
    first = min(minutes[0] - _MINUTE_NS, minutes[-1] - (BARS_PER_CALL - 1) * _MINUTE_NS)
    return _labelled(first, label), _labelled(minutes[-1], label)


async def fetch_gap(
    client: KisClient,
    symbol: str,
    minutes: list[int],
    today: date,
    label: BarLabel = "start",
    venue: Venue = "KRX",
    gap_id: str = "",
) -> BarsAnswer:
    """The bars of ``minutes`` (opening instants, one day) of ``venue``, quiet ones proven.

    It asks from the minute before the gap (at least the half hour up to its last minute: one
    call's 30 rows, so it costs nothing more) to its last minute; KIS answers the newest bars at
    or before the asked minute, newest first, none left out. An answer that reached that first
    minute (a page's oldest row at or before it, or nothing older: `MinuteRows.reached`) proves
    every minute of the gap was answered: those without a bar had no trades, however long the
    gap. An answer with no bar at all proves nothing and is retried like a failed call. A row
    that is not a bar (`bar_of` refuses it) is skipped; a garbled row of one of the gap's own
    minutes leaves it unknown (`BarsAnswer.garbled`), and the gap is retried for them.
    With ``gap_id``, the answers are journaled with their `GapAsk`.
    """
    since, until = _span(minutes, label)
    day = datetime.fromtimestamp(minutes[0] / _NS, KST).date()
    asked = "" if day == today else day.strftime("%Y%m%d")
    ask = GapAsk(gap_id, minutes[0], minutes[-1], label, next(_asks))
    with answering_for(ask.context() if gap_id else ""):
        answer = await client.minute_bars_span(symbol, since, until, asked, venue)
    return gap_bars(answer, minutes, label)


def gap_bars(answer: MinuteRows, minutes: Sequence[int], label: BarLabel) -> BarsAnswer:
    """What KIS's rows say of a gap's ``minutes`` (see `fetch_gap`)."""
    wanted = {_labelled(minute, label)[:4]: minute for minute in minutes}
    bars: dict[int, Bar] = {}
    garbled: list[int] = []
    for row in answer.rows:
        minute = wanted.get(row.stck_cntg_hour[:4])
        if minute is None:  # before the gap: only the reach counts
            continue
        try:
            bar = bar_of(row, label)
        except KisProtocolError:
            garbled.append(minute)
            continue
        if bar.minute_ns == minute:  # not another day's bar of the same clock minute
            bars[minute] = bar
    return BarsAnswer(bars, answer.reached, tuple(garbled))


def read_gap_pages(
    pages: Sequence[list[MinuteBarRow]], per_call: int, day: str, ask: GapAsk
) -> MinuteRows | None:
    """The call of ``ask`` read again from its journaled ``pages``, or None for more pages.

    The pages are read in order, as `fetch_gap` paged through them; None if the call would
    ask for a page beyond them. ``day``: the asked day, "" for today's TR (the request's
    ``FID_INPUT_DATE_1``).
    """
    since, until = _span(ask.minutes, ask.label)
    taken = itertools.count()

    async def batch(cursor: str) -> list[MinuteBarRow]:
        if (index := next(taken)) >= len(pages):
            raise PagesShort
        return pages[index]

    return settled(page_minutes(batch, per_call, day, since, until))


class BarLedger:
    """The (symbol, venue, minute) triples already recovered: each is published once.

    Loaded from the database at gap recovery's start, so a gap retried, overlapping another
    or resumed after a crash publishes only the minutes nobody has published.
    """

    def __init__(self, stored: Iterable[tuple[str, str, int]] = ()) -> None:
        self._minutes: dict[tuple[str, str], set[int]] = {}
        for symbol, venue, minute_ns in stored:
            self._minutes.setdefault((symbol, venue), set()).add(minute_ns)

    def holds(self, symbol: str, minutes: Iterable[int], venue: str = "KRX") -> bool:
        """Whether every one of ``minutes`` (opening instants) has its bar published already."""
        held = self._minutes.get((symbol, venue), set())
        return all(minute in held for minute in minutes)

    def claim(self, symbol: str, bars: Iterable[Bar], venue: str = "KRX") -> list[Bar]:
        """The bars not published yet, in time order, now counted as published."""
        held = self._minutes.setdefault((symbol, venue), set())
        fresh = sorted((b for b in bars if b.minute_ns not in held), key=lambda b: b.minute_ns)
        held.update(b.minute_ns for b in fresh)
        return fresh
