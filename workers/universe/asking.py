"""One KIS call per stock, spread over every account, and once more for those that failed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import httpx

from observer.calendar.clock import Clock
from observer.errors import KisError
from observer.kis.client import KisClient

__all__ = ["Asked", "ask_each"]

R = TypeVar("R")


@dataclass(slots=True)
class Asked(Generic[R]):
    """What a pass over the stocks brought back."""

    answers: dict[str, R] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> the last error
    requests: int = 0
    retried: int = 0  # stocks asked a second time


async def ask_each(
    clients: Sequence[KisClient],
    symbols: Sequence[str],
    call: Callable[[KisClient, str], Awaitable[R]],
    *,
    per_account: int,
    clock: Clock,
    retry_until_ns: int | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Asked[R]:
    """``call`` once per symbol (in order), ``per_account`` in flight on each client.

    Each client is paced by its own limiter. A symbol whose call failed (a KIS refusal, a
    transport error) is asked once more after the others, unless the clock has reached
    ``retry_until_ns``: a failure is often a moment's (a 5xx burst, a reset). Those failing
    every try are in `Asked.failed`, never in `Asked.answers`. ``progress(done, total)``
    follows each request.
    """
    asked: Asked[R] = Asked()
    total = len(symbols)

    async def work(client: KisClient, queue: list[str], until_ns: int | None) -> None:
        while queue and (until_ns is None or clock.now_ns() < until_ns):
            symbol = queue.pop()
            try:
                asked.answers[symbol] = await call(client, symbol)
                asked.failed.pop(symbol, None)  # a second try that worked
            except (KisError, httpx.HTTPError) as exc:
                asked.failed[symbol] = f"{type(exc).__name__}: {exc}"[:200]
            asked.requests += 1
            progress(asked.requests, total)

    async def one_pass(queue: list[str], until_ns: int | None = None) -> None:
        await asyncio.gather(
            *(work(client, queue, until_ns) for client in clients for _ in range(per_account))
        )

    await one_pass(list(reversed(symbols)))
    again = [s for s in symbols if s in asked.failed]
    if again and (retry_until_ns is None or clock.now_ns() < retry_until_ns):
        asked.retried = len(again)
        total += len(again)
        await one_pass(list(reversed(again)), retry_until_ns)
    return asked
