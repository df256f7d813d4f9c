"""The ETF health alerts end only when a judgement finds them cleared, for their session.

Each story runs the ETF commands (in this process, as `tests.etf.test_etf_jobs` does) against
the real simulator, restarted at each moment of the story with its clock there, and a real
writer process; what is checked is what the writer stored: the alerts raised, resolved
and open.

Before: the 16:10 daily run judged its session before ``stale_at`` (nothing judged) and
then resolved every health alert, so ``etf_stale`` of a day still missing closed and
``etf_coverage_low`` flapped daily; ``etf_list_missing`` was raised and resolved by the
same run; an empty universe (no list, no ETF in the masters) was 100 % covered and the
daily run exited 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from harness.sim.market import KST, Market
from harness.sim.server import SimConfig
from observer.calendar.trading import TradingCalendar
from tests.support import SimThread, WriterProcess, db_rows
from workers.etf.cli import app

CALENDAR = TradingCalendar()


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
    try:
        yield s
    finally:
        s.close()


def test_a_stale_session_stays_open_until_its_rows_are_filled(story: Story) -> None:
    """11-19's KIS calls all fail: stale at 17:00. The 11-20 16:10 run (not due, KIS still
    failing) resolved it; now only the run that fills 11-19 (asked again through KIS's
    series) ends it, and with it 11-19's ``etf_daily_failures``."""
    h, n = story, len(story.etfs)
    h.at(2026, 11, 18, 16, 10)
    h.etf("list", "--json")
    assert h.etf("daily", "--json")["collected"] == n
    h.at(2026, 11, 19, 16, 10, http_5xx=10**6)
    assert h.etf("daily", "--json", code=1)["failures"] == n
    h.at(2026, 11, 19, 17, 5)
    assert "2026-11-19: 0 of 6 collected STALE" in h.etf("check")["out"]
    assert len(h.open_subjects("etf_stale")) == 1
    h.at(2026, 11, 20, 16, 10, http_5xx=10**6)  # before stale_at: 11-20 is not judged
    h.etf("daily", "--json", code=1)
    assert h.resolved("etf_stale") == []  # it was: nothing judged, 11-19 still missing
    assert h.open_subjects("etf_stale") == ["2026-11-19"]  # the session it is about
    assert h.open_subjects("etf_daily_failures") == ["2026-11-19", "2026-11-20"]
    h.at(2026, 11, 20, 16, 20)
    filled = h.etf("daily", "--json")
    assert filled["failures"] == 0 and filled["backfilled_rows"] >= n  # 11-19 asked again
    day = "SELECT COUNT(DISTINCT symbol) FROM etf_daily WHERE trade_date = '2026-11-19'"
    assert h.rows(day) == [(n,)]
    assert h.open_subjects("etf_stale") == [] and h.resolved("etf_stale") == ["2026-11-19"]
    assert h.open_subjects("etf_daily_failures") == []
    h.at(2026, 11, 20, 17, 5)
    assert h.etf("check", "--date", "2026-11-19", "--json")["stale"] is False


def test_low_coverage_is_neither_resolved_nor_raised_again_until_it_clears(story: Story) -> None:
    """No KRX list (its login refused): issuer and fee unknown for every ETF. The alerts
    were resolved by each 16:10 run and raised again by each 17:00 check."""
    h = story
    h.masters_hold_the_etfs()
    h.at(2026, 11, 19, 16, 10, krx_password_change=True)
    h.etf("daily", "--json")
    h.at(2026, 11, 19, 17, 5, krx_password_change=True)
    h.etf("check")

    def fields() -> set[str]:
        return {s.split()[0] for s in h.open_subjects("etf_coverage_low")}

    assert {"issuer", "fee"} <= fields()
    h.at(2026, 11, 20, 16, 10, krx_password_change=True)
    h.etf("daily", "--json")
    assert h.resolved("etf_coverage_low") == []  # it was, by a run that judged nothing
    h.at(2026, 11, 20, 17, 5, krx_password_change=True)
    h.etf("check")
    assert {"issuer", "fee"} <= fields() and h.resolved("etf_coverage_low") == []
    low = {"issuer 2026-11-19", "fee 2026-11-19"}  # the session it was found on
    assert low <= set(h.open_subjects("etf_coverage_low"))
    # Still low on 11-20: the alert found on 11-19 stands for it (not raised again).
    raised = [s for s in h.raised("etf_coverage_low") if s.split()[0] in ("issuer", "fee")]
    assert sorted(raised) == sorted(low)
    # The list comes: a due judgement of a later session finds them known, and ends them.
    h.at(2026, 11, 20, 17, 10)
    assert h.etf("list", "--json")["applied"]
    h.etf("check")
    assert not low & set(h.open_subjects("etf_coverage_low"))
    assert sorted(h.resolved("etf_coverage_low")) == sorted(low)


def test_the_list_missing_stays_open_while_the_masters_stand_in(story: Story) -> None:
    h = story
    h.masters_hold_the_etfs()
    h.at(2026, 11, 20, 16, 10)
    assert h.etf("daily", "--json")["collected"] == len(h.etfs)
    assert h.open_subjects("etf_list_missing") == [""]
    assert h.resolved("etf_list_missing") == []  # it was resolved by the run that raised it
    h.at(2026, 11, 20, 16, 20)
    assert h.etf("list", "--json")["applied"]  # a list held: the alert is over
    assert h.open_subjects("etf_list_missing") == [] and h.resolved("etf_list_missing") == [""]


def test_an_empty_universe_is_stale_and_fails_the_daily_run(story: Story) -> None:
    """No list applied (KRX refuses the login) and no ETF in the masters: 0 active ETFs
    read as 100 % covered; the run exited 0 and nothing ever alerted."""
    h = story
    h.at(2026, 11, 20, 16, 10, krx_password_change=True)
    out = h.etf("daily", "--json", code=1)
    assert (out["listed"], out["stale"]) == (0, True)
    assert h.open_subjects("etf_stale") == ["2026-11-20"]
    h.at(2026, 11, 20, 17, 5, krx_password_change=True)
    status = h.etf("status", "--json", code=1)
    assert status["stale"] is True and status["active"] == 0
    assert status["coverage_pct"]["issuer"] == 0.0
