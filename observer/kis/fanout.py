"""A job's fan-out: one question per item, asked over every account at once.

Each account runs ``per_account`` askers, each paced by the account's limiter (the job's REST
share, `observer.kis.session.rate_limits`); an item's KIS or HTTP failure is its own, kept
with why, and the others go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import httpx

from observer.errors import KisError
from observer.kis.client import KisClient
from observer.kis.session import KisAccount

__all__ = ["Answers", "fan_out"]

Item = TypeVar("Item", bound=Hashable)
Answer = TypeVar("Answer")
_WHY_LENGTH = 200


@dataclass
class Answers(Generic[Item, Answer]):
    """What the fan-out got: each item's answer or why it failed, and the calls it cost."""

    answered: dict[Item, Answer] = field(default_factory=dict)
    failed: dict[Item, str] = field(default_factory=dict)
    calls: int = 0


async def fan_out(
    accounts: Sequence[KisAccount],
    items: Sequence[Item],
    ask: Callable[[KisClient, Item], Awaitable[Answer]],
    per_account: int,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Answers[Item, Answer]:
    """Ask ``ask`` of every item, in order, over the accounts; the accounts stay open.

    ``progress(done, total)`` after each item. `KisError` and `httpx.HTTPError` fail the
    item alone; anything else ends the fan-out (a defect).
    """
    out: Answers[Item, Answer] = Answers()
    queue = list(reversed(items))
    before = sum(a.client.requests for a in accounts)

    async def asker(client: KisClient) -> None:
        while queue:
            item = queue.pop()
            try:
                out.answered[item] = await ask(client, item)
            except (KisError, httpx.HTTPError) as exc:
                out.failed[item] = f"{type(exc).__name__}: {exc}"[:_WHY_LENGTH]
            progress(len(out.answered) + len(out.failed), len(items))

    try:
        await asyncio.gather(*(asker(a.client) for a in accounts for _ in range(per_account)))
    finally:
        out.calls = sum(a.client.requests for a in accounts) - before
    return out
