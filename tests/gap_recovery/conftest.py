"""Gap recovery's daemon as a process: a writer, the simulator at 10:30 (1x) and
``observer gap-recovery run`` on the simulator's clock.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from tests.support import (
    SimThread,
    WriterProcess,
    sim_accounts_config,
    start_on_sim_clock,
    wait_until,
)

HALF_TEN = datetime(2026, 11, 20, 10, 30, tzinfo=KST)
MARKET = Market(23, TradingCalendar(), stocks=120, etfs=5)
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)


class Rig:
    """A writer, the simulator at 10:30 (1x) and ``observer gap-recovery run`` on its clock.

    ``tables``: more of the configuration, after the accounts.
    """

    def __init__(self, tmp_path: Path, tables: str = "") -> None:
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url).start()
        self.sim = SimThread(MARKET, HALF_TEN, speed=1.0)
        # 15 calls/s each for gap recovery, within the simulator's 20/s per app key.
        self.config = sim_accounts_config(
            tmp_path, self.sim, self.writer, tables, account="rest_per_second = 60\n"
        )
        self.log = tmp_path / "gaps.log"
        self.outbox = tmp_path / "outbox"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """``observer gap-recovery run``, once it is ready."""
        log = self.log
        ready = log.read_text().count("gap recovery ready") if log.exists() else 0
        args = ["gap-recovery", "run", "--config", str(self.config)]
        proc = self.proc = start_on_sim_clock(args, self.sim, log)
        wait_until(
            lambda: log.read_text().count("gap recovery ready") > ready or proc.poll() is not None,
            60,
            "gap recovery ready",
        )
        assert proc.poll() is None, log.read_text()

    def close(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                assert self.proc.wait(30) == 0
        finally:
            self.sim.close()
            self.writer.kill()


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Rigs (``tables``: more of the configuration); each closed at teardown."""
    made: list[Rig] = []

    def make(tables: str = "") -> Rig:
        made.append(Rig(tmp_path, tables))
        return made[-1]

    yield make
    for rig in made:
        rig.close()


@pytest.fixture
def rig(rigs: Callable[..., Rig]) -> Rig:
    return rigs()
