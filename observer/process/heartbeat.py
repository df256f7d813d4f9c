"""A supervised process's side of the READY handshake and heartbeats.

The supervisor passes the write end of a pipe as ``OBSERVER_NOTIFY_FD``; the process writes one
JSON line ``{"t": "ready"}`` when it can do its work and ``{"t": "beat", "counters": {...}}`` from
its main loop; one that stops beating is hung and restarted. One alive but unable to do its work
says so with the counter ``failing_s`` (the supervisor's status is unhealthy while it is above 0).
Outside the supervisor, `Heartbeat.from_env` returns a notifier that does nothing.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import msgspec

__all__ = [
    "BUS_HANDSHAKE_FAILING_S",
    "BUS_LOST_EVENTS",
    "BUS_UNACKED_S",
    "FAILING_S",
    "NOTIFY_FD_ENV",
    "READY_TIMEOUT_ENV",
    "Heartbeat",
    "HeartbeatLine",
    "process_age_s",
]

NOTIFY_FD_ENV = "OBSERVER_NOTIFY_FD"
HEARTBEAT_ENV = "OBSERVER_HEARTBEAT_S"
READY_TIMEOUT_ENV = "OBSERVER_READY_TIMEOUT_S"  # how long the supervisor waits for READY
FAILING_S = "failing_s"  # the heartbeat counter of a process alive but failing its work
# How long this process's producer has failed its CURVE handshake with the writer (keys that
# do not match): the writer cannot tell, since its ZAP is never asked.
BUS_HANDSHAKE_FAILING_S = "bus_handshake_failing_s"
# How long the writer has acknowledged none of this process's pending events (a writer out of
# this host's reach: the events wait in the outbox, and so do the alerts about it).
BUS_UNACKED_S = "bus_unacked_s"
# Events this process's producer declared lost (`bus.events.SeqsLost`) since it started.
BUS_LOST_EVENTS = "bus_lost_events"


def process_age_s() -> float:
    """Seconds since this process started (its start time in ``/proc/self/stat``).

    The supervisor's ready timeout runs from the spawn: what a start measures against it must
    count the interpreter's and the imports' time too, which a loaded machine stretches.
    """
    stat = Path("/proc/self/stat").read_text()
    started_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started_ticks / os.sysconf("SC_CLK_TCK")


class ProducerFigures(Protocol):
    """What a heartbeat tells of the process's producer (`bus.producer.Producer`)."""

    @property
    def pending(self) -> int: ...

    @property
    def unacked_s(self) -> float: ...

    @property
    def handshake_failing_s(self) -> float: ...

    @property
    def lost_events(self) -> int: ...


class HeartbeatLine(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line on the notify pipe."""

    t: str  # "ready" | "beat"
    counters: dict[str, float] = {}


class Heartbeat:
    """Write READY and rate-limited heartbeats to the supervisor's pipe (if there is one)."""

    def __init__(
        self, fd: int | None, interval_s: float = 1.0, ready_timeout_s: float = 30.0
    ) -> None:
        self._fd = fd
        if fd is not None:
            os.set_blocking(fd, False)  # a stalled supervisor must never stall this process
        self.interval_s = interval_s
        self.ready_timeout_s = ready_timeout_s  # READY later than this: ended as hung
        self._next_beat = 0.0
        self._encoder = msgspec.json.Encoder()
        self._producer: ProducerFigures | None = None

    @classmethod
    def from_env(cls) -> Heartbeat:
        """The notifier the supervisor set up for this process, or a silent one."""
        fd = os.environ.get(NOTIFY_FD_ENV)
        interval = float(os.environ.get(HEARTBEAT_ENV, "1.0"))
        ready_timeout = float(os.environ.get(READY_TIMEOUT_ENV, "30.0"))
        return cls(int(fd) if fd else None, interval, ready_timeout)

    @property
    def supervised(self) -> bool:
        """True when a supervisor listens."""
        return self._fd is not None

    def ready(self, counters: Mapping[str, float] | None = None) -> None:
        """Tell the supervisor this process is ready (and send the first heartbeat)."""
        self._write(HeartbeatLine("ready", dict(counters or {})))
        self._next_beat = time.monotonic() + self.interval_s

    def report_producer(self, producer: ProducerFigures) -> None:
        """Add the producer's figures to every heartbeat.

        ``bus_pending``: the outbox's backlog, the events the writer has not acknowledged (on
        a collectors host it grows while the writer's host is out of reach);
        `BUS_UNACKED_S`, `BUS_HANDSHAKE_FAILING_S` and `BUS_LOST_EVENTS`.
        """
        self._producer = producer

    def beat(self, counters: Callable[[], Mapping[str, float]] | None = None) -> None:
        """Send a heartbeat if one is due; cheap to call from every loop iteration.

        ``counters`` is called only when a beat is actually sent.
        """
        now = time.monotonic()
        if self._fd is None or now < self._next_beat:
            return
        self._next_beat = now + self.interval_s
        self._write(HeartbeatLine("beat", self._with_pending(counters() if counters else {})))

    def beat_now(self, counters: Mapping[str, float]) -> None:
        """Send a heartbeat now, whatever the rate limit: a job's final counters.

        A job's counters stay visible after it exits, so its last beat must get through.
        """
        self._next_beat = time.monotonic() + self.interval_s
        self._write(HeartbeatLine("beat", self._with_pending(counters)))

    def _with_pending(self, counters: Mapping[str, float]) -> dict[str, float]:
        counted = dict(counters)
        if (producer := self._producer) is not None:
            counted["bus_pending"] = float(producer.pending)
            counted[BUS_UNACKED_S] = round(producer.unacked_s, 1)
            counted[BUS_HANDSHAKE_FAILING_S] = round(producer.handshake_failing_s, 1)
            if producer.lost_events:
                counted[BUS_LOST_EVENTS] = float(producer.lost_events)
        return counted

    def _write(self, notice: HeartbeatLine) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, self._encoder.encode(notice) + b"\n")
        except BlockingIOError:
            pass  # the pipe is full: this beat is dropped, the next one gets through
        except OSError:  # the supervisor is gone; the parent-death signal follows
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
