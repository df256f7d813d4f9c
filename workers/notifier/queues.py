"""One target's messages waiting to be sent, oldest first.

A reminder replaces the reminder of its condition still waiting: a channel failing for
hours holds one reminder per condition, the latest, not one every ``remind_s``.
"""

from __future__ import annotations

import asyncio
from collections import deque

from workers.notifier.messages import Message

__all__ = ["TargetQueue"]


class TargetQueue:
    """The messages one target is still to be sent (see the module docstring)."""

    def __init__(self) -> None:
        self._messages: deque[Message] = deque()
        self._added = asyncio.Event()

    def put_nowait(self, message: Message) -> None:
        """Queue ``message`` last; a reminder drops the one of its condition waiting."""
        if message.kind == "reminder":
            self._messages = deque(
                queued
                for queued in self._messages
                if queued.kind != "reminder" or queued.condition != message.condition
            )
        self._messages.append(message)
        self._added.set()

    async def get(self) -> Message:
        """The oldest message, once there is one."""
        while not self._messages:
            self._added.clear()
            await self._added.wait()
        return self._messages.popleft()

    def get_nowait(self) -> Message:
        """The oldest message; `asyncio.QueueEmpty` if there is none."""
        if not self._messages:
            raise asyncio.QueueEmpty
        return self._messages.popleft()

    def take_all(self) -> list[Message]:
        """Every message waiting, oldest first; the queue is then empty."""
        taken = list(self._messages)
        self._messages.clear()
        return taken

    def take_newer(self, message: Message) -> Message | None:
        """The reminder waiting that replaces ``message``, a reminder being retried."""
        if message.kind != "reminder":
            return None
        for queued in self._messages:
            if queued.kind == "reminder" and queued.condition == message.condition:
                self._messages.remove(queued)
                return queued
        return None

    def qsize(self) -> int:
        """How many messages wait."""
        return len(self._messages)

    def empty(self) -> bool:
        """True if none waits."""
        return not self._messages
