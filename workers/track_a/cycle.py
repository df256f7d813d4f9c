"""One Track A cycle: every target's current price, paced by the accounts, until done or due.

Targets are shared by every account's requests (``per_client`` in flight each, every one
through the account's limiter), so the accounts together ask at the process's REST share and
the cycle takes about N / rate. A symbol that fails never stops the cycle: its error is
recorded, and when every attempt failed with a retryable error it gets one more pass after
the others. At the deadline (the next cycle's start) or on ``stop``, requests in flight are
cancelled and the symbols not answered are reported as unfinished.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from bus.events import PriceSnapshot
from observer.clock import Clock
from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.parse import price_snapshot

__all__ = ["CycleRun", "Target", "run_cycle"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Target:
    """A universe member to snapshot."""

    symbol: str
    market: str


@dataclass(slots=True)
class CycleRun:
    """What one run of a cycle did."""

    targets: Sequence[Target]
    started_ns: int
    finished_ns: int = 0
    succeeded: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> last error
    calls: int = 0
    wall_s: float = 0.0  # elapsed wall-clock seconds: KIS counts calls per real second
    overran: bool = False  # cut off at the deadline
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
    targets: Sequence[Target],
    cycle_id: str,
    clock: Clock,
    deadline_ns: int,
    publish: Callable[[PriceSnapshot], None],
    *,
    per_client: int = 4,
    retry_failed: bool = True,
    stop: asyncio.Event | None = None,
) -> CycleRun:
    """Snapshot every target once; return what happened (never raises for a symbol)."""
    run = CycleRun(targets, clock.now_ns())
    wall_started = time.monotonic()
    calls_before = sum(c.requests for c in clients)
    retry: list[Target] = []

    async def ask(client: KisClient, queue: deque[Target], first_pass: bool) -> None:
        while queue:
            target = queue.popleft()
            try:
                answer = await client.current_price(target.symbol)
                publish(
                    price_snapshot(answer, target.symbol, target.market, cycle_id, clock.now_ns())
                )
            except KisError as exc:
                run.failed[target.symbol] = f"{type(exc).__name__}: {exc}"[:200]
                if first_pass and retry_failed and exc.retryable:
                    retry.append(target)
            except httpx.HTTPError as exc:  # outside the client's own classification
                run.failed[target.symbol] = f"{type(exc).__name__}: {exc}"[:200]
            else:
                run.failed.pop(target.symbol, None)
                run.succeeded.add(target.symbol)

    async def passes() -> None:
        for first_pass, todo in ((True, targets), (False, retry)):
            queue = deque(todo)
            await asyncio.gather(
                *(ask(c, queue, first_pass) for c in clients for _ in range(per_client))
            )

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
        run.overran = not run.stopped
    run.finished_ns = clock.now_ns()
    run.wall_s = time.monotonic() - wall_started
    run.calls = sum(c.requests for c in clients) - calls_before
    return run
