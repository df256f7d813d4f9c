"""Awaiting work that a stop, or a time limit of the clock's, may cut short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["wait_unless"]

_T = TypeVar("_T")


async def wait_unless(
    stop: asyncio.Event, work: Awaitable[_T], limit: Awaitable[None] | None = None
) -> _T | None:
    """The result of ``work``, or None if ``stop`` is set first.

    Raises TimeoutError if ``limit`` (a Clock sleep, so simulated time counts) ends first.
    The losers are cancelled.
    """
    task = asyncio.ensure_future(work)
    others: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if limit is not None:
        others.append(asyncio.ensure_future(limit))
    try:
        done, _ = await asyncio.wait({task, *others}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for other in others:
            other.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if stop.is_set():
        return None
    raise TimeoutError
