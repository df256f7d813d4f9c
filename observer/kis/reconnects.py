"""A session's reconnect budget: how many new connections an hour may open.

A session that keeps failing reconnects with backoff (`observer.kis.stream.KisStream`), and
within a budget per hour (KIS states no limit; a reconnect storm is what a gateway blocks an
app key for): once it is spent, `ReconnectBudget.spend` raises `BudgetSpent` naming the
instant the oldest reconnect of the hour ages out, and with it one reconnect's room.
"""

from __future__ import annotations

from collections import deque

from observer.calendar.clock import Clock
from observer.errors import KisError

__all__ = ["BudgetSpent", "ReconnectBudget"]

_HOUR_NS = 3600 * 1_000_000_000


class BudgetSpent(KisError):
    """The hourly reconnect budget is spent; it has room again at ``reopens_ns``."""

    def __init__(self, message: str, reopens_ns: int) -> None:
        super().__init__(message)
        self.reopens_ns = reopens_ns


class ReconnectBudget:
    """At most ``per_hour`` reconnects within any hour of ``clock`` time."""

    def __init__(self, clock: Clock, per_hour: int) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._spent: deque[int] = deque()  # when each reconnect of the last hour was made

    def in_hour(self) -> int:
        """Reconnects spent within the last hour."""
        now = self._clock.now_ns()
        while self._spent and now - self._spent[0] > _HOUR_NS:
            self._spent.popleft()
        return len(self._spent)

    def spend(self) -> None:
        """Count a reconnect now; raise `BudgetSpent` if the hour has no room for it."""
        if self.in_hour() >= self.per_hour:
            reopens = self._spent[0] + _HOUR_NS + 1 if self._spent else 0
            raise BudgetSpent(
                f"{self.per_hour} reconnects within an hour: reconnect budget spent", reopens
            )
        self._spent.append(self._clock.now_ns())
