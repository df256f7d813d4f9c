"""The simulator in its own process, for benchmarks (the client must not share its CPU)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from observer.calendar.clock import Clock, clock_from_spec
from observer.kis.settings import AccountSettings, KisSettings

__all__ = ["simulator_kis", "simulator_process"]


def simulator_kis(rest: str, token_dir: str, rate: int, accounts: int) -> KisSettings:
    """KIS settings for the simulator at ``rest``: ``accounts`` accounts of ``rate`` calls/s."""
    return KisSettings(
        environment="sim",
        sim_url=rest,
        token_dir=token_dir,
        accounts=tuple(
            AccountSettings(alias=f"bench{n}", rest_per_second=rate) for n in range(1, accounts + 1)
        ),
    )


@contextmanager
def simulator_process(
    calls_per_second: int,
    clock: str = "2026-11-20T10:00:00+09:00@1x",
    seed: int = 1,
    fallback_per_second: float = 1.0,
) -> Iterator[tuple[str, Clock]]:
    """Run ``observer sim`` on a free port; yield its REST URL and the clock it runs on.

    ``fallback_per_second``: the fallback sector source's sustained limit per client.
    """
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observer",
            "sim",
            "--seed",
            str(seed),
            "--clock",
            clock,
            "--calls-per-second",
            str(calls_per_second),
            "--fallback-per-second",
            str(fallback_per_second),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = simulator.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("observer sim ready"):
            raise RuntimeError(f"simulator did not start: {line!r}")
        rest = line.split()[3].removeprefix("rest=")
        yield rest, clock_from_spec(line.split()[-1].removeprefix("clock="))
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(30)
        simulator.stdout.close()  # type: ignore[union-attr]
