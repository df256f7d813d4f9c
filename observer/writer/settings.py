"""``[writer]``: the writer loop's batching, retries and limits."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from observer.setting_types import Positive, Seconds, Strict

__all__ = ["WriterSettings"]


class WriterSettings(Strict, frozen=True):
    """Writer loop tuning."""

    batch_events: Positive = 20_000
    batch_delay_ms: Annotated[int, Meta(ge=0)] = 5
    retry_max_s: Seconds = 10.0
    drain_s: Seconds = 5.0
    migrate_on_start: bool = True
    # Distinct sources the writer tracks (marks, ack routes): a frame from a source beyond
    # them is refused, so a peer inventing names cannot grow the writer's memory.
    max_sources: Positive = 1000
