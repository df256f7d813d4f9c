"""The ETF jobs against the real simulator (KIS and the KRX portal) and a real writer process.

One story, in order: the list, a first load with its backfill before the day's NAV is out,
the repair and a normal rerun, then each fault (a rerun finding no NAV over the day's final
rows, LOGOUT mid-run, an empty KRX table, a 5xx storm, an empty list, an ETF delisted and
one listed). After every step yesterday's good rows are still there, and every fault left
an alert.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from harness.sim.market import KST, Market
from harness.sim.server import SimConfig
from observer.trading_calendar import TradingCalendar
from tests.support import SimThread, WriterProcess, db_rows
from workers.etf.cli import app

CALENDAR = TradingCalendar()
MARKET = Market(17, CALENDAR, stocks=40, etfs=24)
ETFS = sorted(s for s, x in MARKET.listings.items() if x.group == "EF")
START = datetime(2026, 11, 20, 16, 10, tzinfo=KST)  # a Friday, after the close
DAY, YESTERDAY = "2026-11-20", "2026-11-19"
GONE, LATE = ETFS[3], ETFS[7]  # delisted later; listed only later


class Harness:
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
        last = result.output.strip().splitlines()[-1]
        return json.loads(last) if last.startswith("{") else {"out": result.output}

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


def test_the_list_then_a_first_load_with_its_backfill(harness: Harness) -> None:
    h = harness
    h.sim.faults.delisted = {LATE}  # listed later (test_a_delisted_etf_and_a_new_one)
    listed = h.etf("list", "--json")
    assert listed["applied"] and listed["new"] == len(ETFS) - 1 and listed["dropped"] == 0
    h.sim.faults.etf_nav_late_until = "23:00"  # the day's NAV is not out yet: repaired next
    try:
        first = h.etf("daily", "--date", DAY, "--json")
    finally:
        h.sim.faults.etf_nav_late_until = None
    assert first["collected"] == len(ETFS) - 1 and first["failures"] == 0
    assert first["krx_rows"] == len(ETFS) - 1 and first["krx_error"] == ""
    # 250 sessions: three pages of 100 rows per ETF, on top of its quote, and three pages
    # of the daily chart for the 52 weeks' highs and lows.
    assert first["kis_calls"] == 7 * (len(ETFS) - 1)
    assert first["backfilled_rows"] == 249 * (len(ETFS) - 1)
    assert first["nav_pending"] == len(ETFS) - 1 and first["details"] == 0
    assert h.alerts("etf_nav_pending")
    assert h.good_rows(DAY) == [] and len(h.good_rows(YESTERDAY)) == len(ETFS) - 1


def test_the_pending_navs_repaired_then_a_normal_rerun(harness: Harness) -> None:
    h = harness
    before = h.good_rows(YESTERDAY)
    repaired = h.etf("backfill", "--date", DAY, "--json")
    assert repaired["repaired_rows"] == len(ETFS) - 1 and repaired["krx_calls"] >= 20
    assert repaired["kis_calls"] == 0  # KRX's table: one call a day for every ETF
    assert len(h.good_rows(DAY)) == len(ETFS) - 1 and h.good_rows(YESTERDAY) == before
    again = h.etf("daily", "--date", DAY, "--json")
    assert again["backfilled_rows"] == 0 and again["kis_calls"] == len(ETFS) - 1
    # A login (three steps, one more with skipDup: the last run's session is alive) and one
    # table for every ETF.
    assert again["krx_calls"] <= 5
    assert again["nav_pending"] == 0 and again["premium_mismatch"] == 0
    assert not again["stale"] and again["details"] == len(ETFS) - 1
    assert h.resolved("etf_nav_pending") == 1
    detail = h.rows(
        "SELECT n_20d, tracking_20d, premium_abs_250d, n_250d, high_52w, range_52w_basis, "
        f"aum_source, aum_check_pct FROM etf_details WHERE symbol = '{ETFS[0]}'"
    )[0]
    assert detail[0] == 20 and detail[1] is not None and detail[2] is not None
    assert detail[3] == 250 and detail[4] > 0 and detail[5] == "high_low"
    assert detail[6] == "kis" and float(detail[7]) < 2.0
    status = h.etf("status", "--date", DAY, "--json")
    assert status["stale"] is False and status["coverage_pct"]["premium_20d"] == 100.0


def test_a_rerun_before_the_nav_is_out_keeps_the_days_final_rows(harness: Harness) -> None:
    """A same-day rerun (a restart, by hand) that finds no NAV never takes the day's away."""
    h = harness
    before = h.good_rows(DAY)
    count = f"SELECT COUNT(*) FROM etf_daily WHERE trade_date = '{DAY}'"
    rows = h.rows(count)
    h.sim.faults.etf_nav_late_until = "23:00"  # KIS's NAV "0", KRX's "-": neither fills it
    try:
        late = h.etf("daily", "--date", DAY, "--json")
    finally:
        h.sim.faults.etf_nav_late_until = None
    assert late["collected"] == len(ETFS) - 1 and late["nav_pending"] == 0
    assert late["details"] == len(ETFS) - 1  # from the stored rows
    assert h.good_rows(DAY) == before and h.rows(count) == rows  # none sent over them


