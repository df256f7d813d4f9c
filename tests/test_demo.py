"""``observer demo`` end to end: simulator, supervisor, writer, phases, the JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from observer.demo import DemoError, DemoOptions, default_day, run_demo
from observer.trading_calendar import TradingCalendar

pytestmark = pytest.mark.slow


def test_a_short_demo_day_ends_with_a_json_summary(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "observer", "demo", "--data-dir", str(data), "--date",
         "2026-11-20", "--start", "05:00", "--until", "09:31", "--speed", "2000",
         "--faults", "light", "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["date"] == "2026-11-20"
    assert [p["phase"] for p in summary["phases"]][-3:] == [
        "warmup", "track_a_only", "full_operation",
    ]  # fmt: skip
    assert [p["at"] for p in summary["phases"]][-3:] == ["08:00", "09:00", "09:30"]
    assert summary["processes"]["writer"] == {"restarts": 0, "state": "running"}
    assert summary["events_committed"] >= 5  # phases and lifecycle, exactly once
    # At 2000x the jobs may still be working when the day ends; they never crash.
    for job in ("master_file", "universe"):
        assert summary["processes"][job]["restarts"] == 0
        assert summary["processes"][job]["state"] in ("running", "exited")
    assert set(summary["listings"]) == {"instruments", "new", "changed", "removed", "reviews_held"}
    assert set(summary["universe"]) == {"members", "based_on"}
    assert (data / "observer.db").exists() and (data / "log" / "writer.log").exists()


def test_the_demo_never_empties_a_folder_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious.db"
    precious.write_text("production data")
    with pytest.raises(DemoError, match="did not create"):
        run_demo(DemoOptions(data_dir=tmp_path, day=None), lambda _state: None)
    assert precious.read_text() == "production data"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DemoOptions(day=date(2026, 11, 21)), "not a KRX trading day"),
        (DemoOptions(day=date(2026, 11, 20), start="15:00", until="09:00"), "after --start"),
        (DemoOptions(day=date(2026, 11, 20), start="9h"), "not a time of day"),
        (DemoOptions(faults="extreme"), "none, light or heavy"),
    ],
)
def test_bad_demo_options_are_refused_before_anything_starts(
    tmp_path: Path, options: DemoOptions, message: str
) -> None:
    with pytest.raises(DemoError, match=message):
        run_demo(options, lambda _state: None)


def test_the_default_day_is_the_latest_session() -> None:
    calendar = TradingCalendar()
    assert default_day(calendar, date(2026, 11, 21)) == date(2026, 11, 20)  # Saturday
    assert default_day(calendar, date(2026, 11, 20)) == date(2026, 11, 20)
