"""Whether KIS's trades by time (FHPST01060000) are the stream's: gap recovery's trades.

Gap recovery fills a volume-chain gap with the trades FHPST01060000 answers between the
gap's cumulative volumes (`[gap_recovery] trades`). That is right only if the answer holds a
row per trade, with the stream's cumulative volumes (both UNCONFIRMED, kis-market-2026-09.md
§6). For each venue whose trade feed's chain held through the check's session (no break, no
reset: the stream had every trade), the answer for the same span is held against the trades
streamed, by cumulative volume: each with its quantity, price and second. The finding says
what the answer was (a row per trade, a second's trades summed in one row, cumulative volumes
of another count), the rows a page held and the calls the span took, and which recovery the
configuration should use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bus.events import TradeTick, Venue
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.realtime import TRADE_TRS
from observer.kis.schemas import TimeTradeRow
from observer.kis.time_trades import TimeTrade, chain_closes, trades_back_to
from observer.kis_check.chain import Chain
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["ITEM", "time_trades_finding"]

ITEM = "FHPST01060000 trades"
_NS = 1_000_000_000
_TRADES = 120  # the session's last trades of a venue compared: four pages of 30
_MAX_CALLS = 12


@dataclass(frozen=True, slots=True)
class _Compared:
    """One venue's answer against its stream."""

    venue: Venue
    streamed: int
    answered: int  # rows of the span
    kind: str  # "trade", "second", "other count", "differs"
    calls: int
    page: int  # the most rows one page held


def _kind(streamed: list[TradeTick], answered: Mapping[int, TimeTrade], cum_before: int) -> str:
    """What the answer's rows are, against the trades streamed (see the module)."""
    by_cum = {t.cum_volume: t for t in streamed}
    if answered.keys() == by_cum.keys() and all(
        a.qty == by_cum[cum].qty
        and a.price == by_cum[cum].price
        and a.exchange_ns // _NS == by_cum[cum].exchange_ns // _NS
        for cum, a in answered.items()
    ):
        return "trade"
    rows = [answered[cum] for cum in sorted(answered)]
    if not answered.keys() & by_cum.keys():
        return "other count"
    # A second's rows chain too, on the last trade of each second the stream had
    if answered.keys() < by_cum.keys() and chain_closes(rows, cum_before, max(answered)):
        return "second"
    return "differs"


class _Counting:
    """The client's pages of FHPST01060000, each page's rows counted."""

    def __init__(self, client: KisClient) -> None:
        self.client = client
        self.pages: list[int] = []

    async def time_trades(
        self, symbol: str, before: str, venue: Venue = "KRX"
    ) -> list[TimeTradeRow]:
        """One page (`KisClient.time_trades`), its rows counted."""
        rows = await self.client.time_trades(symbol, before, venue)
        self.pages.append(len(rows))
        return rows


def _window(trades: list[TradeTick]) -> list[TradeTick]:
    """The last `_TRADES` of ``trades``, from the first trade of a second on.

    A row of a second's trades (the other belief) begins where the second does: a window
    beginning inside a second would read as other trades than the stream's.
    """
    window = trades[-_TRADES - 1 :]
    opened = window[0].exchange_ns // _NS
    return [t for t in window if t.exchange_ns // _NS > opened]


async def _compare(
    client: KisClient, symbol: str, venue: Venue, trades: list[TradeTick]
) -> _Compared:
    first, last = trades[0], trades[-1]
    cum_before = first.cum_volume - first.qty
    counting = _Counting(client)
    back = await trades_back_to(
        counting,
        symbol,
        venue,
        last.exchange_ns,
        cum_before,
        _MAX_CALLS,
        first.exchange_ns,
    )
    answered = {t.cum_volume: t for t in back.trades if t.cum_volume <= last.cum_volume}
    return _Compared(
        venue,
        len(trades),
        len(answered),
        _kind(trades, answered, cum_before),
        back.pages,
        max(counting.pages, default=0),
    )


_SAID = {
    "trade": "a row per trade, as streamed",
    "second": "a second's trades summed in one row",
    "other count": "cumulative volumes of another count than the stream's",
    "differs": "trades other than the stream's",
}


async def time_trades_finding(
    client: KisClient, symbol: str, chains: Mapping[str, Chain], report: Report, configured: bool
) -> None:
    """A row for FHPST01060000 against the session's streams, held against ``configured``.

    ``chains``: the session's trade TRs' (`SessionSeen.chains`); ``configured``:
    `[gap_recovery] trades`. OK when each venue measured answered its trades as streamed (or
    when they did not and gap recovery uses bars alone); a mismatch when gap recovery would
    store rows that are not the trades.
    """
    compared: list[_Compared] = []
    for venue, tr_id in TRADE_TRS.items():
        chain = chains.get(tr_id)
        if chain is None or chain.breaks or chain.resets:
            continue  # the stream lost or recounted: nothing whole to compare with
        trades = _window([t for t in chain.trades if t.symbol == symbol])
        if len(trades) < 2:
            continue
        try:
            compared.append(await _compare(client, symbol, venue, trades))
        except KisError as exc:
            report.add(ITEM, NOT_MEASURED, f"{venue}: {exc}"[:300])
            return
    if not compared:
        report.add(
            ITEM, NOT_MEASURED, f"no venue streamed trades of {symbol} in two seconds unbroken"
        )
        return
    said = "; ".join(
        f"{c.venue}: {c.answered} rows for {c.streamed} trades streamed, {_SAID[c.kind]} "
        f"({c.calls} calls, up to {c.page} rows a page)"
        for c in compared
    )
    whole = all(c.kind == "trade" for c in compared)
    if whole and configured:
        report.add(ITEM, OK, f"{said}: gap recovery's trades are the exchange's")
    elif whole:
        report.add(ITEM, OK, f"{said}: [gap_recovery] trades = true would recover trades")
    elif configured:
        report.add(
            ITEM,
            MISMATCH,
            f"{said}: set [gap_recovery] trades = false (gaps are then filled with bars)",
        )
    else:
        report.add(ITEM, OK, f"{said}; [gap_recovery] trades is off: gaps get bars")
