"""``observer track-b slots``: pins in an owner-only file, refused when they are not codes.

``observer ctl slots`` is an alias, found through the entry points (observer never imports
workers/).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from observer.supervisor.ctl import ctl_app
from workers.track_b.cli import app
from workers.track_b.pins import pins_path, read_pins, slots_path


def slots(data: Path, *args: str) -> tuple[int, str]:
    (data / "run").mkdir(exist_ok=True)  # a supervisor's: pins are refused in an unused folder
    result = CliRunner().invoke(app, ["slots", "--data-dir", str(data), *args])
    return result.exit_code, result.output


def ctl(data: Path, *args: str) -> tuple[int, str]:
    (data / "run").mkdir(exist_ok=True)
    result = CliRunner().invoke(ctl_app, ["--data-dir", str(data), "slots", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("command", [slots, ctl], ids=["track-b", "ctl"])
def test_pins_are_added_and_removed_in_an_owner_only_file(command, tmp_path: Path) -> None:
    at = pins_path(tmp_path)
    assert command(tmp_path, "pin", "005930", "000660") == (0, f"pinned: 000660, 005930 ({at})\n")
    assert command(tmp_path, "unpin", "000660") == (0, f"pinned: 005930 ({at})\n")
    assert read_pins(tmp_path) == {"005930"}
    assert stat.S_IMODE(pins_path(tmp_path).stat().st_mode) == 0o600
    assert stat.S_IMODE(pins_path(tmp_path).parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("command", [slots, ctl], ids=["track-b", "ctl"])
def test_what_is_not_a_code_is_refused_and_the_pins_stay(command, tmp_path: Path) -> None:
    command(tmp_path, "pin", "005930")
    code, output = command(tmp_path, "pin", "../etc", "12345")
    assert code == 1 and "not stock codes: ../etc, 12345" in output
    assert read_pins(tmp_path) == {"005930"}


@pytest.mark.parametrize("command", [slots, ctl], ids=["track-b", "ctl"])
def test_listing_without_a_running_track_b_says_so(command, tmp_path: Path) -> None:
    code, output = command(tmp_path, "list")
    assert code == 1 and "has not shown its slots" in output


def test_the_alias_passes_on_json_and_shows_the_help(tmp_path: Path) -> None:
    row = {
        "account": "acct1",
        "slot": 0,
        "symbol": "005930",
        "trigger": "manual",
        "score": 1.0,
        "pinned": True,
        "feeds": ["KRX trades", "NXT trades"],
    }
    shown = {"at_ns": 1, "slots": [row]}
    slots_path(tmp_path).parent.mkdir(mode=0o700)
    slots_path(tmp_path).write_text(json.dumps(shown))
    result = CliRunner().invoke(ctl_app, ["--data-dir", str(tmp_path), "--json", "slots", "list"])
    assert result.exit_code == 0 and json.loads(result.output) == shown
    assert ctl(tmp_path, "list")[1].split() == [
        *("acct1", "0", "005930", "manual", "1.00"),
        *("KRX", "trades,", "NXT", "trades", "pinned"),
    ]
    code, output = ctl(tmp_path, "--help")
    assert code == 0 and "observer ctl slots" in output and "unpin" in output


def test_the_list_shows_halted_pins_closed_slots_and_barred_symbols_with_why(
    tmp_path: Path,
) -> None:
    pin = {
        "account": "acct1",
        "slot": 0,
        "symbol": "005930",
        "trigger": "manual",
        "score": 6.3,
        "pinned": True,
        "state": "trading halted",
    }
    noon = 1_795_489_200 * 10**9  # 2026-11-24 12:00 KST
    shown = {
        "at_ns": noon,
        "slots": [pin],
        "closed": [{"account": "acct2", "slot": 2}],
        "barred": [
            {
                "symbol": "000660",
                "kind": "refused",
                "code": "OPSP0007",
                "since_ns": noon,
                "reason": "registration refused: OPSP0007 SUBSCRIBE INTERNAL ERROR (retry in 30 s)",
                "until_ns": noon + 30 * 10**9,
            },
            {
                "symbol": "035420",
                "kind": "limit_locked",
                "code": "",
                "since_ns": noon,
                "reason": "locked at its upper limit (260,000 KRW)",
                "until_ns": 0,
            },
        ],
    }
    slots_path(tmp_path).parent.mkdir(mode=0o700)
    slots_path(tmp_path).write_text(json.dumps(shown))
    code, output = slots(tmp_path, "list")
    assert code == 0
    assert output.splitlines() == [
        "acct1          0  005930  manual              6.30  pinned  (trading halted)",
        "acct2          2  closed (KIS counts it taken)",
        "barred            000660  registration refused: OPSP0007 SUBSCRIBE INTERNAL ERROR "
        "(retry in 30 s), until 12:00:30",
        "barred            035420  locked at its upper limit (260,000 KRW), until it trades again",
    ]
