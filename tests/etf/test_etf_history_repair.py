"""The daily run mends the stored history it finds short, and the documented forms work.

Against the real simulator and a real writer process (`tests.etf.conftest.Story`): a day
whose NAV is pending is asked again and resolved only once filled; missing sessions are
asked again and those left unfilled alerted; the repair fills the net assets a first load
lacks; ``etf check --json`` and ``etf report --date ''`` work.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import workers.etf.collect as collect
from bus.events import EtfDaily
from observer.kis.etf import from_series
from observer.kis.schemas import EtfNavDailyRow
from tests.etf.conftest import CALENDAR, Story
from workers.etf.cli import app

ROOT = Path(__file__).resolve().parents[2]


def with_nav(h: Story, day: str) -> int:
    """How many ETFs' newest row of ``day`` has a NAV."""
    return len(
        h.rows(
            "SELECT symbol FROM etf_daily d WHERE trade_date = '" + day + "' AND nav IS NOT "
            "NULL AND seq = (SELECT MAX(seq) FROM etf_daily e WHERE e.symbol = d.symbol AND "
            "e.trade_date = d.trade_date)"
        )
    )


def test_a_pending_nav_is_asked_again_and_resolved_only_once_filled(story: Story) -> None:
    h, n = story, len(story.etfs)
    h.at(2026, 11, 19, 16, 10, etf_nav_late_until="23:00")
    h.etf("list", "--json")
    assert h.etf("daily", "--json")["nav_pending"] == n
    assert len(h.open_subjects("etf_nav_pending")) == 1
    h.at(2026, 11, 19, 16, 40, etf_nav_late_until="23:00")  # a rerun: still not out
    h.etf("daily", "--json")
    assert len(h.open_subjects("etf_nav_pending")) == 1 and h.resolved("etf_nav_pending") == []
    h.at(2026, 11, 20, 16, 10)
    nxt = h.etf("daily", "--json")
    assert nxt["nav_pending"] == 0 and nxt["backfilled_rows"] >= n  # 11-19's NAVs asked
    assert with_nav(h, "2026-11-19") == n  # resolved with 11-19 still without its NAV
    assert h.open_subjects("etf_nav_pending") == []
    assert h.resolved("etf_nav_pending") == ["2026-11-19"]


def test_missing_sessions_are_asked_again_and_unfilled_ones_alerted(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job down for 9 sessions: 51 of 60 stored (85 %) was enough for the coverage rule,
    so they were never asked again, past the weekly repair's 20 sessions too."""
    h, n = story, len(story.etfs)
    h.at(2026, 10, 30, 16, 10)
    h.etf("list", "--json")
    h.etf("daily", "--json")
    lost = date(2026, 11, 5)  # KIS's series will not give this one
    series = from_series

    def without_lost(symbol: str, row: EtfNavDailyRow) -> EtfDaily | None:
        return None if row.stck_bsop_date == lost.strftime("%Y%m%d") else series(symbol, row)

    monkeypatch.setattr(collect, "from_series", without_lost)
    h.at(2026, 11, 13, 16, 10)
    out = h.etf("daily", "--json")
    assert out["backfill_asked"] == n and out["history_gaps"] == n  # each ETF's lost day
    gap = [d for d in CALENDAR.sessions_before(date(2026, 11, 13), 12) if d > date(2026, 10, 30)]
    stored = "SELECT COUNT(DISTINCT symbol || trade_date) FROM etf_daily WHERE trade_date = '{}'"
    for day in gap:
        assert h.rows(stored.format(day)) == [(0 if day == lost else n,)], day
    [message] = [m for (m,) in h.rows("SELECT message FROM alerts WHERE code = 'etf_history_gaps'")]
    assert f"{n} ETFs lack {n} stored sessions" in message and str(lost) in message
    # The repair (KRX's table of each of the 20 sessions) brings it: the next run's
    # judgement finds no gap and ends the alert.
    monkeypatch.setattr(collect, "from_series", series)
    h.at(2026, 11, 15, 21, 0)
    assert h.etf("backfill", "--json")["repaired_rows"] >= n
    h.at(2026, 11, 16, 16, 10)
    assert h.etf("daily", "--json")["history_gaps"] == 0
    assert h.open_subjects("etf_history_gaps") == [] and h.resolved("etf_history_gaps") == [""]
    detail = h.rows("SELECT n_20d FROM etf_details WHERE trade_date = '2026-11-16'")
    assert detail and all(row[0] == 20 for row in detail)


def test_the_repair_fills_the_net_assets_a_first_load_lacks(story: Story) -> None:
    h, n = story, len(story.etfs)
    h.at(2026, 11, 20, 16, 10)
    h.etf("list", "--json")
    h.etf("daily", "--json")
    sessions = CALENDAR.sessions_before(date(2026, 11, 21), 20)
    lacking = (
        f"SELECT COUNT(*) FROM etf_daily d WHERE trade_date >= '{sessions[0]}' AND "
        "net_assets_krw IS NULL AND seq = (SELECT MAX(seq) FROM etf_daily e WHERE "
        "e.symbol = d.symbol AND e.trade_date = d.trade_date)"
    )
    assert h.rows(lacking) == [(19 * n,)]  # the series rows: no net assets
    h.at(2026, 11, 22, 21, 0)
    assert h.etf("backfill", "--json")["repaired_rows"] == 19 * n
    assert h.rows(lacking) == [(0,)]


def test_the_documented_command_forms_work(story: Story) -> None:
    h = story
    h.at(2026, 11, 20, 17, 5)
    checked = h.etf("check", "--json")  # exit 2: no such option
    assert checked["session"] == "2026-11-20" and checked["stale"] is True  # nothing held
    result = CliRunner().invoke(app, ["report", "--date", "", "--config", str(h.config)])
    assert result.exit_code == 2, result.output  # it died with an AssertionError
    assert not isinstance(result.exception, AssertionError)
    assert "observer etf: --date: a session is required" in result.output
    # Each form the README's table documents is accepted.
    readme = (ROOT / "README.md").read_text()
    [row] = [line for line in readme.splitlines() if line.startswith("| `observer etf list")]
    forms = re.findall(r"`(?:observer )?etf ([a-z|\\]+)((?: \[[^]]+\])*)`", row.split(" | ")[0])
    assert forms, row
    for commands, options in forms:
        for command in commands.replace("\\", "").split("|"):
            usage = CliRunner().invoke(app, [command, "--help"]).output
            for option in re.findall(r"--[a-z]+", options):
                assert option in usage, (command, option)
