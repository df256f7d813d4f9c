"""A volume-chain gap recovered with the exchange's own trades, each published once.

A volume-chain gap knows the cumulative volumes around its missing trades (``cum_before``, the
last streamed trade's, and ``cum_after``, the next one's less its own quantity): the trades KIS
answers between them (`observer.kis.time_trades`) are exactly the missing ones when their
chain closes, and never a streamed one, which lies outside. They are published as trades of
gap recovery's own source (the stored row's ``source``), with the session of their venue at
their stamp. `TradeLedger` remembers the (symbol, venue, cumulative volume) of every trade
recovered, loaded from the database at start-up: a gap retried, or recovered again after a
crash between its trades and its state, publishes none twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bus.events import TradeTick, TradingSession, Venue
from observer.kis.time_trades import TimeTrade, TradesBack

__all__ = ["TradeLedger", "trade_tick", "why_not", "within"]

_NS = 1_000_000_000


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


def within(trades: Iterable[TimeTrade], start_ns: int, end_ns: int) -> bool:
    """Whether ``trades`` are stamped between a gap's two streamed trades (their seconds).

    Trades missing between two streamed ones traded between them: a chain that closes on
    trades from elsewhere in the day closed by chance, on cumulative volumes that are not the
    stream's (`SimConfig.time_trades_cum_offset`).
    """
    first = start_ns - start_ns % _NS
    return all(first <= t.exchange_ns <= end_ns for t in trades)


def why_not(back: TradesBack, span: list[TimeTrade], missing: int, max_calls: int) -> str:
    """Why the trades KIS answered do not close a gap's chain (the gap's detail says so)."""
    if not back.reached and back.pages >= max_calls:
        return f"more than {max_calls} calls (trade_calls_max)"
    if back.stuck:
        return (
            "KIS's trades passed the gap's start short of its cumulative volume, or came no "
            "further back (a second holding a whole page?)"
        )
    shares = sum(t.qty for t in span)
    return f"KIS's trades do not close the chain ({len(span)} trades, {shares} of {missing} shares)"


class TradeLedger:
    """The (symbol, venue, cumulative volume) of each trade recovered: each published once."""

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
