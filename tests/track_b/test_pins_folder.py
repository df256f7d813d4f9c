"""``observer track-b slots pin|unpin`` write only where a Track B reads them.

``data_dir = "var"`` is relative to the folder a command runs in, and the default
configuration's path is absolute: run from any folder but the supervisor's, ``slots pin``
said "pinned", exit 0, into a ``./var`` that no Track B reads. Now a data folder that no
Track B or supervisor has used is refused (exit 2, naming it), and a pin says where it went.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workers.track_b.cli import app
from workers.track_b.pins import pins_path, read_pins, slots_path

ROOT = Path(__file__).resolve().parents[2]


def relative_config(tmp_path: Path) -> Path:
    config = tmp_path / "observer.toml"
    config.write_text('[paths]\ndata_dir = "var"\n')
    return config


def pin(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["slots", "--config", str(config), *args])
    return result.exit_code, result.output


def test_the_default_configuration_from_another_folder_is_refused(tmp_path: Path) -> None:
    """The reviewer's case: the checkout's configuration, run from another folder."""
    env = {k: v for k, v in os.environ.items() if k != "OBSERVER_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "observer", "track-b", "slots", "pin", "005930"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert f"the data folder {tmp_path / 'var'} " in line
    assert "run it from the folder the supervisor runs in, or set an absolute data_dir" in line
    assert not list(tmp_path.rglob("pins.json"))


@pytest.mark.parametrize("action", ["pin", "unpin"])
def test_a_relative_folder_nothing_has_used_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    config = relative_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, output = pin(config, action, "005930")
    assert code == 2
    assert f"not {action}ned: " in output and str(elsewhere / "var") in output
    assert not (elsewhere / "var").exists()


def test_an_absolute_folder_nothing_has_used_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["slots", "--data-dir", str(tmp_path / "typo"), "pin", "005930"]
    )
    assert result.exit_code == 2
    assert f"the data folder {tmp_path / 'typo'} " in result.output
    assert "(--data-dir, or [paths] data_dir)" in result.output
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("used", ["run", "log", "slots"])
def test_a_folder_a_supervisor_or_track_b_used_takes_the_pin_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, used: str
) -> None:
    config = relative_config(tmp_path)
    monkeypatch.chdir(tmp_path)  # the supervisor's folder: its var/ is Track B's
    data = tmp_path / "var"
    if used == "slots":  # Track B has shown its slots there
        slots_path(data).parent.mkdir(parents=True)
        slots_path(data).write_text(json.dumps({"slots": []}))
    else:
        (data / used).mkdir(parents=True)
    code, output = pin(config, "pin", "005930")
    assert code == 0, output
    assert output == f"pinned: 005930 ({pins_path(data)})\n"
    assert read_pins(data) == {"005930"}
    code, output = pin(config, "unpin", "005930")
    assert (code, output) == (0, f"pinned: none ({pins_path(data)})\n")
    assert read_pins(data) == set()
