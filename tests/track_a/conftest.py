"""Track A against the simulator: its market and day, a configuration, and `Session` (a writer,
the simulator and ``observer track-a run`` on one clock).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bus.events import UniverseMember, UniverseSnapshot
from bus.producer import Producer
from harness.sim.market import Market
from harness.sim.server import SimConfig
from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.calendar.settings import CalendarSettings, LateDay, PhaseSettings
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from tests.support import ROOT, SimThread, WriterProcess, db_rows

CALENDAR = TradingCalendar()
MARKET = Market(13, CALENDAR, stocks=300, etfs=30)
DAY = date(2026, 11, 20)  # a Friday session
NINE = datetime(2026, 11, 20, 9, 0, tzinfo=KST)
NS = 1_000_000_000
LATE = 3  # calls of one second that may arrive in the next on a loaded machine
NEXTRADE = MARKET.nxt_eligible(DAY)  # the names Nextrade trades on DAY
STOCKS = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)
FIRST = date(2027, 1, 4)  # the year's first session: 10:00-15:30
TIMELINE = timeline_from(
    PhaseSettings(),
    CalendarSettings(
        late_days=(
            LateDay(day=date(2026, 11, 19), minutes=60),
            LateDay(day=FIRST, minutes=60, close_minutes=0),
        )
    ),
)


def at(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), tzinfo=KST)


def write_config(
    path: Path,
    sim_url: str,
    tokens: Path,
    extra: str = "",
    accounts: int = 2,
    rate: int = 100,
    track_a: str = "nextrade = false\n",
) -> Path:
    """A configuration on the simulator; ``track_a``: its ``[track_a]`` lines (KRX's cycles
    alone unless they say otherwise)."""
    path.write_text(
        f'[paths]\ndata_dir = "{path.parent / "data"}"\nrun_dir = "{path.parent / "run"}"\n'
        f'[database]\nurl = "sqlite:///{path.parent / "observer.db"}"\n'
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim_url}"\ntoken_dir = "{tokens}"\n'
        + "".join(
            f'[[kis.accounts]]\nalias = "acct{n}"\nrest_per_second = {rate}\n'
            for n in range(1, accounts + 1)
        )
        + f"[track_a]\n{track_a}"
        + extra
    )
    return path


class Session:
    """A writer, a simulator at ``speed`` and ``observer track-a run`` on the same clock."""

    def __init__(
        self,
        tmp: Path,
        start: datetime,
        speed: float,
        extra: str = "",
        changes: tuple[tuple[datetime, float], ...] = (),
        track_a: str = "nextrade = false\n",
        **accounts: int,
    ) -> None:
        self.url = f"sqlite:///{tmp / 'observer.db'}"
        self.writer = WriterProcess(tmp, self.url).start()  # before the clock starts
        config = SimConfig(calls_per_second=100)
        self.sim = SimThread(MARKET, start, config, speed=speed, changes=changes)
        self.config = write_config(
            tmp / "observer.toml", self.sim.url, tmp / "tokens", extra, track_a=track_a, **accounts
        )
        self.log = tmp / "track_a.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp = tmp

    @property
    def clock(self) -> SimulatedClock:
        clock = self.sim.sim.clock
        assert isinstance(clock, SimulatedClock)
        return clock

    def publish_universe(self, symbols: list[str], nextrade: bool = True) -> None:
        """``DAY``'s universe of ``symbols``; ``nextrade``: which Nextrade trades is known."""
        members = tuple(
            UniverseMember(
                symbol=s,
                market=MARKET.listings[s].market,
                rank=n,
                prev_close=5000,
                market_cap=10**12 - n,
                nxt_eligible=s in NEXTRADE if nextrade else None,
                nxt_halted=False if nextrade else None,
            )
            for n, s in enumerate(symbols, start=1)
        )
        event = UniverseSnapshot(
            trade_date=DAY, based_on=date(2026, 11, 19), min_prev_close=4000, members=members
        )
        with Producer("universe", self.writer.ingest, self.tmp / "outbox-universe") as producer:
            producer.send(event)
            assert producer.wait_acked(30)

    def start(self) -> None:
        env = {**os.environ, "OBSERVER_CLOCK": self.clock.spec}
        args = [sys.executable, "-m", "observer", "track-a", "run", "--config", str(self.config)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT, env=env)

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.url, sql, until_schema=True)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.writer.kill()
        self.sim.close()
