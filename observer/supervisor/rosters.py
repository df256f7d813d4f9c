"""The supervisor's part in the host rosters (`observer.cluster.rosters`): publish, and judge.

Every supervisor publishes its roster at its start and again on its scheduler's first pass of
each KST calendar day: weekends and holidays included, so that a running host's roster is
never older than a day and the 36-hour window never drops it. The store host's supervisor
(role ``store`` or ``all``) judges each database reading's rosters: an alert per overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING

from bus.events import Event
from observer.calendar.phases import KST
from observer.cluster.rosters import OverlapAlerts, overlaps, roster_of
from observer.config.tree import Settings

if TYPE_CHECKING:
    from observer.supervisor.readings import Reading

__all__ = ["RosterDuty"]


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
    """

    def __init__(
        self,
        settings: Settings,
        role: str,
        programs: Iterable[str],
        publish: Callable[[Event], None],
    ) -> None:
        self._settings = settings
        self._role = role
        self._programs = tuple(programs)
        self._publish = publish
        self._day: date | None = None
        self._alerts = OverlapAlerts()

    def publish_for(self, now: datetime) -> None:
        """Publish the roster if none was published on ``now``'s KST day."""
        day = now.astimezone(KST).date()
        if day != self._day:
            self._day = day
            self._publish(roster_of(self._settings, self._role, self._programs))

    def judge(self, reading: Reading) -> None:
        """Alert on the overlaps between the hosts' rosters; resolve those gone."""
        found = overlaps(reading.rosters)
        for event in self._alerts.judge(found, reading.overlaps_open):
            self._publish(event)
