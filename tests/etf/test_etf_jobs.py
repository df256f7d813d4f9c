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
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

import workers.etf.backfill as backfill
import workers.etf.collect as collect
from bus.events import AlertResolved, EtfListing
from harness.sim.market import KST
from observer.db.models import AlertRow, Base, Etf
from observer.errors import KisApiError
from observer.kis.schemas import DailyBarRow, EtfNavDailyRow, EtfPriceOutput
from tests.etf.conftest import (
    CALENDAR,
    DAY,
    ETFS,
    GONE,
    LATE,
    YESTERDAY,
    Commands,
    Harness,
    Summary,
)


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
    # The day's pending NAVs, and the 19 sessions before it whose series rows (the first
    # load's) lack the net assets KRX's table has.
    assert repaired["repaired_rows"] == 20 * (len(ETFS) - 1) and repaired["krx_calls"] >= 20
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


def test_kis_refusing_a_runs_calls_as_over_the_rate_is_alerted_and_a_clean_run_ends_it(
    harness: Harness,
) -> None:
    """KIS answering 10 of a daily run's calls with EGW00201 (over the rate limit): every ETF
    still collected (refused calls retried at a slower pace), the accounts KIS refused too
    often alerted; the next run, refused nothing, ends those alerts."""
    h = harness
    before = h.sim.rate_limited
    h.sim.faults.rate_limited = 10
    got = h.etf("daily", "--date", DAY, "--json")
    assert got["failures"] == 0 and got["collected"] == len(ETFS) - 1
    assert h.sim.rate_limited - before == 10
    raised = h.alerts("kis_rate_limited")
    assert raised and {subject for _, subject, _ in raised} <= {"acct1", "acct2"}, raised
    assert all(
        severity == "warning" and "of etf_daily's" in message and "(150/s)" in message
        for severity, _, message in raised
    ), raised
    h.etf("daily", "--date", DAY, "--json")
    assert h.sim.rate_limited - before == 10 and h.resolved("kis_rate_limited") == len(raised)


@pytest.mark.parametrize(
    ("job", "krx_failing"), [("holdings", 0), ("backfill", 1000)], ids=["holdings", "backfill"]
)
def test_the_weekly_jobs_alert_kis_refusing_their_calls_and_a_clean_run_ends_it(
    harness: Harness, job: str, krx_failing: int
) -> None:
    """The holdings and repair jobs judge KIS's EGW00201 answers as the daily run does: 10 of
    a run's calls refused (each retried: nothing fails), the accounts refused too often
    alerted as the job's; the next run, refused nothing, ends those alerts. The repair asks
    KIS's series only where KRX's tables fail (here every call to them)."""
    h = harness
    earlier, ended = len(h.alerts("kis_rate_limited")), h.resolved("kis_rate_limited")
    h.sim.faults.krx_5xx = krx_failing
    try:
        h.sim.faults.rate_limited = 10
        got = h.etf(job, "--date", DAY, "--json")
        assert got["failures"] == 0 and h.sim.faults.rate_limited == 0
        raised = h.alerts("kis_rate_limited")[earlier:]
        assert raised and {subject for _, subject, _ in raised} <= {"acct1", "acct2"}, raised
        assert all(f"of etf_{job}'s" in message for _, _, message in raised), raised
        h.etf(job, "--date", DAY, "--json")
    finally:
        h.sim.faults.krx_5xx = 0
    assert h.resolved("kis_rate_limited") - ended == len(raised)


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
    resolved = h.resolved("etf_stale")
    checked = h.etf("check", "--date", old)
    stale_alerts = h.alerts("etf_stale")
    assert stale_alerts, (checked, h.stored())
    severity, subject, message = stale_alerts[-1]
    assert severity == "critical" and f"0 of {len(ETFS) - 1} active ETFs" in message
    assert subject == old  # the session: judging another one cannot end it
    fine = h.etf("check", "--date", DAY, "--json")  # a collected day: not the stale one's
    assert fine["stale"] is False and fine["session"] == DAY
    assert h.resolved("etf_stale") == resolved  # the old day still has no row


AFTER_CLOSE = "2026-11-20T16:10:00+09:00@1x"
BEFORE_OPEN = "2026-11-20T08:00:00+09:00@1x"
IN_SESSION = "2026-11-20T10:30:00+09:00@1x"


