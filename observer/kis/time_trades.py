"""Today's trades of a venue from KIS (FHPST01060000), paged back to a cumulative volume.

KIS answers a venue's trades (J KRX, NX Nextrade, UN both) before an hour of today
(``FID_INPUT_HOUR_1``, HHMMSS), newest first, 30 a call, with no continuation: the next page
is asked with an earlier hour. A real answer (KIS's documentation: 000660 asked at 141200,
trimmed)::

    "output2": [
      {"stck_cntg_hour": "141159", "stck_prpr": "104500", "prdy_ctrt": "-2.34",
       "askp": "105000", "bidp": "104500", "tday_rltv": "42.43",
       "acml_vol": "1979727", "cnqn": "20"},
      {"stck_cntg_hour": "141158", "stck_prpr": "104500", "prdy_ctrt": "-2.34",
       "askp": "105000", "bidp": "104500", "tday_rltv": "42.43",
       "acml_vol": "1979707", "cnqn": "4"}, ...]

Each row's ``acml_vol`` less its ``cnqn`` is the next older row's: the day's cumulative volume
on the venue, which its real-time trade records carry as ACML_VOL. So the cumulative volume is
each trade's key: pages that overlap double no trade, and a span of trades is whole exactly
when its chain closes (`chain_closes`). Whether a row is one trade or one second's trades,
and whether the answer's cumulative volumes are the stream's, is UNCONFIRMED
(kis-market-2026-09.md §6): a chain that does not close says so, and `observer kis check`
measures it.

Stamps are whole seconds, and whether "before" includes the asked second is UNCONFIRMED too:
each next page is asked from one second past the oldest row's, so that a second a page's end
cut is asked again either way, and a page that brings no older trade (one second holding a
whole page of trades, or the day's first trade reached) ends the paging (`TradesBack.stuck`).

A gap the chain measured is recovered by the trades that close its chain within its seconds
(`TradesAsk.closing`); they are published as trades (`trade_tick`), each once (`TradeLedger`).
A gap's call journals its `TradesAsk` with each page, so the journal's replay reads the pages
as the call did (`read_trade_pages`, `observer.kis.answer_replay`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import msgspec

from bus.events import TradeTick, TradingSession, Venue
from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.asked import Asked, PagesShort, settled
from observer.kis.journal import answering_for
from observer.kis.parse import kst_to_utc_ns, read_decimal, read_int
from observer.kis.schemas import TimeTradeRow

__all__ = [
    "TimeTrade",
    "TimeTradePages",
    "TradeLedger",
    "TradesAsk",
    "TradesBack",
    "chain_closes",
    "fetch_gap_trades",
    "read_trade_pages",
    "time_trade",
    "trade_tick",
    "trades_back_to",
    "within",
]

_NS = 1_000_000_000


class TimeTradePages(Protocol):
    """What pages the trades: `observer.kis.client.KisClient.time_trades`."""

    async def time_trades(
        self, symbol: str, before: str, venue: Venue = "KRX"
    ) -> list[TimeTradeRow]:
        """Today's trades of ``symbol`` on ``venue`` before ``before`` (HHMMSS), newest first."""


@dataclass(frozen=True, slots=True)
class TimeTrade:
    """One trade of KIS's answer: its stamp (UTC ns of a whole KST second) and figures."""

    exchange_ns: int
    price: int
    qty: int
    cum_volume: int  # the venue's day volume up to and with this trade (ACML_VOL's)
    ask1: int
    bid1: int
    change_rate: Decimal
    strength: Decimal  # tday_rltv, 체결강도


def _optional_int(value: str, name: str) -> int:
    return read_int(value, name) if value.strip() else 0


def time_trade(row: TimeTradeRow, day: str) -> TimeTrade:
    """``row`` of ``day`` (YYYYMMDD) as a trade; `KisProtocolError` if it is not one."""
    price = read_int(row.stck_prpr or row.stck_pbpr, "stck_prpr")
    qty, cum = read_int(row.cnqn, "cnqn"), read_int(row.acml_vol, "acml_vol")
    if price <= 0 or qty <= 0 or cum < qty:
        raise KisProtocolError(
            f"time_trades {row.stck_cntg_hour[:6]!r}: not a trade (price {price}, "
            f"quantity {qty}, cumulative volume {cum})"
        )
    return TimeTrade(
        exchange_ns=kst_to_utc_ns(day, row.stck_cntg_hour),
        price=price,
        qty=qty,
        cum_volume=cum,
        ask1=_optional_int(row.askp, "askp"),
        bid1=_optional_int(row.bidp, "bidp"),
        change_rate=read_decimal(row.prdy_ctrt.strip() or "0", "prdy_ctrt"),
        strength=read_decimal(row.tday_rltv.strip() or "0", "tday_rltv"),
    )


