"""A gap the chain measured recovered with the exchange's own trades: why not, and when to warn.

A volume-chain gap (or an outage's connection gap, measured at the symbol's next trade) knows
the cumulative volumes around its missing trades (``cum_before``, the last streamed trade's, and
``cum_after``, the next one's less its own quantity): the trades KIS answers between them
(`observer.kis.time_trades`) are exactly the missing ones when their chain closes, and never a
streamed one, which lies outside. They are published as trades of gap recovery's own source (the
stored row's ``source``), with the session of their venue at their stamp, each once
(`observer.kis.time_trades.TradeLedger`, loaded from the database at start-up). Here: why a
gap's trades did not close it (`why_not`, `capped`), and `ChainMisses`, which warns when a
venue's gaps keep getting bars because KIS's trades do not close them (its answer changed).
"""

from __future__ import annotations

from collections import Counter

from observer.alerts.book import AlertBook
from observer.kis.time_trades import TimeTrade, TradesBack

__all__ = ["NOT_CLOSING_ALERT", "ChainMisses", "capped", "why_not"]

# warning, subject: the venue: its volume-chain gaps in a row got bars, not the trades
NOT_CLOSING_ALERT = "gap_trades_not_closing"


def capped(back: TradesBack, max_calls: int) -> bool:
    """Whether the paging stopped at the call limit short of the gap's start, or would have.

    Would have: its first page said so (`TradesBack.needed`). A long gap of a busy name: the
    bars are the policy, not a sign of KIS answering otherwise.
    """
    return not back.reached and (back.pages >= max_calls or back.needed > max_calls)


def why_not(back: TradesBack, span: list[TimeTrade], missing: int, max_calls: int) -> str:
    """Why the trades KIS answered do not close a gap's chain (the gap's detail says so)."""
    if back.needed and not back.reached:
        return f"about {back.needed} calls, more than {max_calls} (trade_calls_max)"
    if capped(back, max_calls):
        return f"more than {max_calls} calls (trade_calls_max)"
    if back.stuck:
        return (
            "KIS's trades passed the gap's start short of its cumulative volume, or came no "
            "further back (a second holding a whole page?)"
        )
    shares = sum(t.qty for t in span)
    return f"KIS's trades do not close the chain ({len(span)} trades, {shares} of {missing} shares)"


class ChainMisses:
    """Each venue's volume-chain gaps in a row whose trades did not close their chain.

    ``limit`` in a row (``[gap_recovery] trade_misses_alert``) raises `NOT_CLOSING_ALERT`
    for the venue: each such gap still gets its minute bars, so nothing is short, but the
    trades that prove a minute whole are not stored, and a run of them says KIS's answer to
    FHPST01060000 changed (`observer kis check` measures it). A gap closed by its trades
    resolves it, after a restart too (the alert is taken over at start). A gap cut at the
    call limit is neither (a long gap of a busy name).
    """

    def __init__(self, alerts: AlertBook, limit: int) -> None:
        self.alerts = alerts
        self.limit = limit
        self._run: Counter[str] = Counter()

    def missed(self, venue: str, why: str) -> None:
        """One more of ``venue``'s gaps got bars because its trades did not close (``why``)."""
        self._run[venue] += 1
        count = self._run[venue]
        if count < self.limit:
            return
        self.alerts.raise_(
            NOT_CLOSING_ALERT,
            venue,
            "warning",
            f"the last {count} of {venue}'s volume-chain gaps got minute bars, not the "
            f"exchange's trades, which did not close their chain (the last: {why}); the "
            "minutes are whole, but not proven trade by trade: KIS's answer to FHPST01060000 "
            "may have changed (observer kis check)",
            {"venue": venue, "gaps_in_a_row": str(count), "last": why[:200]},
        )

    def closed(self, venue: str) -> None:
        """One of ``venue``'s gaps closed by its trades: the run, and its alert, are over."""
        self._run[venue] = 0
        self.alerts.resolve(
            NOT_CLOSING_ALERT, venue, f"{venue}'s volume-chain gaps close with their trades again"
        )
