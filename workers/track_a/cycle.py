"""One Track A cycle: every target's current price, paced by the accounts, until done or due.

Every account's requests share the targets (``per_client`` in flight each, through the
account's limiter), so the cycle takes about N / rate at the process's REST share. A failing
symbol never stops the cycle: one whose attempts all failed retryably is asked again in
further passes after a backoff pause, so a two-minute REST outage costs nothing. At the
deadline or on ``stop``, requests in flight are cancelled: unasked symbols are unfinished,
still-failing ones failed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from bus.events import PriceSnapshot, Venue
from observer.calendar.clock import Clock
from observer.calendar.venues import SessionOf, no_session
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.parse import price_snapshot
from observer.kis.settings import HaltFrom
from observer.process.retry import backoff_s

__all__ = ["CycleRun", "SnapshotTarget", "run_cycle"]

_NS = 1_000_000_000
# FID_COND_MRKT_DIV_CODE of each venue's prices (UN, both venues', is not asked).


@dataclass(frozen=True, slots=True)
class SnapshotTarget:
    """A universe member to snapshot."""

    symbol: str
    market: str


@dataclass(slots=True)
class CycleRun:
    """What one run of a cycle did."""

    targets: Sequence[SnapshotTarget]
    started_ns: int
    finished_ns: int = 0
    succeeded: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> last error
    calls: int = 0
    wall_s: float = 0.0  # elapsed wall-clock seconds: KIS counts calls per real second
    overran: bool = False  # cut off at the deadline with symbols never asked
    stopped: bool = False  # cut off by ``stop``

    @property
    def unfinished(self) -> list[str]:
        """Symbols neither answered nor failed: the deadline or a stop came first."""
        return [
            t.symbol for t in self.targets if t.symbol not in self.succeeded | self.failed.keys()
        ]

    @property
    def missing(self) -> list[str]:
        """Symbols without a snapshot from this run, in target order."""
        return [t.symbol for t in self.targets if t.symbol not in self.succeeded]

    @property
    def rate_per_s(self) -> float:
        """REST calls per wall-clock second achieved (what the limit is about)."""
        return self.calls / self.wall_s if self.wall_s > 0 else 0.0


async def run_cycle(
    clients: Sequence[KisClient],
    targets: Sequence[SnapshotTarget],
    cycle_id: str,
    clock: Clock,
    deadline_ns: int,
    publish: Callable[[PriceSnapshot], None],
    *,
    per_client: int = 4,
    retry_failed: bool = True,
    retry_initial_s: float = 2.0,
    retry_max_s: float = 30.0,
    stop: asyncio.Event | None = None,
    on_retry: Callable[[CycleRun, int], None] = lambda run, passes: None,
    halt_from: HaltFrom = "both",
    session_of: SessionOf = no_session,
    venue: Venue = "KRX",
) -> CycleRun:
    """Snapshot every target once; return what happened (never raises for a symbol).

    ``retry_initial_s`` and ``retry_max_s`` (clock seconds) pace the passes over the symbols
    still failing: the pause doubles from the first to the cap, so a symbol KIS keeps failing
    costs at most a few calls a minute. ``on_retry`` is called before each pause with the
    passes done so far (the worker alerts at once when the first had no answer).
    ``halt_from``: the field a halt is read from (``[kis] halt_from``, `is_halted`);
    ``venue``: whose prices are asked, KRX's or Nextrade's; ``session_of``:
    its session at each answer (`observer.calendar.venues`).
    """
    run = CycleRun(targets, clock.now_ns())
    wall_started = time.monotonic()
    calls_before = sum(c.requests for c in clients)
    retry: set[str] = set()

    async def ask(client: KisClient, queue: deque[SnapshotTarget]) -> None:
        while queue:
            target = queue.popleft()
            try:
                answer = await client.current_price(target.symbol, venue)
                observed_ns = clock.now_ns()
                publish(
                    price_snapshot(
                        answer,
                        target.symbol,
                        target.market,
                        cycle_id,
                        observed_ns,
                        halt_from=halt_from,
                        venue=venue,
                        trading_session=session_of(venue, observed_ns),
                    )
                )
            except KisError as exc:
                run.failed[target.symbol] = f"{type(exc).__name__}: {exc}"[:200]
                if retry_failed and exc.retryable:
                    retry.add(target.symbol)
            except httpx.HTTPError as exc:  # outside the client's own classification
                run.failed[target.symbol] = f"{type(exc).__name__}: {exc}"[:200]
            else:
                run.failed.pop(target.symbol, None)
                run.succeeded.add(target.symbol)

    async def passes() -> None:
        queue = deque(targets)
        for passes_failed in itertools.count(1):
            await asyncio.gather(*(ask(c, queue) for c in clients for _ in range(per_client)))
            if not retry:
                return
            on_retry(run, passes_failed)
            await clock.sleep(backoff_s(passes_failed, retry_initial_s, retry_max_s))
            queue = deque(t for t in targets if t.symbol in retry)  # in the targets' order
            retry.clear()

    work = asyncio.ensure_future(passes())
    due = asyncio.ensure_future(clock.sleep((deadline_ns - clock.now_ns()) / _NS))
    stopped = asyncio.ensure_future(stop.wait() if stop else asyncio.Event().wait())
    try:
        finished, _ = await asyncio.wait({work, due, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, due, stopped):
            task.cancel()
        await asyncio.gather(work, due, stopped, return_exceptions=True)
    if work in finished:
        work.result()  # a bug, not a symbol's failure: let it out
    else:
        run.stopped = stopped in finished
        # Due while symbols still failed and were being retried: each was asked, none was
        # cut off unasked, so the cycle did not overrun.
        run.overran = not run.stopped and bool(run.unfinished)
    run.finished_ns = clock.now_ns()
    run.wall_s = time.monotonic() - wall_started
    run.calls = sum(c.requests for c in clients) - calls_before
    return run
