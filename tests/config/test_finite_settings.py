"""Every float setting is finite, and every duration at most a day, or the file is refused.

A float setting of ``inf`` (TOML allows it, and ``1e400`` is the same) would pass any lower
bound: a rate of inf divides by zero in every KIS process, a grace period of inf kills
nothing. The refusal names the key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.errors import ConfigError
from tests.support import ROOT


def float_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every place in the builtins of a Settings that holds a float."""
    if isinstance(value, float):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from float_paths(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from float_paths(item, (*path, index))


def replaced(value: Any, path: tuple[str | int, ...], new: float) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    assert isinstance(head, int)
    return [replaced(item, rest, new) if i == head else item for i, item in enumerate(value)]


DEFAULTS = msgspec.to_builtins(Settings())
FLOATS = list(float_paths(DEFAULTS))


def test_every_float_setting_is_found() -> None:
    names = {".".join(map(str, p)) for p in FLOATS}
    for expected in (
        "kis.accounts.0.rest_per_second",
        "programs.writer.stop_grace_s",
        "programs.writer.heartbeat_timeout_s",
        "supervisor.heartbeat_interval_s",
        "track_b.overflow_alert_pct.2",
        "track_b.volume_surge.ttl_s",
        "writer.drain_s",
    ):
        assert expected in names
    assert len(FLOATS) > 50


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_no_float_setting_accepts_inf_or_nan(bad: float) -> None:
    accepted = []
    for path in FLOATS:
        try:
            msgspec.convert(replaced(DEFAULTS, path, bad), Settings)
        except msgspec.ValidationError:
            continue
        accepted.append(".".join(map(str, path)))
    assert accepted == []


@pytest.mark.parametrize(
    ("toml", "where"),
    [
        ('[[kis.accounts]]\nalias = "a"\nrest_per_second = inf\n', r"rest_per_second"),
        ("[writer]\ndrain_s = 1e400\n", r"\$.writer.drain_s"),
        (
            '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
            "stop_grace_s = inf\n",
            r"\$.programs.writer.stop_grace_s",
        ),
        ("[track_b]\noverflow_alert_pct = [5.0, nan, 20.0]\n", r"overflow_alert_pct"),
    ],
)
def test_infinite_settings_in_toml_name_their_key(tmp_path: Path, toml: str, where: str) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=where):
        load_settings(path)


def test_durations_are_at_most_a_day_and_the_shipped_file_loads() -> None:
    with pytest.raises(msgspec.ValidationError, match="<= 86400"):
        msgspec.convert(replaced(DEFAULTS, ("writer", "drain_s"), 86_401.0), Settings)
    load_settings(ROOT / "config" / "observer.toml")
