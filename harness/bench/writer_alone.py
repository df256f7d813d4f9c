"""The writer's own path alone: decode and commit of ready frames in one process.

On a store host the producers run on other hosts, so what bounds the writer there is its
own path: `decode_parts` and `Store.apply`, as its loop calls them (the identity checks, the
digests, the rows and the commit of rows, digests and marks). This runs that path on
frames encoded beforehand, in batches of the writer's ``batch_events``, into a database at
the newest schema, for `observer bench bus` to set beside the raw store of the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from harness.loadgen import synthetic_tick
from observer.db.engine import make_engine
from observer.writer.service import WriterOptions
from observer.writer.store import Store

__all__ = ["WriterAlone", "writer_alone"]

_FRAME_EVENTS = 1000


@dataclass(frozen=True)
class WriterAlone:
    """Events per wall second and per CPU second of the writer's path alone."""

    per_s: float
    per_cpu_s: float


def writer_alone(url: str, events: int, sources: list[str], fsync: bool = True) -> WriterAlone:
    """Commit ``events`` ticks, split between ``sources``, through the writer's path."""
    now = time.time_ns()
    share = events // len(sources)
    by_source = [
        [
            encode_frame(
                [
                    Envelope(source, n + 1, now, synthetic_tick(n, now))
                    for n in range(start, min(start + _FRAME_EVENTS, share))
                ]
            )
            for start in range(0, share, _FRAME_EVENTS)
        ]
        for source in sources
    ]
    frames = [frame for turn in zip(*by_source, strict=True) for frame in turn]  # interleaved
    per_batch = max(1, WriterOptions().batch_events // _FRAME_EVENTS)
    engine = make_engine(url, durable=fsync)
    try:
        store = Store(engine)
        store.load_marks()
        started, cpu = time.perf_counter(), time.process_time()
        for first in range(0, len(frames), per_batch):
            store.apply([decode_parts(frame) for frame in frames[first : first + per_batch]])
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine.dispose()
    committed = share * len(sources)
    return WriterAlone(committed / elapsed, committed / cpu)
