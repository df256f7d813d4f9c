"""Free space on the volumes a process writes to: ok, warning or critical, and the alerts.

A process names its volumes (the writer: the SQLite database's folder and the capture's; a
producer: its outbox) and calls `DiskWatch.check` as often as it likes: the volumes are
measured (``shutil.disk_usage``, one ``statvfs`` each) at most every
``check_interval_s``. A volume is *critical* below ``critical_free_bytes`` or
``critical_free_percent`` free, a *warning* below the ``warn_`` pair, else ok (a threshold
of 0 is off). Crossing a threshold downwards gives an `Alert` (``disk_low``, warning;
``disk_critical``, critical) once; coming back above it gives the matching `AlertResolved`.
The subject of both is ``<process>:<volume>``.

A process starts knowing nothing of its predecessors' alerts, so the watch's first measure
of a volume compares it with the alerts an earlier run of its source left open
(`observer.process.disk_alerts`): a volume back above a level resolves that level's open alert at
once (a job, one run per process, resolves what its last run raised), and one still below
raises no second alert. The writer's watch reads them itself (``earlier``); a producer's is
handed them (`DiskWatch.inherit`) by its process's main thread once it is READY, and waits
for them up to ``inherit_within_s`` before its first measure (its socket thread, where it
measures, must import nothing: two threads importing SQLAlchemy at once left a partly
initialised module, and the producer died). A process that cannot read the database takes
nothing over: it starts at ok, as before (what it cannot see stays open until
acknowledged).

What a process does at critical is its own business: the writer stops taking frames
(`observer.writer.service`), a producer keeps trying and its outbox refuses cleanly when
the disk is really full (`bus.errors.OutboxFull`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from msgspec import Meta

from bus.events import Alert, AlertResolved, Event, Severity
from observer.tables import Percent, Seconds, Strict

__all__ = [
    "DISK_CODES",
    "DiskSettings",
    "DiskWatch",
    "Earlier",
    "Level",
    "Usage",
]

log = logging.getLogger(__name__)

Level = Literal["ok", "warning", "critical"]
_RANK: dict[Level, int] = {"ok": 0, "warning": 1, "critical": 2}
# The alert of each level above ok: (level, its alert's severity, its alert's code).
_ALERTS: tuple[tuple[Level, Severity, str], ...] = (
    ("warning", "warning", "disk_low"),
    ("critical", "critical", "disk_critical"),
)
DISK_CODES: tuple[str, ...] = tuple(code for _level, _severity, code in _ALERTS)

# Per code, the subjects of the disk alerts an earlier run left open; None: cannot say.
Earlier = Callable[[], Mapping[str, Collection[str]] | None]

Bytes = Annotated[int, Meta(ge=0)]


class DiskSettings(Strict, frozen=True):
    """Free-space thresholds of the volumes the writer and the producers write to."""

    check_interval_s: Seconds = 5.0
    warn_free_bytes: Bytes = 2 * 1024**3  # 2 GiB
    warn_free_percent: Percent = 5.0
    critical_free_bytes: Bytes = 256 * 1024**2  # 256 MiB: room for a last alert and a commit
    critical_free_percent: Percent = 1.0

    def level(self, usage: Usage) -> Level:
        """The level of a volume with this usage."""
        percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        if usage.free < self.critical_free_bytes or percent < self.critical_free_percent:
            return "critical"
        if usage.free < self.warn_free_bytes or percent < self.warn_free_percent:
            return "warning"
        return "ok"


class Usage(NamedTuple):
    """Size and free space of a volume, in bytes (free: what an unprivileged user may use)."""

    total: int
    free: int


def _usage(path: Path) -> Usage:
    """The usage of ``path``'s volume; a path not made yet is on its nearest existing parent."""
    while not path.exists() and path != path.parent:
        path = path.parent
    measured = shutil.disk_usage(path)
    return Usage(measured.total, measured.free)


