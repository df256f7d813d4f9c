"""The one source of time: system, simulated (shared by processes) or manual (tests).

Nothing in the product reads wall-clock time or sleeps except through a `Clock`. A simulated
clock is a start instant, a speed factor and the wall-clock anchor at which it read the start
instant; given the same spec, every process (and the simulator) computes the same time.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, Protocol

from observer.errors import ConfigError

__all__ = [
    "CLOCK_ENV",
    "Clock",
    "ManualClock",
    "SimulatedClock",
    "SystemClock",
    "clock_from_env",
    "clock_from_spec",
    "wall_seconds_between",
]

CLOCK_ENV = "OBSERVER_CLOCK"  # the supervisor hands its clock's spec to every child

_NS = 1_000_000_000


class Clock(Protocol):
    """What every process asks for the time."""

    def now_ns(self) -> int:
        """Current time, UTC nanoseconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    @property
    def spec(self) -> str:
        """A string `clock_from_spec` turns back into an equal clock (for child processes)."""
        ...


def now_utc(clock: Clock) -> datetime:
    """The clock's time as an aware UTC datetime."""
    return datetime.fromtimestamp(clock.now_ns() / _NS, tz=UTC)


class SystemClock:
    """Wall-clock time."""

    spec = "system"

    def now_ns(self) -> int:
        """Wall-clock UTC nanoseconds."""
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


class SimulatedClock:
    """Simulated time: ``start_ns`` when the wall clock read ``anchor_ns``, then ``speed``x.

    ``changes`` make the speed piecewise: from simulated instant ``at_ns`` on, time runs at
    the paired speed (a demo compresses idle hours more than the session). The mapping stays
    a pure function of the wall clock, so every process given the spec agrees.
    """

    def __init__(
        self,
        start_ns: int,
        speed: float,
        anchor_ns: int | None = None,
        changes: tuple[tuple[int, float], ...] = (),
    ) -> None:
        self.start_ns = start_ns
        self.speed = speed
        self.anchor_ns = time.time_ns() if anchor_ns is None else anchor_ns
        self.changes = changes
        # (simulated start, wall start, speed) of each piece, in order
        self._pieces: list[tuple[int, int, float]] = []
        sim, wall = start_ns, self.anchor_ns
        for at_ns, next_speed in ((start_ns, speed), *changes):
            if next_speed <= 0:
                raise ConfigError(f"clock speed must be positive, not {next_speed}")
            if at_ns < sim:
                raise ConfigError("clock speed changes must follow the start, in order")
            if self._pieces:
                wall += int((at_ns - sim) / self._pieces[-1][2])
            sim = at_ns
            self._pieces.append((sim, wall, next_speed))

    @property
    def spec(self) -> str:
        """``sim:<start_ns>:<speed>:<anchor_ns>`` and ``:<at_ns>@<speed>`` per change."""
        tail = "".join(f":{at}@{speed}" for at, speed in self.changes)
        return f"sim:{self.start_ns}:{self.speed}:{self.anchor_ns}{tail}"

    def _piece_at_wall(self, wall_ns: int) -> tuple[int, int, float]:
        found = self._pieces[0]
        for piece in self._pieces[1:]:
            if piece[1] > wall_ns:
                break
            found = piece
        return found

    def speed_now(self) -> float:
        """How fast simulated time runs at this moment."""
        return self._piece_at_wall(time.time_ns())[2]

    def now_ns(self) -> int:
        """Simulated UTC nanoseconds."""
        wall_now = time.time_ns()
        sim, wall, speed = self._piece_at_wall(wall_now)
        return sim + int((wall_now - wall) * speed)

    def wall_ns_at(self, sim_ns: int) -> int:
        """The wall-clock instant at which this clock reads ``sim_ns``."""
        found = self._pieces[0]
        for piece in self._pieces[1:]:
            if piece[0] > sim_ns:
                break
            found = piece
        sim, wall, speed = found
        return wall + int((sim_ns - sim) / speed)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time (across speed changes)."""
        until = self.wall_ns_at(self.now_ns() + int(max(0.0, seconds) * _NS))
        await asyncio.sleep(max(0, until - time.time_ns()) / _NS)


class ManualClock:
    """Time that moves only when a test calls `advance`; sleepers wake when it reaches them."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns
        self._moved = asyncio.Event()

    @property
    def spec(self) -> str:
        """Never: a manual clock lives in one process."""
        raise ConfigError("a manual clock cannot be shared with another process")

    def now_ns(self) -> int:
        """The time the test set."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += int(seconds * _NS)
        self._moved.set()
        self._moved = asyncio.Event()

    def sleep(self, seconds: float) -> Coroutine[Any, Any, None]:
        """Wait until `advance` has moved time past ``seconds`` from the call.

        The wake-up is fixed when asked, not when the awaiting task first runs: a test that
        advances the clock meanwhile must not push it later.
        """
        return self._until(self._now + int(max(0.0, seconds) * _NS))

    async def _until(self, until_ns: int) -> None:
        while self._now < until_ns:
            await self._moved.wait()


_SIM = re.compile(r"sim:(-?\d+):([0-9.]+):(-?\d+)((?::-?\d+@[0-9.]+)*)")
_HUMAN = re.compile(r"(?P<start>[0-9T:+\-.Z]+)@(?P<speed>[0-9.]+)x")


def clock_from_spec(spec: str) -> Clock:
    """Build a clock from ``system``, a `SimulatedClock.spec`, or ``<ISO instant>@<speed>x``.

    The human form (``2026-11-20T08:55:00+09:00@60x``) anchors at the moment it is parsed;
    pass the resulting clock's ``spec`` to other processes so they share that anchor.
    """
    if spec == "system":
        return SystemClock()
    if match := _SIM.fullmatch(spec):
        changes = tuple(
            (int(at), float(speed))
            for at, speed in (piece.split("@") for piece in match[4].split(":")[1:])
        )
        return SimulatedClock(int(match[1]), float(match[2]), int(match[3]), changes)
    if match := _HUMAN.fullmatch(spec):
        try:
            start = datetime.fromisoformat(match["start"])
        except ValueError as exc:
            raise ConfigError(f"bad clock start in {spec!r}: {exc}") from exc
        if start.tzinfo is None:
            raise ConfigError(f"clock start {match['start']!r} needs a UTC offset")
        return SimulatedClock(int(start.timestamp() * _NS), float(match["speed"]))
    raise ConfigError(f"unknown clock spec {spec!r} (system, sim:..., or ISO@SPEEDx)")


def wall_seconds_between(clock: Clock, earlier_ns: int, later_ns: int) -> float:
    """The wall seconds between two instants of ``clock``'s time.

    A simulated clock's seconds may be hundreds to a wall second: a delay that is a busy
    event loop's tenth of a second there is no delayed feed. Other clocks run at wall pace.
    """
    if isinstance(clock, SimulatedClock):
        return (clock.wall_ns_at(later_ns) - clock.wall_ns_at(earlier_ns)) / _NS
    return (later_ns - earlier_ns) / _NS


def clock_from_env() -> Clock:
    """The clock named by ``$OBSERVER_CLOCK`` (the supervisor's), else the system clock."""
    return clock_from_spec(os.environ.get(CLOCK_ENV, "system"))
