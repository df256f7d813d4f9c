"""The universe job against the real simulator (a module's, 05:00 KST) and a writer per test.

``observer universe`` runs in this process through typer; its writer is its own process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.sim.market import KST, Market
from harness.sim.server import SimConfig
from observer.calendar.trading import TradingCalendar
from tests.support import SimThread, WriterProcess, db_rows
from workers.universe.cli import app

CALENDAR = TradingCalendar()
MARKET = Market(13, CALENDAR, stocks=300, etfs=30)
START = datetime(2026, 11, 20, 5, 0, tzinfo=KST)


class Harness:
    """A writer and a configuration for ``observer universe`` on a simulator."""

    def __init__(self, tmp_path: Path, sim: SimThread, tokens: Path) -> None:
        self.sim = sim.sim
        self.env = {"OBSERVER_CLOCK": sim.sim.clock.spec}  # token expiry is judged on it
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url)
        self.data = tmp_path / "data"
        self.master_url = f"{sim.url.rstrip('/')}/common/master/"
        self.config = tmp_path / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{self.data}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\n'
            f'token_dir = "{tokens}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 150\n'
            '[[kis.accounts]]\nalias = "acct2"\nrest_per_second = 150\n'
        )

    def build(self, day: str, code: int = 0) -> dict[str, Any]:
        args = ["build", "--date", day, "--json", "--config", str(self.config)]
        result = CliRunner().invoke(app, args, env=self.env)
        assert result.exit_code == code, result.output
        return json.loads(result.output.splitlines()[-1]) if code == 0 else {"out": result.output}

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.url, sql)


def expected(day: date) -> list[str]:
    """The day's members as the documented filter and market-cap order make them."""
    prev = CALENDAR.previous_session(day)
    members = [
        (-MARKET.close(s, prev) * x.listed_shares, s)
        for s, x in MARKET.listings.items()
        if x.group == "ST"
        and x.market in ("KOSPI", "KOSDAQ")
        and not x.suspended
        and not x.administrative
        and MARKET.close(s, prev) >= 4_000
    ]
    return [s for _, s in sorted(members)]


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    # KIS's per-app-key window, raised so the test is quick; still enforced (EGW00201).
    with SimThread(MARKET, START, SimConfig(calls_per_second=200)) as sim:
        yield sim


@pytest.fixture
def universe_jobs(tmp_path: Path, token_dir: Path) -> Iterator[Callable[..., Harness]]:
    """Harnesses on a simulator, its master damage cleared; their writers killed at teardown.

    ``tokens``: the token cache, the module's unless the simulator is another one.
    """
    made: list[Harness] = []

    def make(sim: SimThread, tokens: Path = token_dir) -> Harness:
        sim.sim.faults.master_damage.clear()
        h = Harness(tmp_path, sim, tokens)
        made.append(h)
        h.writer.start()
        return h

    yield make
    for h in made:
        h.writer.kill()


@pytest.fixture
def harness(universe_jobs: Callable[..., Harness], sim_thread: SimThread) -> Harness:
    return universe_jobs(sim_thread)
