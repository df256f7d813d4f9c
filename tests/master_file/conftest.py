"""The master-file worker against the real simulator (a module's, 06:00 KST) and a writer per
test. ``observer master-file`` runs in this process through typer; the writer is a process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from harness.sim.market import KST, Market
from observer.calendar.trading import TradingCalendar
from observer.db.engine import make_engine
from tests.support import SimThread, WriterProcess
from workers.master_file.cli import app
from workers.master_file.files import LocalFiles

MARKET = Market(11, TradingCalendar(), stocks=400, etfs=40)
START = datetime(2026, 11, 20, 6, 0, tzinfo=KST)


class Harness:
    """Simulator, writer and a config for ``observer master-file``."""

    def __init__(self, tmp_path: Path, sim: SimThread) -> None:
        self.sim = sim.sim
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url)
        self.config = tmp_path / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\n'
            "[master_file]\nretry_initial_s = 0.01\nack_timeout_s = 5\n"
        )
        self.files = LocalFiles(tmp_path / "data")
        self.engine = make_engine(self.url)

    def run(self, *args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, [*args, "--config", str(self.config)])
        assert result.exit_code == code, result.output
        return result.output

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def instruments(self, market: str) -> dict[str, tuple[str, bool]]:
        rows = self.rows("select symbol, name, active from instruments where market = :m", m=market)
        return {s: (n, bool(a)) for s, n, a in rows}

    def current_sha(self, name: str) -> str:
        return hashlib.sha256((self.files.root / "current" / name).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sim_thread() -> Iterator[SimThread]:
    with SimThread(MARKET, START) as sim:
        yield sim


@pytest.fixture
def harness(tmp_path: Path, sim_thread: SimThread) -> Iterator[Harness]:
    faults = sim_thread.sim.faults
    faults.delisted.clear()
    faults.renamed.clear()
    faults.new_listings = 0
    faults.master_damage.clear()
    h = Harness(tmp_path, sim_thread)
    h.writer.start()
    yield h
    h.writer.kill()
    h.engine.dispose()


def domestic(market: str) -> set[str]:
    return {s for s, x in MARKET.listings.items() if x.market == market}
