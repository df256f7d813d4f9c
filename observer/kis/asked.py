"""What a REST call asked for, journaled with its answers, and the call read again from them.

A process whose events hold more than KIS's answers do (gap recovery's carry their gap) keeps
what each call asked for in the journal beside its answers (`Asked.context`, set for the
call's asyncio task by `observer.kis.journal.answering_for`). The journal's replay reads the
context back (`Asked.of`) and runs the call's own paging again on the journaled pages
(`settled`), so the pages are read as the call read them.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Self, TypeVar

import msgspec

__all__ = ["Asked", "PagesShort", "settled"]

_T = TypeVar("_T")


class Asked(msgspec.Struct, frozen=True, tag=True):
    """A call's ask; each kind a subclass with a tag of its own (its JSON's ``type``)."""

    def context(self) -> str:
        """As the journal keeps it (`JournalRecord.context`)."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def of(cls, context: str) -> Self | None:
        """The ask of this kind a journaled context names; None for anything else ("" too)."""
        if not context.startswith(f'{{"type":"{cls.__struct_config__.tag}"'):
            return None
        try:
            return msgspec.json.decode(context, type=cls)
        except msgspec.DecodeError:  # a ValidationError too
            return None


class PagesShort(Exception):
    """A call read again asked for a page its journal does not hold (yet)."""


def settled(paging: Coroutine[Any, Any, _T]) -> _T | None:
    """``paging``'s result, run on journaled pages; None if it asked for one beyond them.

    Its pages are served without suspending, so it runs to its end in one step
    (StopIteration carries the result) or stops at `PagesShort`.
    """
    try:
        paging.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    except PagesShort:
        return None
    finally:
        paging.close()
    raise AssertionError("a call read again suspended on pages that never do")