def test_krx_logout_mid_run_keeps_the_kis_rows(harness: Harness) -> None:
    h = harness
    h.sim.faults.krx_logout = 2  # LOGOUT, a new login, LOGOUT again
    got = h.etf("daily", "--date", DAY, "--json")
    assert got["krx_error"].startswith("KrxLoggedOut") and got["collected"] == len(ETFS) - 1
    assert h.alerts("etf_krx_table_failed")
    assert len(h.good_rows(DAY)) == len(ETFS) - 1


def test_an_empty_krx_table_is_a_failed_one(harness: Harness) -> None:
    """KRX's ``{"output": []}`` (load shedding, a partial publish): alerted, KIS instead."""
    h = harness
    alerts = len(h.alerts("etf_krx_table_failed"))
    h.sim.faults.krx_empty = 1
    got = h.etf("daily", "--date", DAY, "--json")
    assert "is empty" in got["krx_error"] and got["krx_rows"] == 0
    assert got["collected"] == len(ETFS) - 1 and got["failures"] == 0
    assert len(h.alerts("etf_krx_table_failed")) == alerts + 1
    h.sim.faults.krx_empty = 1
    repaired = h.etf("backfill", "--date", DAY, "--json")
    assert "is empty" in repaired["krx_error"]
    assert repaired["kis_calls"] == len(ETFS) - 1  # KIS's series for every ETF instead
    assert len(h.alerts("etf_krx_table_failed")) == alerts + 2
    assert len(h.good_rows(DAY)) == len(ETFS) - 1


def test_a_5xx_storm_fails_the_run_and_keeps_yesterday(harness: Harness) -> None:
    h = harness
    before = h.good_rows(YESTERDAY), h.good_rows(DAY)
    h.sim.faults.http_5xx = 100_000
    try:
        out = h.etf("daily", "--date", DAY, "--json", code=1)
    finally:
        h.sim.faults.http_5xx = 0
    assert "ETFs failed" in out["out"]
    severity, _, message = h.alerts("etf_daily_failures")[-1]
    assert severity == "error" and "earlier rows are kept" in message
    assert (h.good_rows(YESTERDAY), h.good_rows(DAY)) == before
    assert h.etf("daily", "--date", DAY, "--json")["failures"] == 0
    assert h.resolved("etf_daily_failures") == 1


def test_an_empty_list_is_never_applied(harness: Harness) -> None:
    h = harness
    h.sim.faults.krx_empty = 1
    refused = h.etf("list", "--json")
    assert refused["applied"] is False and refused["listed"] == len(ETFS) - 1
    assert h.alerts("etf_list_refused")
    assert len(h.rows("SELECT 1 FROM etfs WHERE active")) == len(ETFS) - 1


def test_a_delisted_etf_and_a_new_one(harness: Harness) -> None:
    h = harness
    h.sim.faults.delisted = {GONE}  # LATE appears, GONE leaves
    changed = h.etf("list", "--json")
    assert changed["applied"] and (changed["new"], changed["removed"]) == (1, 1)
    got = h.etf("daily", "--date", DAY, "--json")
    assert got["collected"] == len(ETFS) - 1 and got["backfilled_rows"] == 249  # LATE's
    assert h.rows(f"SELECT COUNT(*) FROM etf_daily WHERE symbol = '{GONE}'")[0][0] > 249
    assert h.resolved("etf_list_refused") == 1
    h.sim.faults.delisted = set()


def test_the_report_sorts_and_writes_csv(harness: Harness, tmp_path: Path) -> None:
    out = tmp_path / "etfs.csv"
    table = harness.etf("report", "--date", DAY, "--sort", "aum", "--json", "--csv", str(out))
    aums = [row["aum"] for row in table["etfs"]]
    # Every ETF with a row on the day, the one delisted since too.
    assert len(aums) == len(ETFS) and aums == sorted(aums, reverse=True)
    with out.open() as f:
        assert len(list(csv.DictReader(f))) == len(aums)


def test_a_stale_day_exits_1_and_the_check_job_alerts(harness: Harness) -> None:
    h = harness
    old = CALENDAR.previous_session(date(2025, 10, 1)).isoformat()  # before any stored row
    stale = h.etf("status", "--date", old, "--json", code=1)
    assert stale["stale"] is True and stale["collected"] == 0
    resolved = h.resolved("etf_stale")  # the 5xx storm's day was stale too, then mended
    checked = h.etf("check", "--date", old)
    stale_alerts = h.alerts("etf_stale")
    assert stale_alerts, (checked, h.stored())
    severity, _, message = stale_alerts[-1]
    assert severity == "critical" and f"0 of {len(ETFS) - 1} active ETFs" in message
    h.etf("check", "--date", DAY)  # a collected day: the condition is over
    assert h.resolved("etf_stale") == resolved + 1
