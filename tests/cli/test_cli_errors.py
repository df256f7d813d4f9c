"""A command given a database it cannot use says so in one line, and creates nothing.

Run as an operator runs them: the ``observer`` command in a subprocess, from a folder that
holds no database (the configuration's paths are relative to the working directory).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import click.testing
import pytest
import typer
import typer.main
from typer.testing import CliRunner

from observer.cli import main as cli

# Read-only commands, each with the arguments it needs besides --db.
READERS = [
    ["audit"],
    ["hosts"],
    ["db", "current"],
    ["db", "check"],
]


def observer(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OBSERVER_CONFIG", "OBSERVER_CLOCK")}
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's one line on stderr (no traceback, no password), after its name."""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("observer"), done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout
    return lines[0]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_missing_sqlite_file_is_named_and_never_created(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "nx" / "sub" / "typo.db"
    done = observer(tmp_path, *command, "--db", f"sqlite:///{typo}")
    assert done.returncode == 2
    assert one_line(done) == f"observer: no database at {typo}"
    assert list(tmp_path.iterdir()) == []


def test_the_default_database_relative_to_another_folder_is_named(tmp_path: Path) -> None:
    """Run from a folder that is not the deployment's: its relative database is missing.

    Exit 2, as for an unusable URL: the reports said so with exit 1, which is also what
    ``etf status`` says of stale data and ``alerts`` of a database that refuses. A backup of
    nothing is a failed backup (exit 1; the job alerts it).
    """
    reports = [
        ["alerts"],
        ["etf", "status"],
        ["gap-recovery", "report"],
        ["track-a", "cycles"],
        ["enrich", "report"],
    ]
    for command in (["audit"], ["hosts"], *reports, ["db", "backup"]):
        done = observer(tmp_path, *command)
        assert done.returncode == (1 if command == ["db", "backup"] else 2), (command, done)
        assert one_line(done).endswith(f"no database at {tmp_path / 'var' / 'observer.db'}")
    assert not (tmp_path / "var" / "observer.db").exists()
    assert not (tmp_path / "var" / "backups").exists()  # no failed backup of nothing


@pytest.mark.parametrize(
    ("url", "code", "reason"),
    [
        ("not-a-url", 2, "not a usable database URL: "),
        ("mysql://operator:s3cret@127.0.0.1/observer", 2, "no driver for this database URL: "),
        ("postgresql://operator:s3cret@127.0.0.1:1/observer", 1, "the database failed: "),
    ],
    ids=["unparsable", "no driver", "refused"],
)
def test_an_unusable_database_url_is_one_line(
    tmp_path: Path, url: str, code: int, reason: str
) -> None:
    for command in (["audit"], ["hosts"]):
        done = observer(tmp_path, *command, "--db", url)
        assert done.returncode == code, done.stderr
        assert one_line(done).startswith(f"observer: {reason}")


def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    """A file that is no observer database (empty, or other tables): exit 2, as a missing one.

    ``audit`` said "the database failed: OperationalError: no such table" with exit 1, the
    code of a database that refuses; the remedy is ``observer db upgrade``.
    """
    empty, other = tmp_path / "empty.db", tmp_path / "other.db"
    empty.touch()
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (line TEXT)")
    for path in (empty, other):
        done = observer(tmp_path, "audit", "--db", f"sqlite:///{path}")
        assert done.returncode == 2, done.stderr
        assert one_line(done) == (
            f"observer: the database sqlite:///{path} was never migrated: run `observer db upgrade`"
        )
        assert done.stdout == ""


def test_an_empty_database_says_nothing_is_stored(tmp_path: Path) -> None:
    """Migrated and never written: one line saying so, exit 0 (it printed nothing at all)."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert observer(tmp_path, "db", "upgrade", "--db", url).returncode == 0
    done = observer(tmp_path, "audit", "--db", url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"nothing stored yet in {url}: 0 sources, 0 events (no ticks, snapshots, ...)"
    ]


def test_a_source_with_a_mark_and_no_rows_is_incomplete(tmp_path: Path) -> None:
    """A committed mark whose events left no row at all: the largest hole, never "nothing
    stored yet" with exit 0 (the source was not listed)."""
    path = tmp_path / "lost.db"
    url = f"sqlite:///{path}"
    assert observer(tmp_path, "db", "upgrade", "--db", url).returncode == 0
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO bus_offsets (source, seq, updated_ns) VALUES ('track_b', 3, 1)")
    done = observer(tmp_path, "audit", "--db", url)
    assert done.returncode == 1, done.stderr
    (line,) = done.stdout.splitlines()
    assert " ".join(line.split()) == "track_b seq 0..0 distinct 0 rows 0 committed 3 INCOMPLETE"


def test_help_shows_configuration_names_in_brackets() -> None:
    """``[supervisor] role`` in a help text is shown as written, not taken for markup."""
    cli._add_worker_commands([])
    root = typer.main.get_command(cli.app)
    bracketed = re.compile(r"\[[a-z_.]+\][^.,;)]*")
    checked = 0

    def walk(command: click.Command, path: list[str]) -> None:
        nonlocal checked
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for match in bracketed.finditer(" ".join(texts)):
            shown = CliRunner().invoke(cli.app, [*path, "--help"], terminal_width=400).output
            assert match[0].split()[0] in shown, (path, match[0])
            checked += 1
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    assert checked >= 3  # supervise --role and --log-file, keys generate --dir


@pytest.mark.parametrize(
    "command",
    [["archive", "{config}", "verify"], ["alerts", "{config}", "ack", "supervisor:1"]],
    ids=["archive verify", "alerts ack"],
)
def test_options_before_a_subcommand_are_the_subcommands_or_refused(
    tmp_path: Path, command: list[str]
) -> None:
    """``--config`` before the subcommand is honoured: it was dropped for the default's."""
    mine = tmp_path / "mine"
    config = tmp_path / "mine.toml"
    config.write_text(f'[paths]\ndata_dir = "{mine}"\n[database]\nurl = "sqlite:///{mine}/x.db"\n')
    args = [arg.replace("{config}", f"--config={config}") for arg in command]
    done = observer(tmp_path, *args)
    assert done.returncode in (1, 2)
    assert one_line(done).endswith(f"no database at {mine / 'x.db'}")  # not var/observer.db


def test_an_option_before_a_subcommand_that_it_does_not_take_is_refused(tmp_path: Path) -> None:
    done = observer(tmp_path, "alerts", "--open", "--since", "2026-11-20", "ack", "supervisor:1")
    assert done.returncode == 2
    assert one_line(done) == "observer alerts: --since, --open do not apply to ack"


TOP_LEVEL = ("archive", "alerts", "backup", "db", "etf", "bench")  # named after a "/" alone


def readme_commands() -> list[list[str]]:
    """The command words of every ``observer ...`` in the README's Commands table."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].lstrip().split("\n\n", 1)[0]
    commands: list[list[str]] = []
    for row in table.splitlines()[2:]:
        group = ""  # `observer track-a run` / `cycles`: the second is `track-a cycles`
        for shown in re.findall(r"`([^`]*)`", row.split(" | ")[0]):
            if shown.startswith("observer "):
                shown = shown.removeprefix("observer ")
                group = shown.split()[0]
            elif not any(shown.startswith(f"{top} ") for top in TOP_LEVEL):
                shown = f"{group} {shown}"
            words: list[list[str]] = [[]]
            for token in shown.split():
                if token[0] in "[-" or not re.fullmatch(r"[a-z-]+(\\\|[a-z-]+)*", token):
                    break
                words = [[*w, choice] for w in words for choice in token.split("\\|")]
            commands += [w for w in words if w]
    return commands


def test_every_command_in_the_readme_exists() -> None:
    """Each command the README's table shows answers ``--help`` (one named another was not)."""
    commands = readme_commands()
    assert len(commands) >= 40 and ["bench", "master-file"] in commands
    cli._add_worker_commands([])
    # Built once: typer's runner builds the whole tree of some 80 commands at each call
    # (a quarter second each, 14 CPU-seconds for the table)
    command = typer.main.get_command(cli.app)
    runner = click.testing.CliRunner()
    for words in commands:
        done = runner.invoke(command, [*words, "--help"], prog_name="observer")
        assert done.exit_code == 0, (words, done.output)


@pytest.mark.parametrize("command", [["writer"], ["supervise"]])
def test_a_run_folder_that_cannot_be_created_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """A data folder below a file: the folder named, exit 2, no traceback (it was 30 lines)."""
    (tmp_path / "afile").touch()
    config = tmp_path / "o.toml"
    config.write_text('[paths]\ndata_dir = "afile/var"\n[database]\nurl = "sqlite:///x.db"\n')
    done = observer(tmp_path, *command, "--config", str(config))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("afile/var/run: Not a directory")