def test_the_repair_never_reads_a_session_not_yet_closed(
    etf_commands: Callable[..., Commands], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10:30 `backfill` stored today's prices so far as the day's final row."""
    commands = etf_commands(fake_work=False)
    ran: list[date] = []

    def run_repair(settings: Any, clock: Any, day: date, *args: Any) -> Summary:
        ran.append(day)
        return Summary(date=day.isoformat())

    monkeypatch.setattr(backfill, "run_repair", run_repair)
    for clock, args in (
        (IN_SESSION, []),
        (IN_SESSION, ["--date", "2026-11-19"]),  # as `daily`: not while a session trades
        (AFTER_CLOSE, ["--date", "2026-11-23"]),  # a session not yet traded
        (BEFORE_OPEN, ["--date", DAY]),  # today's, before its opening
    ):
        result = commands.etf(clock, "backfill", *args)
        assert result.exit_code == 2 and ran == [], (clock, args, result.output)
        said = [x for x in result.output.splitlines() if x.startswith("observer etf: ")]
        assert len(said) == 1 and ("session is under way" in said[0]) == (clock == IN_SESSION)
    for clock, args in ((AFTER_CLOSE, []), (BEFORE_OPEN, []), (AFTER_CLOSE, ["--date", YESTERDAY])):
        assert commands.etf(clock, "backfill", *args).exit_code == 0
    assert ran == [date(2026, 11, 20), date(2026, 11, 19), date(2026, 11, 19)]


class Quotes:
    """KIS accounts whose quote fails for ``failing`` and has no NAV yet for ``pending``."""

    alias = "acct1"
    rate_limited = 0  # its EGW00201 is raised, not counted: KIS's pace is not this test's

    def __init__(self, failing: str, pending: str) -> None:
        self.failing, self.pending, self.requests = failing, pending, 0

    @property
    def client(self) -> Quotes:
        return self

    async def aclose(self) -> None:
        pass

    async def etf_price(self, symbol: str) -> EtfPriceOutput:
        self.requests += 1
        if symbol == self.failing:
            raise KisApiError("EGW00201", "초당 거래건수를 초과하였습니다.", "FHPST02400000", 500)
        nav = "0" if symbol == self.pending else "40010.00"
        return EtfPriceOutput(stck_prpr="40000", nav=nav, dprt="-0.02", lstn_stcn="1000")

    async def etf_nav_daily(self, symbol: str, start: str, end: str) -> list[EtfNavDailyRow]:
        return []

    async def daily_chart(self, symbol: str, start: str, end: str) -> list[DailyBarRow]:
        return []


def test_a_daily_run_resolves_only_the_flags_of_etfs_it_judged(
    etf_commands: Callable[..., Commands], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ETF whose quote failed, or whose NAV is not out, is not judged: its flags stay
    open (they were resolved, and raised again by the next run: alerts flapped)."""
    commands = etf_commands(fake_work=False)
    failing, pending, judged = "069500", "102110", "114800"
    engine = create_engine(commands.url)
    Base.metadata.create_all(engine)
    at = int(datetime(2026, 11, 20, 9, 0, tzinfo=KST).timestamp() * 10**9)
    with engine.begin() as conn:
        seq = 0
        for symbol in (failing, pending, judged):
            listing = EtfListing(change="new", symbol=symbol, listed_on=date(2020, 1, 2))
            fields = [f for f in EtfListing.__struct_fields__ if f in Etf.__table__.columns]
            values = {f: getattr(listing, f) for f in fields}
            conn.execute(insert(Etf).values(**values, active=True, listed_ns=0, updated_ns=0))
            for code in ("etf_premium_high", "etf_aum_mismatch"):
                seq += 1
                alert = {"severity": "warning", "code": code, "message": "m", "context": {}}
                row = {"source": "etf", "seq": seq, "produced_ns": at}
                conn.execute(insert(AlertRow).values(**alert, **row, subject=symbol))
    engine.dispose()
    accounts = Quotes(failing, pending)
    monkeypatch.setattr(collect, "rate_limits", lambda settings, share: None)
    monkeypatch.setattr(collect, "open_account", lambda *args, **options: accounts)
    result = commands.etf(AFTER_CLOSE, "daily", "--json")
    assert result.exit_code == 1, result.output  # one of three failed: over the 5 %
    out = json.loads(result.output.strip().splitlines()[-2])
    assert (out["failures"], out["nav_pending"], out["details"]) == (1, 1, 1)
    over = {(e.code, e.subject) for e in commands.producer.sent if isinstance(e, AlertResolved)}
    flagged = {(c, s) for c, s in over if c in ("etf_premium_high", "etf_aum_mismatch")}
    assert flagged == {("etf_premium_high", judged), ("etf_aum_mismatch", judged)}
