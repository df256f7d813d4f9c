"""The sessions KIS's records name against the market table's clock: counted, alerted once a day.

A record of the 2026-09 layouts names its session (MARKET_CLS_CODE), and the decoder takes
that word over the clock's (`observer.calendar.venues.Venues.judge_code`). Where the two
disagree, either the table's hours are wrong (a changed session, a special day it does not
know) or KIS labels a session otherwise than believed; a record of a market running beside
the sessions in its hours (Nextrade's 종가매매) agrees. Each disagreement is counted per venue
(the heartbeat's ``session_disagreements``), the 1st, 10th, 100th ... logged, and the first of
a venue's day raises ``track_b_session_disagrees`` (a warning, open until acknowledged) with
its example, so that the table is looked at once, not 10,000 times.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from bus.events import TradeTick, Venue
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.calendar.venues import CodeJudge

__all__ = ["SESSION_DISAGREES", "SessionCodes"]

log = logging.getLogger(__name__)

SESSION_DISAGREES = "track_b_session_disagrees"
_LOGGED = frozenset(10**n for n in range(7))
_NS = 1_000_000_000


class SessionCodes:
    """Each stored trade's MARKET_CLS_CODE against the table's hours (``judge``).

    None: no venues' hours to judge by (a collector given none), nothing judged.
    """

    def __init__(self, alerts: AlertBook, judge: CodeJudge | None) -> None:
        self.alerts = alerts
        self.judge = judge
        self.disagreements: Counter[Venue] = Counter()

    def on_trade(self, tick: TradeTick) -> None:
        """Count ``tick`` if its code names another session than the clock's at its stamp."""
        if self.judge is None:
            return
        clock, _, agrees = self.judge(tick.venue, tick.exchange_ns, tick.market_session)
        if agrees:
            return
        venue = tick.venue
        self.disagreements[venue] += 1
        at = datetime.fromtimestamp(tick.exchange_ns / _NS, UTC).astimezone(KST)
        said = (
            f"{venue} {tick.symbol} traded at {at:%H:%M:%S} with MARKET_CLS_CODE "
            f"{tick.market_session} ({tick.trading_session}) where the venues' hours say "
            f"{clock or 'no session'}"
        )
        if self.disagreements[venue] in _LOGGED:
            log.warning(
                "%s (stored as KIS says; %d such trades so far)", said, self.disagreements[venue]
            )
        self.alerts.raise_(
            SESSION_DISAGREES,
            f"{venue} {at:%Y-%m-%d}",
            "warning",
            f"{said}: the record's session is stored; [venues] may be wrong for the day",
            {"venue": venue, "symbol": tick.symbol, "code": tick.market_session or ""},
        )
