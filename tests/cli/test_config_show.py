"""``observer config show``: every setting a file gives, as TOML that loads back the same.

Run as an operator runs it (the ``observer`` command in a subprocess): the shipped file, a
file that ``extends`` it with an old key name, the defaults, and what a file changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec

from observer.config.load import default_config_path, load_settings
from observer.config.show import changes, settings_document
from observer.config.tree import Settings

SHIPPED = default_config_path()


def observer(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OBSERVER_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "observer", "config", "show", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_what_it_shows_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    """The shipped file, and one extending it with an old key name, read as a process reads them."""
    (tmp_path / "mine.toml").write_text(
        f'extends = "{SHIPPED}"\n[track_b]\nregistrations_per_account = 20\n'
        '[database]\nurl = "postgresql://observer:s3cret@127.0.0.1/observer"\n'
    )
    for path in (SHIPPED, tmp_path / "mine.toml"):
        done = observer("--config", str(path))
        assert done.returncode == 0, done.stderr
        shown = tmp_path / "shown.toml"
        shown.write_text(done.stdout)
        expected = load_settings(path)
        if path == SHIPPED:
            assert load_settings(shown) == expected
            continue
        assert "s3cret" not in done.stdout and "observer:***@127.0.0.1" in done.stdout
        assert "is now [kis.stream] max_registrations" in done.stderr  # the old name, warned
        again = load_settings(shown)
        assert again.kis.stream.max_registrations == 20  # in its new place
        assert again.database.url == "postgresql://observer:***@127.0.0.1/observer"
        assert with_url(again, expected.database.url) == expected


def with_url(settings: Settings, url: str) -> Settings:
    database = msgspec.structs.replace(settings.database, url=url)
    return msgspec.structs.replace(settings, database=database)


def test_every_key_is_shown_and_the_defaults_are_the_code_s() -> None:
    done = observer("--defaults", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert list(shown) == list(Settings.__struct_fields__)  # every table, in order
    assert set(shown["track_b"]) == set(Settings().track_b.__struct_fields__)
    assert shown["kis"]["stream"]["max_registrations"] == 41
    toml = observer("--defaults")
    assert tomllib.loads(toml.stdout)["kis"]["token_issuer"] == "any"


def test_changed_lists_only_what_the_file_sets_apart_from_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        "[track_b]\nevaluate_s = 7.0\nmin_hold_s = 60.0\n[kis.stream]\nmax_registrations = 30\n"
    )
    done = observer("--changed", "--config", str(tmp_path / "mine.toml"))
    assert done.returncode == 0, done.stderr
    # min_hold_s = 60 is the default: set, but not a change
    assert tomllib.loads(done.stdout) == {
        "track_b": {"evaluate_s": 7.0},
        "kis": {"stream": {"max_registrations": 30}},
    }


def test_the_shipped_file_s_changes_are_these() -> None:
    """What config/observer.toml changes: a list that grows only on purpose."""
    shipped = changes(settings_document(load_settings(SHIPPED)), settings_document(Settings()))
    assert set(shipped) == {"kis", "programs"}
    assert shipped["kis"] == {"token_issuer": "job"}  # the supervisor's token job issues


def test_a_bad_file_or_bad_options_exit_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[track_b]\nbogus = 1\n")
    done = observer("--config", str(tmp_path / "bad.toml"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        f"observer config show: {tmp_path / 'bad.toml'}: "
        "Object contains unknown field `bogus` - at `$.track_b`"
    )
    both = observer("--defaults", "--changed")
    assert both.returncode == 2 and "--defaults shows no file" in both.stderr


REFERENCE = Path(__file__).parents[2] / "docs" / "configuration.toml"
# What every installation sets for itself, shown in the shipped file though at its default.
OWN_KEYS = {
    ("paths", "data_dir"),
    ("database", "url"),
    ("kis", "environment"),
    ("kis", "accounts"),
}


def leaves(table: dict[str, object], path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The key paths of a TOML document's values (an array of tables is one value)."""
    found: set[tuple[str, ...]] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            found |= leaves(value, (*path, key))
        else:
            found.add((*path, key))
    return found


def test_the_reference_documents_every_setting_at_its_default() -> None:
    """docs/configuration.toml: each key, with the code's default (the programs apart)."""
    assert load_settings(REFERENCE) == Settings()
    documented = leaves(tomllib.loads(REFERENCE.read_text()))
    defaults = settings_document(Settings())
    del defaults["programs"]  # defined in the shipped file
    # a value left unset by default (None) has no TOML form: commented in the reference
    assert leaves(defaults) - documented == set()


def test_the_shipped_file_sets_only_what_it_changes() -> None:
    """config/observer.toml: each key differs from its default, or every installation sets it."""
    raw = tomllib.loads(SHIPPED.read_text())
    del raw["programs"]  # each program's definition, whole
    changed = leaves(
        changes(settings_document(load_settings(SHIPPED)), settings_document(Settings()))
    )
    assert leaves(raw) - changed == OWN_KEYS
