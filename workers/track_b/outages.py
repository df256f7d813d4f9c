"""Each account's outages: whether it counts as healthy, and its ``track_b_account_down`` alert.

An account is down from its session's failure (or start) until KIS confirms one
(`KisStream.on_confirmed`); down for ``unhealthy_after_s`` it is unhealthy, and its symbols
move elsewhere. One whose reconnect budget is spent or that has no approval key is *dead*:
a critical ``track_b_account_down`` about it, unhealthy at once. A session refused because
another holds the app key (OPSP8996) raises the same alert once the outage is
``unhealthy_after_s`` old. The alert is open in the process's `AlertBook` (once an outage,
an earlier run's too); the confirmation resolves it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from observer.alerts.book import AlertBook
from observer.calendar.clock import Clock
from observer.runtime import ShortTasks

__all__ = ["ACCOUNT_DOWN", "Outages", "resolve"]

log = logging.getLogger(__name__)

ACCOUNT_DOWN = "track_b_account_down"  # the alert of an account whose session is out
_NS = 1_000_000_000


def resolve(alerts: AlertBook, code: str, alias: str, what: str) -> bool:
    """End the account's alerted condition ``code`` (about it), logged; False if none is open."""
    if not alerts.resolve(code, alias, f"account {alias}: {what}"):
        return False
    log.warning("account %s: %s", alias, what)
    return True


class Outages:
    """Every account's outage, its health, and its ``track_b_account_down`` alert."""

    def __init__(
        self,
        clock: Clock,
        alerts: AlertBook,
        aliases: Collection[str],
        unhealthy_after_s: float,
    ) -> None:
        self.clock = clock
        self.alerts = alerts
        self.unhealthy_ns = int(unhealthy_after_s * _NS)
        # alias -> since when it is down (clock ns), None while up
        self.down_since: dict[str, int | None] = dict.fromkeys(aliases)
        self.dead: set[str] = set()  # accounts whose reconnect budget or key is spent
        self.refusing: dict[str, asyncio.Task[None]] = {}  # alias -> its `_alert_refused`
        self.tasks = ShortTasks()  # those tasks: one that fails ends the collector's run

    def taken_over(self, aliases: Collection[str]) -> None:
        """Accounts whose down alert an earlier run left open, taken over late (streaming).

        One that is up now was confirmed before: resolved at once. The others' next
        confirmation resolves it, and `down` raises no second alert.
        """
        for alias in sorted(set(aliases) & self.down_since.keys()):
            if self.down_since[alias] is None and alias not in self.dead:
                resolve(self.alerts, ACCOUNT_DOWN, alias, "streams since a restart")

    def healthy(self) -> set[str]:
        """Accounts that are up, or down for less than ``unhealthy_after_s``."""
        now = self.clock.now_ns()
        return {
            alias
            for alias, since in self.down_since.items()
            if alias not in self.dead and (since is None or now - since < self.unhealthy_ns)
        }

    def starting(self, alias: str) -> None:
        """The account's session starts: down until confirmed, within the grace."""
        self.down_since[alias] = self.clock.now_ns()

    def failed(self, alias: str) -> None:
        """The account's session failed (disconnected, refused, stopped): down from now."""
        if self.down_since[alias] is None:
            self.down_since[alias] = self.clock.now_ns()

    def down(self, alias: str, reason: str) -> None:
        """No session until a later instant (budget spent, no key): unhealthy, alerted once."""
        if alias in self.dead:
            return
        self.dead.add(alias)
        self.alerts.raise_(  # none if an open alert stands for this outage
            ACCOUNT_DOWN,
            alias,
            "critical",
            f"account {alias} streams nothing: {reason}; its slots fail over",
            {"account": alias},
        )

    def refused(self, alias: str, code: str) -> None:
        """KIS refuses the account's sessions while another holds its app key: alerted soon.

        Every reconnect is refused alike until that session lets go, so the budget's alert
        came most of an hour later. Alerted once the outage is ``unhealthy_after_s`` old,
        when its slots fail over (a session of ours that lingers at KIS after a restart lets
        go sooner), whatever the reconnects do meanwhile; the stream keeps trying.
        """
        since = self.down_since[alias]
        if since is None or alias in self.dead or self.alerts.is_open(ACCOUNT_DOWN, alias):
            return  # up, or this outage is alerted already
        if alias not in self.refusing:
            alert = self._alert_refused(alias, since, code)
            self.refusing[alias] = self.tasks.spawn(alert, f"refused-{alias}")

    async def _alert_refused(self, alias: str, since: int, code: str) -> None:
        """The alert of `refused`, at ``unhealthy_after_s`` into the outage, if it lasts."""
        await self.clock.sleep(max(0.0, (since + self.unhealthy_ns - self.clock.now_ns()) / _NS))
        self.refusing.pop(alias, None)
        if self.down_since[alias] != since or alias in self.dead:
            return  # up again meanwhile, or alerted by the spent budget
        down_s = (self.clock.now_ns() - since) / _NS
        self.alerts.raise_(  # it stands for the outage: `down` raises none
            ACCOUNT_DOWN,
            alias,
            "critical",
            f"account {alias} streams nothing for {down_s:.0f}s: KIS refuses its session "
            f"({code}: another session holds the app key); retrying, its slots fail over",
            {"account": alias, "refusal": code},
        )

    def confirmed(self, alias: str) -> None:
        """KIS confirmed the account's session: up again, the end of an outage."""
        self.down_since[alias] = None
        if pending := self.refusing.pop(alias, None):
            pending.cancel()  # let go within the grace: no alert
        self.dead.discard(alias)
        resolve(self.alerts, ACCOUNT_DOWN, alias, "streams again")

    def cancel(self) -> None:
        """The collector stops: no refusal's alert is due any more."""
        for pending in self.refusing.values():
            pending.cancel()
        self.refusing.clear()
