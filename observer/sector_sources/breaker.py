"""A circuit breaker on the project Clock.

In-house rather than ``purgatory`` or ``aiobreaker``: both read the wall clock, while a simulated
day (the demo, the tests) must open and half-open on the `Clock`; the whole state machine is a
few lines (`CircuitBreaker`).
"""

from __future__ import annotations

from observer.calendar.clock import Clock

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Counts failures in a row, and opens on them.

    closed: calls go through; ``threshold`` failures in a row open it.
    open: `allow` is False until ``open_s`` have passed on the clock.
    half-open: one probe goes through; its success closes the breaker, its failure reopens it.
    `trip` opens it at once, for as long as the source asked (a ``Retry-After`` too long to
    wait).
    """

    def __init__(self, clock: Clock, threshold: int = 5, open_s: float = 300.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.open_s = open_s
        self.failures = 0
        self.opened = 0  # how many times it opened
        self._open_until_ns: int | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half_open"``."""
        if self._open_until_ns is None:
            return "closed"
        return "open" if self.clock.now_ns() < self._open_until_ns else "half_open"

    def allow(self) -> bool:
        """Whether a call may go now (half-open lets exactly one probe through)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """A call succeeded (an answer that is not a failure, "not found" included)."""
        self.failures = 0
        self._open_until_ns = None
        self._probing = False

    def failure(self) -> None:
        """A call failed (after its retries): open at the threshold, or after a probe.

        A call that was already under way when the breaker opened does not open it again.
        """
        self.failures += 1
        if self._probing or (self._open_until_ns is None and self.failures >= self.threshold):
            self._probing = False
            self._open_until_ns = self.clock.now_ns() + int(self.open_s * 1e9)
            self.opened += 1

    def trip(self, open_s: float) -> None:
        """Open now for ``open_s`` (at least the configured time): the source said to stay away.

        Already open, it only stays open longer (one opening, counted once).
        """
        until = self.clock.now_ns() + int(max(open_s, self.open_s) * 1e9)
        if self._open_until_ns is None or self.state == "half_open":
            self.opened += 1
        elif until <= self._open_until_ns:
            return
        self._probing = False
        self._open_until_ns = until
