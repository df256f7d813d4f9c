"""The ETF commands' rigs: the CLI with its producer faked (`Commands`), the simulator with a
writer process for a module's story (`Harness`, `running`), and the simulator restarted at
each moment of a story (`Story`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import create_engine, insert, text
from typer.testing import CliRunner

import workers.etf.daily as daily
import workers.etf.holdings as holdings
from bus.events import EtfListing, Event
from harness.sim.market import KST, Market
from harness.sim.server import SimConfig
from observer.calendar.trading import TradingCalendar
from observer.db.models import Base, Etf
from tests.support import SimThread, WriterProcess, db_rows
from workers.etf import cli
from workers.etf.cli import app

CALENDAR = TradingCalendar()

AFTER_CLOSE = "2026-11-20T16:10:00+09:00@1x"  # a Friday: its session is the one to collect
IN_SESSION = "2026-11-20T10:00:00+09:00@1x"
SYMBOLS = ["069500", "102110", "114800"]


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """A faked job's summary: one ETF listed, none failed (the command exits 0)."""

    date: str
    listed: int = 1
    failures: int = 0
    failed_over_limit: bool = False


class Producer:
    """What a job sends, kept."""

    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        self.sent.append(event)


class Commands:
    """The CLI with a config of its own, its producer faked, and the work recorded (or run)."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_work: bool = True
    ) -> None:
        self.config = tmp_path / "observer.toml"
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.config.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{tmp_path / "run"}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\ntoken_dir = "{tmp_path / "tokens"}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 20\n'
            f'[krx]\ncredentials_file = "{tmp_path / "absent.toml"}"\n'  # no KRX login
        )
        self.producer = Producer()
        self.ran: list[tuple[str, date]] = []

        @contextmanager
        def job_producer(*args: Any) -> Iterator[Producer]:
            yield self.producer

        def run_daily(settings: Any, clock: Any, day: date, *args: Any) -> Summary:
            self.ran.append(("daily", day))
            return Summary(date=day.isoformat())

        def run_holdings(settings: Any, clock: Any, day: date, *args: Any) -> Summary:
            self.ran.append(("holdings", day))
            return Summary(date=day.isoformat())

        monkeypatch.setattr(cli, "job_producer", job_producer)
        if fake_work:  # else the jobs run, on what the test fakes below them
            monkeypatch.setattr(daily, "run_daily", run_daily)
            monkeypatch.setattr(holdings, "run_holdings", run_holdings)

    def etf(self, clock: str, *args: str) -> Any:
        env = {"OBSERVER_CLOCK": clock, "OBSERVER_CONFIG": "", "OBSERVER_KRX_ID": None}
        env |= {"OBSERVER_KRX_PW": None}
        return CliRunner().invoke(cli.app, [*args, "--config", str(self.config)], env=env)


@pytest.fixture
def etf_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Commands]:
    """`Commands` (``fake_work``: the jobs recorded, not run; ``held``: the ETF tables made,
    with SYMBOLS held)."""

    def make(*, fake_work: bool = True, held: bool = False) -> Commands:
        made = Commands(tmp_path, monkeypatch, fake_work)
        if held:
            engine = create_engine(made.url)
            Base.metadata.create_all(engine)
            fields = [f for f in EtfListing.__struct_fields__ if f in Etf.__table__.columns]
            with engine.begin() as conn:
                for symbol in SYMBOLS:
                    listing = EtfListing(change="new", symbol=symbol, listed_on=date(2020, 1, 2))
                    values = {f: getattr(listing, f) for f in fields}
                    values |= {"active": True, "listed_ns": 0, "updated_ns": 0}
                    conn.execute(insert(Etf).values(**values))
            engine.dispose()
        return made

    return make


@pytest.fixture
def commands(etf_commands: Callable[..., Commands]) -> Commands:
    return etf_commands()


MARKET = Market(17, CALENDAR, stocks=40, etfs=24)
ETFS = sorted(s for s, x in MARKET.listings.items() if x.group == "EF")
START = datetime(2026, 11, 20, 16, 10, tzinfo=KST)  # a Friday, after the close
DAY, YESTERDAY = "2026-11-20", "2026-11-19"
GONE, LATE = ETFS[3], ETFS[7]  # delisted later; listed only later


class Harness:
    """A writer and a configuration for ``observer etf`` on the simulator and its KRX portal."""

    def __init__(self, tmp_path: Path, sim: SimThread, tokens: Path) -> None:
        self.sim = sim.sim
        self.env = {
            "OBSERVER_CLOCK": sim.sim.clock.spec,
            "OBSERVER_KRX_ID": "observer01",
            "OBSERVER_KRX_PW": "krx-pass-Secret-7781",
        }
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url)
        self.config = tmp_path / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{tmp_path / "data"}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tokens}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 150\n'
            '[[kis.accounts]]\nalias = "acct2"\nrest_per_second = 150\n'
            "[krx]\ncalls_per_second = 50.0\nbackoff_s = 0.01\n"
        )

    def etf(self, *args: str, code: int = 0) -> dict[str, Any]:
        result = CliRunner().invoke(app, [*args, "--config", str(self.config)], env=self.env)
        assert result.exit_code == code, result.output
        # The JSON is stdout's; ``output`` also holds the log lines of stderr, one of which
        # can come after it (a warning of the reader pool on a loaded machine).
        lines = result.stdout.strip().splitlines() or [""]
        parsed = json.loads(lines[-1]) if lines[-1].startswith("{") else {}
        return {**parsed, "out": result.output}

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.url, sql)

    def alerts(self, code: str) -> list[Any]:
        """The alerts of ``code``, oldest first."""
        return self.rows(
            "SELECT severity, subject, message FROM alerts "
            f"WHERE code = '{code}' ORDER BY produced_ns, source, seq"
        )

    def stored(self) -> dict[str, list[Any]]:
        """What the writer holds of the bus: for a failure to say why an alert is missing."""
        return {
            "alerts": self.rows("SELECT source, seq, code FROM alerts"),
            "marks": self.rows("SELECT source, seq FROM bus_offsets"),
            "conflicts": self.rows("SELECT source, seq, event_type FROM bus_conflicts"),
            "rejected": self.rows("SELECT source, seq, reason FROM rejected_events"),
        }

    def resolved(self, code: str) -> int:
        return len(self.rows(f"SELECT 1 FROM alert_resolutions WHERE code = '{code}'"))

    def good_rows(self, day: str) -> list[Any]:
        """The newest row per ETF of ``day`` that has a NAV (what a fault must never lose)."""
        return self.rows(
            "SELECT symbol, nav, close FROM etf_daily d WHERE trade_date = '" + day + "' AND "
            "nav IS NOT NULL AND seq = (SELECT MAX(seq) FROM etf_daily e WHERE "
            "e.symbol = d.symbol AND e.trade_date = d.trade_date) ORDER BY symbol"
        )


@contextmanager
def running(factory: pytest.TempPathFactory, config: SimConfig) -> Iterator[Harness]:
    """The simulator (``config``) and a writer process, for a module's story."""
    sim = SimThread(MARKET, START, config)
    h = Harness(factory.mktemp("etf"), sim, factory.mktemp("tokens"))
    h.writer.start()
    try:
        yield h
    finally:
        h.writer.kill()
        sim.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running(tmp_path_factory, SimConfig(calls_per_second=400)) as h:
        yield h


