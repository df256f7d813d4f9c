"""Record ``spine.cap``: real producers through a real writer with its capture tee on.

Run from the repository root: ``python -m tests.captures.make_spine_capture``. The capture
holds every sample event (source ``samples``, one frame each) and 2,000 trade ticks from two
sources, in the writer's commit order.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bus.producer import Producer
from harness.loadgen import synthetic_tick
from tests.samples import SAMPLES, T0
from tests.support import WriterProcess

HERE = Path(__file__).resolve().parent
TICKS_PER_SOURCE = 1_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        writer = WriterProcess(
            workdir, f"sqlite:///{workdir / 'live.db'}", capture=workdir / "spine.cap"
        ).start()
        try:
            samples = Producer("samples", writer.ingest, workdir / "ob-samples", batch_events=1)
            for event in SAMPLES:
                samples.send(event)
            ticks = [
                Producer(f"ticks-{i}", writer.ingest, workdir / f"ob-ticks-{i}") for i in (1, 2)
            ]
            for n in range(TICKS_PER_SOURCE):
                for producer in ticks:
                    producer.send(synthetic_tick(n, T0 + n))
            for producer in (samples, *ticks):
                assert producer.close(drain_timeout=30), producer
        finally:
            assert writer.terminate() == 0
        shutil.copy(workdir / "spine.cap", HERE / "spine.cap")
    print(f"wrote {HERE / 'spine.cap'} at {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