class DiskWatch:
    """Watch the free space of named volumes; say what changed as alerts and resolutions.

    Parameters
    ----------
    settings:
        Thresholds and how often to measure.
    volumes:
        Name (``database``, ``outbox``, ...) to a path on the volume.
    owner:
        The process, first half of each alert's subject.
    earlier:
        The disk alerts its earlier runs left open, read at the first measure; none: not
        read (every volume starts at ok).
    inherit_within_s:
        How long the first measure waits for `inherit` to hand those over instead (0: it
        does not wait); after that it measures from ok.
    usage, monotonic:
        How to measure a volume and read the time (tests give their own).
    """

    def __init__(
        self,
        settings: DiskSettings,
        volumes: Mapping[str, Path],
        owner: str,
        *,
        earlier: Earlier | None = None,
        inherit_within_s: float = 0.0,
        usage: Callable[[Path], Usage] = _usage,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.volumes = dict(volumes)
        self.owner = owner
        self.levels: dict[str, Level] = dict.fromkeys(self.volumes, "ok")
        # Volumes still measured and alerted that no longer make `critical` (nothing is
        # written there any more: the writer's capture once stopped).
        self.alert_only: set[str] = set()
        self.usages: dict[str, Usage] = {}
        self._usage = usage
        self._monotonic = monotonic
        self._due = 0.0
        self._earlier = earlier
        # Per volume not measured yet, the codes an earlier run left open (`_take_over`).
        self._inherited: dict[str, set[str]] = {}
        # Until when the first measure waits for `inherit` (None: not waiting), and what it
        # handed over (set from another thread: one reference assigned, then the flag).
        self._inherit_until: float | None = (
            monotonic() + inherit_within_s if inherit_within_s > 0 else None
        )
        self._handed: Mapping[str, Collection[str]] | None = None
        self._handed_over = False

    def inherit(self, stored: Mapping[str, Collection[str]] | None) -> None:
        """Hand over the disk alerts an earlier run left open (None: they could not be read)."""
        self._handed = stored
        self._handed_over = True

    @property
    def critical(self) -> bool:
        """True while any volume is critical (as of the last measure), but `alert_only`."""
        return any(
            level == "critical" and name not in self.alert_only
            for name, level in self.levels.items()
        )

    def check(self, *, now: bool = False) -> list[Event]:
        """Measure if due (or ``now``); the alerts and resolutions of the levels that changed.

        A volume that cannot be measured keeps its level and is logged: the watch must not
        take its process down, and the database or the outbox reports real failures anyway.
        """
        at = self._monotonic()
        if self._inherit_until is not None:
            if not self._handed_over and at < self._inherit_until:
                return []  # not measured before the take-over: no alert raised twice
            if self._handed_over:
                self._take_over(self._handed)
            self._inherit_until = None
        if not now and at < self._due:
            return []
        self._due = at + self.settings.check_interval_s
        if self._earlier is not None:
            self._take_over(self._earlier())
            self._earlier = None
        events: list[Event] = []
        for name, path in self.volumes.items():
            try:
                usage = self._usage(path)
            except OSError as exc:
                log.warning("cannot measure the free space of %s (%s): %s", name, path, exc)
                continue
            self.usages[name] = usage
            old, new = self.levels[name], self.settings.level(usage)
            # Its first measure: compared with what an earlier run left open, not with ok.
            was = self._inherited.pop(name, None)
            if was is None:
                was = {code for level, _, code in _ALERTS if _RANK[old] >= _RANK[level]}
            self.levels[name] = new
            events += self._changes(name, path, usage, was, new)
        return events

    def _take_over(self, stored: Mapping[str, Collection[str]] | None) -> None:
        """Keep, per volume, the codes of the disk alerts an earlier run left open."""
        if stored is None:
            return
        for name in self.volumes:
            subject = f"{self.owner}:{name}"
            self._inherited[name] = {code for code in DISK_CODES if subject in stored.get(code, ())}
            if self._inherited[name]:
                log.info(
                    "%s: taking over the open alerts %s", subject, sorted(self._inherited[name])
                )

    def _changes(
        self, name: str, path: Path, usage: Usage, was_open: set[str], new: Level
    ) -> list[Event]:
        subject = f"{self.owner}:{name}"
        free = f"{usage.free / 1024**2:.0f} MiB free of {usage.total / 1024**2:.0f} MiB"
        context = {
            "path": os.fspath(path),
            "free_bytes": str(usage.free),
            "total_bytes": str(usage.total),
        }
        events: list[Event] = []
        for level, severity, code in _ALERTS:
            was, now = code in was_open, _RANK[new] >= _RANK[level]
            if now and not was:
                message = f"{name} volume of {self.owner} ({path}) is {level}: {free}"
                log.warning("%s", message)
                events.append(
                    Alert(
                        severity=severity,
                        code=code,
                        message=message,
                        context=context,
                        subject=subject,
                    )
                )
            elif was and not now:
                message = f"{name} volume of {self.owner} ({path}) is back above {level}: {free}"
                log.info("%s", message)
                events.append(
                    AlertResolved(code=code, severity=severity, message=message, subject=subject)
                )
        return events