@dataclass(frozen=True, slots=True)
class TradesBack:
    """What the paging found: the trades above ``since_cum``, and why it ended."""

    trades: tuple[TimeTrade, ...]  # oldest first, cumulative volume above since_cum, each once
    reached: bool  # an answer held a trade at or below since_cum
    pages: int  # calls made
    # the paging ended short of since_cum: a page brought no older trade, or one older than
    # since_ns's second
    stuck: bool = False
    # the calls the first page said the whole span needs, when more than allowed (the paging
    # stopped there); 0: not estimated short
    needed: int = 0


def _hhmmss(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, KST).strftime("%H%M%S")


async def trades_back_to(
    client: TimeTradePages,
    symbol: str,
    venue: Venue,
    until_ns: int,
    since_cum: int,
    max_pages: int,
    since_ns: int | None = None,
) -> TradesBack:
    """Today's trades of ``symbol`` on ``venue`` from ``until_ns``'s second back.

    Pages back until an answer holds a trade at or below cumulative volume ``since_cum``,
    a page brings no older trade, or ``max_pages`` calls were made (or the first page's shares
    say more would be needed: the shares left to ``since_cum`` over the page's, `needed`, so a
    busy symbol's long gap costs one call, not ``max_pages``); with ``since_ns`` (the
    stamp of the trade whose cumulative volume ``since_cum`` is), also once a trade older
    than its second is answered: if those are the stream's counts, ``since_cum`` was passed
    by then, and if not, no further page will close a chain (`TradesBack.stuck`). A row that
    is not a trade raises `KisProtocolError` (the answer is not trusted); KIS's errors are
    raised as they come (`KisClient.get`).
    """
    since_s = None if since_ns is None else since_ns - since_ns % _NS
    day = datetime.fromtimestamp(until_ns / _NS, KST).strftime("%Y%m%d")
    hour = _hhmmss(until_ns - until_ns % _NS + _NS)  # the second of until_ns itself too
    found: dict[int, TimeTrade] = {}
    oldest: int | None = None  # the lowest cumulative volume found
    pages, reached, stuck, needed = 0, False, False, 0
    while pages < max_pages:
        rows = await client.time_trades(symbol, hour, venue)
        pages += 1
        trades = [time_trade(row, day) for row in rows]
        for trade in trades:
            found.setdefault(trade.cum_volume, trade)
        older = [t for t in trades if oldest is None or t.cum_volume < oldest]
        if not older:
            stuck = True
            break
        last = min(older, key=lambda t: t.cum_volume)
        oldest = last.cum_volume
        if oldest <= since_cum:
            reached = True
            break
        if since_s is not None and last.exchange_ns < since_s:
            stuck = True
            break
        if pages == 1:
            shares = max(1, sum(t.qty for t in older))
            estimate = 1 + -(-(oldest - last.qty - since_cum) // shares)
            if estimate > max_pages:
                needed = estimate
                break
        hour = _hhmmss(last.exchange_ns + _NS)
    above = sorted((t for t in found.values() if t.cum_volume > since_cum), key=_cum)
    return TradesBack(tuple(above), reached, pages, stuck and not reached, needed)


def _cum(trade: TimeTrade) -> int:
    return trade.cum_volume


def chain_closes(trades: Iterable[TimeTrade], cum_before: int, cum_after: int) -> bool:
    """Whether ``trades`` (oldest first) are every trade from ``cum_before`` to ``cum_after``.

    Each trade's cumulative volume less its quantity must be the one before's, the first's
    ``cum_before``, and the last's must be ``cum_after``: nothing missing, nothing extra.
    """
    at = cum_before
    for trade in trades:
        if trade.cum_volume - trade.qty != at:
            return False
        at = trade.cum_volume
    return at == cum_after


def within(trades: Iterable[TimeTrade], start_ns: int, end_ns: int) -> bool:
    """Whether ``trades`` are stamped between a gap's two streamed trades (their seconds).

    Trades missing between two streamed ones traded between them: a chain that closes on
    trades from elsewhere in the day closed by chance, on cumulative volumes that are not the
    stream's (`SimConfig.time_trades_cum_offset`).
    """
    first = start_ns - start_ns % _NS
    return all(first <= t.exchange_ns <= end_ns for t in trades)


class TradesAsk(Asked, frozen=True, tag="gap_trades"):
    """What a gap's call of trades asked for, the context its answers are journaled with.

    ``start_ns`` and ``end_ns``: the stamps of the gap's two streamed trades, whose
    cumulative volumes are ``cum_before`` and ``cum_after`` (the next one's less its own
    quantity); ``max_pages``: ``[gap_recovery] trade_calls_max``; ``ask``: this process's
    count of calls (`fetch_gap_trades` sets it): the pages of one call share it.
    """

    gap_id: str
    start_ns: int
    end_ns: int
    cum_before: int
    cum_after: int
    max_pages: int
    ask: int = 0

    def span(self, back: TradesBack) -> list[TimeTrade]:
        """The trades found up to the gap's end (its ``cum_after``), oldest first."""
        return [t for t in back.trades if t.cum_volume <= self.cum_after]

    def closing(self, back: TradesBack) -> list[TimeTrade] | None:
        """The gap's missing trades: `span` if its chain closes within the gap's seconds."""
        span = self.span(back)
        if chain_closes(span, self.cum_before, self.cum_after) and within(
            span, self.start_ns, self.end_ns
        ):
            return span
        return None


_asks = itertools.count(1)


async def fetch_gap_trades(
    client: TimeTradePages, symbol: str, venue: Venue, ask: TradesAsk
) -> TradesBack:
    """`trades_back_to` for a gap (``ask``), its answers journaled with ``ask`` numbered."""
    numbered = msgspec.structs.replace(ask, ask=next(_asks))
    with answering_for(numbered.context()):
        return await trades_back_to(
            client, symbol, venue, ask.end_ns, ask.cum_before, ask.max_pages, ask.start_ns
        )


class _Journaled:
    """A call's journaled pages served in order, as `TimeTradePages`."""

    def __init__(self, pages: Sequence[list[TimeTradeRow]]) -> None:
        self.pages = pages
        self.taken = 0

    async def time_trades(
        self, symbol: str, before: str, venue: Venue = "KRX"
    ) -> list[TimeTradeRow]:
        if self.taken >= len(self.pages):
            raise PagesShort
        self.taken += 1
        return self.pages[self.taken - 1]


def read_trade_pages(
    pages: Sequence[list[TimeTradeRow]], symbol: str, venue: Venue, ask: TradesAsk
) -> TradesBack | None:
    """The call of ``ask`` read again from its journaled ``pages``, or None for more pages.

    The pages are read in order, as `fetch_gap_trades` paged through them; None if the call
    would ask for a page beyond them. `KisProtocolError` for a row that is not a trade.
    """
    served = _Journaled(pages)
    return settled(
        trades_back_to(
            served, symbol, venue, ask.end_ns, ask.cum_before, ask.max_pages, ask.start_ns
        )
    )


def trade_tick(
    trade: TimeTrade,
    symbol: str,
    venue: Venue,
    account: str,
    received_ns: int,
    session_of: Callable[[Venue, int], TradingSession],
) -> TradeTick:
    """``trade`` as the tick the stream would have stored, less what KIS's answer lacks.

    The answer has no cumulative value, side, session code or halt flag: those are 0, "",
    None and False. ``account`` is the account whose call answered it.
    """
    return TradeTick(
        symbol=symbol,
        exchange_ns=trade.exchange_ns,
        received_ns=received_ns,
        price=trade.price,
        qty=trade.qty,
        cum_volume=trade.cum_volume,
        cum_value=0,
        change_rate=trade.change_rate,
        ask1=trade.ask1,
        bid1=trade.bid1,
        strength=trade.strength,
        account=account,
        venue=venue,
        trading_session=session_of(venue, trade.exchange_ns),
    )


class TradeLedger:
    """The (symbol, venue, cumulative volume) of each trade recovered: each published once.

    Loaded from the database at gap recovery's start, so a gap retried, or recovered again
    after a crash between its trades and its state, publishes none twice.
    """

    def __init__(self, stored: Iterable[tuple[str, str, int]] = ()) -> None:
        self._held: dict[tuple[str, str], set[int]] = {}
        for symbol, venue, cum_volume in stored:
            self._held.setdefault((symbol, venue), set()).add(cum_volume)

    def claim(self, symbol: str, venue: str, trades: Iterable[TimeTrade]) -> list[TimeTrade]:
        """The trades not published yet, in their order, now counted as published."""
        held = self._held.setdefault((symbol, venue), set())
        fresh = [t for t in trades if t.cum_volume not in held]
        held.update(t.cum_volume for t in fresh)
        return fresh
