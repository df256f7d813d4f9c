"""Each account's outages: whether it counts as healthy, and its ``track_b_account_down`` alert.

An account is down from the moment its session fails (or starts) until KIS confirms one
(`KisStream.on_confirmed`: a registration acknowledged, the identifying release answered,
data); down for ``unhealthy_after_s``, it is unhealthy and the slot manager moves its
symbols elsewhere. A handshake alone is not up: a server that accepts the socket and then
refuses the app key (OPSP8996) or drops it keeps the account down.

An account whose hourly reconnect budget is spent, or that has no approval key (KIS refused
its app key, or the token job issued none in time), is *dead* until a session is confirmed:
a critical ``track_b_account_down`` alert, once per outage, and unhealthy at once. A
session KIS refuses because another session holds the app key (`PERSISTENT_REFUSALS`:
OPSP8996) raises that alert once the outage is ``unhealthy_after_s`` old, not when the
budget is spent (the stream keeps trying); the budget's spending raises no second one for
the same outage. The confirmation ends the outage with an `AlertResolved` of that code and
account (the alert's subject: each account's outage is its own condition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from bus.events import Alert, AlertResolved, Event, Severity
from observer.calendar.clock import Clock
from observer.runtime import ShortTasks

__all__ = ["ACCOUNT_DOWN", "Outages", "resolved"]

log = logging.getLogger(__name__)

ACCOUNT_DOWN = "track_b_account_down"  # the alert of an account whose session is out
_NS = 1_000_000_000


def resolved(alias: str, code: str, severity: Severity, what: str) -> AlertResolved:
    """The end of an account's alerted condition (``code`` of ``severity``, about it), logged."""
    log.warning("account %s: %s", alias, what)
    message = f"account {alias}: {what}"
    return AlertResolved(code=code, severity=severity, subject=alias, message=message)


class Outages:
    """Every account's outage, its health, and its ``track_b_account_down`` alert."""

    def __init__(
        self,
        clock: Clock,
        publish: Callable[[Event], object],
        aliases: Collection[str],
        unhealthy_after_s: float,
    ) -> None:
        self.clock = clock
        self.publish = publish
        self.unhealthy_ns = int(unhealthy_after_s * _NS)
        # alias -> since when it is down (clock ns), None while up
        self.down_since: dict[str, int | None] = dict.fromkeys(aliases)
        self.dead: set[str] = set()  # accounts whose reconnect budget or key is spent
        # Accounts whose down alert is open but not raised by `down`: an earlier Track B's,
        # or a persistent session refusal's (`refused`); `down` raises none again for them.
        self.alerted: set[str] = set()
        self.refusing: dict[str, asyncio.Task[None]] = {}  # alias -> its `_alert_refused`
        self.tasks = ShortTasks()  # those tasks: one that fails ends the collector's run

    def take_over(self, aliases: Collection[str], *, late: bool = False) -> None:
        """Accounts whose down alert an earlier Track B left open: their confirmation ends it.

        ``late``: taken over after the sessions started; one that is up now was confirmed
        before, and is resolved at once.
        """
        for alias in sorted(set(aliases) & self.down_since.keys()):
            if late and self.down_since[alias] is None and alias not in self.dead:
                self.publish(resolved(alias, ACCOUNT_DOWN, "critical", "streams since a restart"))
            else:
                self.alerted.add(alias)

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
        if alias in self.alerted:  # an open alert stands for this outage
            self.alerted.discard(alias)
            return
        self.publish(
            Alert(
                severity="critical",
                code=ACCOUNT_DOWN,
                message=f"account {alias} streams nothing: {reason}; its slots fail over",
                context={"account": alias},
                subject=alias,
            )
        )

    def refused(self, alias: str, code: str) -> None:
        """KIS refuses the account's sessions while another holds its app key: alerted soon.

        Every reconnect is refused alike until that session lets go, so the budget's alert
        came most of an hour later. Alerted once the outage is ``unhealthy_after_s`` old,
        when its slots fail over (a session of ours that lingers at KIS after a restart lets
        go sooner), whatever the reconnects do meanwhile; the stream keeps trying.
        """
        since = self.down_since[alias]
        if since is None or alias in self.dead or alias in self.alerted:
            return  # up, or this outage is alerted already
        if alias not in self.refusing:
            alert = self._alert_refused(alias, since, code)
            self.refusing[alias] = self.tasks.spawn(alert, f"refused-{alias}")

    async def _alert_refused(self, alias: str, since: int, code: str) -> None:
        """The alert of `refused`, at ``unhealthy_after_s`` into the outage, if it lasts."""
        await self.clock.sleep(max(0.0, (since + self.unhealthy_ns - self.clock.now_ns()) / _NS))
        self.refusing.pop(alias, None)
        if self.down_since[alias] != since or alias in self.dead or alias in self.alerted:
            return  # up again meanwhile, or alerted by the spent budget
        self.alerted.add(alias)  # the alert stands for the outage: `down` raises none
        down_s = (self.clock.now_ns() - since) / _NS
        self.publish(
            Alert(
                severity="critical",
                code=ACCOUNT_DOWN,
                message=f"account {alias} streams nothing for {down_s:.0f}s: KIS refuses its "
                f"session ({code}: another session holds the app key); retrying, its slots "
                "fail over",
                context={"account": alias, "refusal": code},
                subject=alias,
            )
        )

    def confirmed(self, alias: str) -> None:
        """KIS confirmed the account's session: up again, the end of an outage."""
        self.down_since[alias] = None
        if pending := self.refusing.pop(alias, None):
            pending.cancel()  # let go within the grace: no alert
        if alias in self.dead or alias in self.alerted:
            self.dead.discard(alias)
            self.alerted.discard(alias)
            self.publish(resolved(alias, ACCOUNT_DOWN, "critical", "streams again"))

    def cancel(self) -> None:
        """The collector stops: no refusal's alert is due any more."""
        for pending in self.refusing.values():
            pending.cancel()
        self.refusing.clear()
