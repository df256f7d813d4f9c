"""An account's REST pace in one process: its configured share, slowed while KIS refuses.

KIS answers EGW00201 when an app key's calls pass its per-second budget. Another user of the same
app key, or a budget configured above the real one, can take the account over it however the
processes keep to their shares, and pacing on at the share would have a share of the calls
refused, each retried into the same crowd. `Pace` slows down instead, as TCP does on loss, and
the calls sent never pass the configured share however the pace changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from aiolimiter import AsyncLimiter

__all__ = ["FLOOR", "PACING_S", "RECOVER_S", "STEP", "Pace"]

PACING_S = 0.05  # a limiter's bucket holds this long's worth of calls
FLOOR = 0.1  # the slowest pace, as a share of the configured one
STEP = 0.1  # each recovery's raise, as a share of the configured one
RECOVER_S = 1.0  # seconds without a refusal, calls answered, before each raise (default)


def _limiter(rate: float) -> AsyncLimiter:
    # Evenly paced: a bucket of PACING_S worth of calls (one at KIS's ~20/s), never a
    # second's worth: KIS's window is UNCONFIRMED, and a bucket of N lets 2N-1 calls into
    # the first second. A bucket of one at hundreds of calls/s (the simulator) loses every
    # slot that event-loop latency makes it miss.
    burst = max(1, int(rate * PACING_S))
    return AsyncLimiter(burst, burst / rate)


class Pace:
    """The pace of one account's calls in this process (``async with pace: send``).

    ``rate`` is the process's configured share of the account's budget (calls a second);
    ``recover_s`` the wall seconds without a refusal before each raise.
    `generation` counts the slowdowns: read it when sending and give it back to `refused`.
    Each pace is an ``aiolimiter.AsyncLimiter``; a slowed call waits for the slowed limiter
    and then, last, for the share's own, so the share is never passed.
    """

    def __init__(
        self,
        rate: float,
        recover_s: float = RECOVER_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"a pace needs a positive rate, not {rate!r}")
        self.rate = rate
        self.factor = 1.0  # the current pace, as a share of ``rate``
        self.generation = 0
        self.slowdowns = 0
        self._share = _limiter(rate)
        self._slowed: AsyncLimiter | None = None
        self._recover_s = recover_s
        self._monotonic = monotonic  # the limiters' time: wall seconds, as KIS counts
        self._changed_at = 0.0  # the last slowdown or raise

    @property
    def current(self) -> float:
        """Calls a second allowed now."""
        return self.rate * self.factor

    async def __aenter__(self) -> None:
        slowed = self._slowed
        if slowed is not None:
            await slowed.acquire()
        await self._share.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def refused(self, generation: int) -> None:
        """KIS refused a call sent at ``generation``'s pace as over the budget (EGW00201).

        A refusal of a call sent at the current pace halves it, down to `FLOOR` of the share;
        refusals of calls sent before that slowdown say nothing of the new pace.
        """
        self._changed_at = self._monotonic()  # any refusal puts the next raise off
        if generation != self.generation or self.factor <= FLOOR:
            return
        self.generation += 1
        self.slowdowns += 1
        self._set(max(FLOOR, self.factor / 2))

    def answered(self) -> None:
        """A call got an answer that is no refusal: ``recover_s`` after a change, speed up.

        Each raise is `STEP` of the share, back to the share (from half of it in five seconds
        at the default `RECOVER_S`): gently, since a budget another program takes stays taken,
        and the pace should hover just under what is left rather than climb past it.
        """
        if self.factor < 1.0 and self._monotonic() - self._changed_at >= self._recover_s:
            self._set(min(1.0, round(self.factor + STEP, 6)))

    def _set(self, factor: float) -> None:
        self.factor = factor
        self._changed_at = self._monotonic()
        self._slowed = None if factor >= 1.0 else _limiter(self.rate * factor)

    def __repr__(self) -> str:
        return f"<Pace {self.current:g}/s of {self.rate:g}/s, {self.slowdowns} slowdowns>"