class Story:
    """A writer process, and the simulator (re)started at each moment of the story."""

    def __init__(self, tmp_path: Path, *, etfs: int = 6, backfill_sessions: int = 60) -> None:
        self.market = Market(17, CALENDAR, stocks=20, etfs=etfs)
        self.etfs = sorted(s for s, x in self.market.listings.items() if x.group == "EF")
        self.tmp = tmp_path
        self.url = f"sqlite:///{tmp_path / 'observer.db'}"
        self.writer = WriterProcess(tmp_path, self.url)
        self.writer.start()
        self.tokens = tmp_path / "tokens"
        self.tokens.mkdir()
        self.backfill_sessions = backfill_sessions
        self.sim: SimThread | None = None

    def at(self, year: int, month: int, day: int, hour: int, minute: int, **faults: Any) -> None:
        """The simulator with its clock at that moment (KST), with these faults."""
        if self.sim is not None:
            self.sim.close()
        self.sim = SimThread(
            self.market,
            datetime(year, month, day, hour, minute, tzinfo=KST),
            SimConfig(calls_per_second=400),
        )
        for name, value in faults.items():
            setattr(self.sim.sim.faults, name, value)
        self.config = self.tmp / "observer.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{self.tmp / "data"}"\nrun_dir = "{self.writer.run_dir}"\n'
            f'[database]\nurl = "{self.url}"\n'
            f'[kis]\nenvironment = "sim"\nsim_url = "{self.sim.url}"\n'
            f'token_dir = "{self.tokens}"\n'
            '[[kis.accounts]]\nalias = "acct1"\nrest_per_second = 150\n'
            "[krx]\ncalls_per_second = 50.0\nbackoff_s = 0.01\n"
            f"[etf]\nbackfill_sessions = {self.backfill_sessions}\n"
            # The stories' 2026-11-19 closes at 15:30 (it was the CSAT day, closed at 16:30)
            "[calendar]\nlate_days = []\n"
        )

    def etf(self, *args: str, code: int = 0) -> dict[str, Any]:
        """``observer etf ARGS``: its exit code checked, its last JSON line (or its output)."""
        assert self.sim is not None
        env = {
            "OBSERVER_CLOCK": self.sim.sim.clock.spec,
            "OBSERVER_KRX_ID": "observer01",
            "OBSERVER_KRX_PW": "krx-pass-Secret-7781",
        }
        result = CliRunner().invoke(app, [*args, "--config", str(self.config)], env=env)
        assert result.exit_code == code, result.output
        lines = [x for x in result.output.strip().splitlines() if x.startswith("{")]
        return json.loads(lines[-1]) if lines else {"out": result.output}

    def rows(self, sql: str) -> list[Any]:
        return db_rows(self.url, sql)

    def open_subjects(self, code: str) -> list[str]:
        """The subjects of ``code``'s open alerts (raised, and not resolved after)."""
        return sorted(
            {
                s
                for (s,) in self.rows(
                    "SELECT a.subject FROM alerts a WHERE a.code = '" + code + "' AND NOT "
                    "EXISTS (SELECT 1 FROM alert_resolutions r WHERE r.code = a.code AND "
                    "r.subject = a.subject AND r.produced_ns > a.produced_ns)"
                )
            }
        )

    def raised(self, code: str) -> list[str]:
        return [s for (s,) in self.rows(f"SELECT subject FROM alerts WHERE code = '{code}'")]

    def resolved(self, code: str) -> list[str]:
        sql = f"SELECT subject FROM alert_resolutions WHERE code = '{code}'"
        return [s for (s,) in self.rows(sql)]

    def masters_hold_the_etfs(self) -> None:
        """What the master-file job keeps: the KIS masters' ETFs (group EF), active."""
        engine = create_engine(self.url)
        now = time.time_ns()
        with engine.begin() as conn:
            for symbol in self.etfs:
                conn.execute(
                    text(
                        "INSERT INTO instruments (market, symbol, name, name_en, exchange, "
                        "currency, security_type, sector_code, region, active, listed_ns, "
                        "updated_ns) VALUES ('KRX', :s, :n, '', 'KOSPI', 'KRW', 'etf', '', "
                        "'KR', 1, :t, :t)"
                    ),
                    {"s": symbol, "n": self.market.listings[symbol].name, "t": now},
                )
        engine.dispose()

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()
        self.writer.kill()


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Story]:
    s = Story(tmp_path)
    yield s
    s.close()
