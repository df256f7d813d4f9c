"""Free space on the volumes a process writes to: ok, warning or critical, and the alerts.

`DiskWatch.check` measures the named volumes (``shutil.disk_usage``) at most every
``check_interval_s``. A volume is *critical* below ``critical_free_bytes`` or
``critical_free_percent`` free, a *warning* below the ``warn_`` pair, else ok (0 is off).
Each level reached is an open alert (``disk_low`` warning, ``disk_critical`` critical,
subject ``<process>:<volume>``) in the process's `AlertBook`, resolved once back above it,
an earlier run's taken over first (`DiskWatch.take_over`); the process decides what critical does.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal, NamedTuple

from msgspec import Meta

from bus.events import Event, Severity
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.setting_types import Percent, Seconds, Strict

__all__ = [
    "DISK_CODES",
    "DiskSettings",
    "DiskWatch",
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
    book:
        The process's alert book (a book of the watch's own if none): what is open.
    take_over_within_s:
        How long the first measure waits for `take_over` (0: it does not wait); after that
        it measures with what the book holds.
    usage, monotonic:
        How to measure a volume and read the time (tests give their own).
    """

    def __init__(
        self,
        settings: DiskSettings,
        volumes: Mapping[str, Path],
        owner: str,
        *,
        book: AlertBook | None = None,
        take_over_within_s: float = 0.0,
        usage: Callable[[Path], Usage] = _usage,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.volumes = dict(volumes)
        self.owner = owner
        self.book = book or AlertBook(None, owner)  # the watch hands its events back (`check`)
        self.levels: dict[str, Level] = dict.fromkeys(self.volumes, "ok")
        # Volumes measured and alerted that do not make `critical`: nothing is written there
        # (the writer's capture folder after the capture stops).
        self.alert_only: set[str] = set()
        self.usages: dict[str, Usage] = {}
        self._usage = usage
        self._monotonic = monotonic
        self._due = 0.0
        # Until when the first measure waits for `take_over` (None: not waiting); a producer's
        # is called from its main thread, the measures run on its socket thread.
        self._wait_until: float | None = (
            monotonic() + take_over_within_s if take_over_within_s > 0 else None
        )
        self._taken_over = False

    def take_over(self, earlier: Iterable[Notice] | None) -> None:
        """The disk alerts an earlier run left open (None: they could not be read).

        Those of this watch's volumes are open in the book from now: a volume still below a
        level raises no second alert, one back above it resolves the alert at once.
        """
        subjects = {f"{self.owner}:{name}" for name in self.volumes}
        for notice in self.book.take_over(
            n for n in earlier or () if n.code in DISK_CODES and n.subject in subjects
        ):
            log.info("%s: taking over the open alert %s", notice.subject, notice.code)
        self._taken_over = True

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
        if self._wait_until is not None:
            if not self._taken_over and at < self._wait_until:
                return []  # not measured before the take-over: no alert raised twice
            self._wait_until = None
        if not now and at < self._due:
            return []
        self._due = at + self.settings.check_interval_s
        events: list[Event] = []
        for name, path in self.volumes.items():
            try:
                usage = self._usage(path)
            except OSError as exc:
                log.warning("cannot measure the free space of %s (%s): %s", name, path, exc)
                continue
            self.usages[name] = usage
            self.levels[name] = new = self.settings.level(usage)
            events += self._changes(name, path, usage, new)
        return events

    def _changes(self, name: str, path: Path, usage: Usage, new: Level) -> list[Event]:
        subject = f"{self.owner}:{name}"
        free = f"{usage.free / 1024**2:.0f} MiB free of {usage.total / 1024**2:.0f} MiB"
        context = {
            "path": os.fspath(path),
            "free_bytes": str(usage.free),
            "total_bytes": str(usage.total),
        }
        events: list[Event] = []
        for level, severity, code in _ALERTS:
            event: Event | None
            if _RANK[new] >= _RANK[level]:
                message = f"{name} volume of {self.owner} ({path}) is {level}: {free}"
                if (
                    event := self.book.alert(code, subject, severity, message, context)
                ) is not None:
                    log.warning("%s", message)
                    events.append(event)
            else:
                message = f"{name} volume of {self.owner} ({path}) is back above {level}: {free}"
                if (event := self.book.resolution(code, subject, message)) is not None:
                    log.info("%s", message)
                    events.append(event)
        return events
