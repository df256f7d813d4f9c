"""``observer ctl slots``: pins in an owner-only file, refused when they are not codes."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from observer.pins import pins_path, read_pins
from observer.supervisor.ctl import ctl_app


def ctl(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(ctl_app, ["--data-dir", str(data), "slots", *args])
    return result.exit_code, result.output


def test_pins_are_added_and_removed_in_an_owner_only_file(tmp_path: Path) -> None:
    assert ctl(tmp_path, "pin", "005930", "000660") == (0, "pinned: 000660, 005930\n")
    assert ctl(tmp_path, "unpin", "000660") == (0, "pinned: 005930\n")
    assert read_pins(tmp_path) == {"005930"}
    assert stat.S_IMODE(pins_path(tmp_path).stat().st_mode) == 0o600
    assert stat.S_IMODE(pins_path(tmp_path).parent.stat().st_mode) == 0o700


def test_what_is_not_a_code_is_refused_and_the_pins_stay(tmp_path: Path) -> None:
    ctl(tmp_path, "pin", "005930")
    code, output = ctl(tmp_path, "pin", "../etc", "12345")
    assert code == 1 and "not stock codes: ../etc, 12345" in output
    assert read_pins(tmp_path) == {"005930"}


def test_listing_without_a_running_track_b_says_so(tmp_path: Path) -> None:
    code, output = ctl(tmp_path, "list")
    assert code == 1 and "has not shown its slots" in output
