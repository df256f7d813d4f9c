"""The supervisor's part in the host rosters (`observer.cluster.rosters`): publish, and judge.

Every supervisor publishes its roster at its start and again on its scheduler's first pass of
each KST calendar day: weekends and holidays included, so that a running host's roster is
never older than a day and the 36-hour window never drops it. The store host's supervisor
(role ``store`` or ``all``) judges each database reading's rosters: a critical alert per overlap
in the supervisor's alert book (the open ones taken over at the first reading), resolved once
the overlap is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING

from bus.events import Event
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.cluster.rosters import OVERLAP_CODES, overlaps, roster_of
from observer.config.tree import Settings

if TYPE_CHECKING:
    from observer.supervisor.readings import Reading

__all__ = ["RosterDuty"]

log = logging.getLogger(__name__)


class RosterDuty:
    """Publish this host's roster once a day; raise and resolve the overlaps of a reading.

    Parameters
    ----------
    settings, role:
        This host's configuration and role.
    programs:
        The names of the programs this host runs.
    publish:
        Sends an event on the supervisor's producer.
    alerts:
        The supervisor's alert book.
    """

    def __init__(
        self,
        settings: Settings,
        role: str,
        programs: Iterable[str],
        publish: Callable[[Event], None],
        alerts: AlertBook,
    ) -> None:
        self._settings = settings
        self._role = role
        self._programs = tuple(programs)
        self._publish = publish
        self._day: date | None = None
        self._alerts = alerts
        self._taken_over = False

    def publish_for(self, now: datetime) -> None:
        """Publish the roster if none was published on ``now``'s KST day."""
        day = now.astimezone(KST).date()
        if day != self._day:
            self._day = day
            self._publish(roster_of(self._settings, self._role, self._programs))

    def judge(self, reading: Reading) -> None:
        """Alert on the overlaps between the hosts' rosters; resolve those gone.

        The first reading's open overlap alerts are taken over, so that a restarted supervisor
        neither repeats an alert nor leaves one open after its overlap ended.
        """
        if not self._taken_over:
            self._taken_over = True
            self._alerts.take_over(n for n in reading.open_alerts if n.code in OVERLAP_CODES)
        found = {(o.code, o.subject): o for o in overlaps(reading.rosters)}
        for (code, subject), overlap in found.items():
            context = {"hosts": ",".join(overlap.hosts)}
            if self._alerts.raise_(code, subject, "critical", overlap.message, context):
                log.error("%s", overlap.message)
        for code in sorted(OVERLAP_CODES):
            for subject in sorted(self._alerts.subjects(code)):
                if (code, subject) not in found:
                    message = f"{subject}: the hosts' latest rosters do not show it"
                    log.info("%s: %s", code, message)
                    self._alerts.resolve(code, subject, message)
