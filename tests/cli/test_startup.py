"""What each program loads before it is READY, and what ``observer ctl`` loads at all.

A restart's time to READY is mostly imports (``observer bench supervisor`` times it): each
program loads what it needs to be READY (configuration, the bus, its lock) and the rest of
its code afterwards. These tests run the real commands and list the modules loaded at the
moment of READY; they judge no times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from observer.db import migrate

# Runs `observer ARGS...`; prints the loaded modules when the program says READY (and exits
# there), or when the command ends without it.
PROBE = """
import os, sys
import observer.process.heartbeat

def ready(self, counters=None):
    print(" ".join(sorted(sys.modules)), flush=True)
    os._exit(0)

observer.process.heartbeat.Heartbeat.ready = ready
sys.argv = ["observer", *sys.argv[1:]]
from observer.cli.entry import main
try:
    main()
finally:
    print(" ".join(sorted(sys.modules)), flush=True)
"""

# Work code: HTTP clients, WebSocket, the database layer, retries, terminal output.
WORK = {
    "aiohttp",
    "alembic",
    "httpx",
    "httpx_aiohttp",
    "rich",
    "sqlalchemy",
    "tenacity",
    "websockets",
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "observer.toml"
    path.write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "data" / "observer.db"}"\n'
    )
    return path


def loaded_before_ready(*args: str | Path) -> set[str]:
    """Top-level packages loaded when ``observer ARGS`` is READY (or ends without it)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return {name.split(".")[0] for name in lines[0].split()}


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("track-a", "run"), set()),
        (("track-b", "run"), set()),
        (("gap-recovery", "run"), set()),
        (("universe", "build", "--date", "2026-11-20"), set()),
        # The master files' URLs: httpx, which imports rich for its command line when rich
        # is installed (it is: typer's).
        (("master-file", "update", "--all"), {"httpx", "rich"}),
        (("backup", "run"), set()),
        (("etf", "daily", "--date", "2026-11-20"), set()),
        (("etf", "list"), set()),
        (("notifier", "run"), set()),  # apprise (its channels are checked), not the database
    ],
    ids=[
        "track_a",
        "track_b",
        "gap_recovery",
        "universe",
        "master_file",
        "backup",
        "etf_daily",
        "etf_list",
        "notifier",
    ],
)
def test_a_worker_is_ready_before_it_loads_its_work(
    config: Path, args: tuple[str, ...], allowed: set[str]
) -> None:
    loaded = loaded_before_ready(*args, "--config", config)
    assert not (loaded & (WORK - allowed)), loaded & WORK


def test_the_writer_at_the_newest_revision_is_ready_without_alembic(config: Path) -> None:
    migrate.upgrade(f"sqlite:///{config.parent / 'data' / 'observer.db'}")
    loaded = loaded_before_ready("writer", "--config", config)
    assert "sqlalchemy" in loaded
    # Nor the CLI framework, whose option parsing imports pydantic (see observer.cli.writer).
    unwanted = (WORK - {"sqlalchemy"}) | {"typer", "pydantic"}
    assert not (loaded & unwanted), loaded & unwanted


def test_the_writers_options_are_the_same_on_both_paths() -> None:
    """``observer writer`` parses its options without typer; ``--help`` shows typer's."""
    import typer.main

    from observer.cli.main import app
    from observer.cli.writer import parser

    (command,) = [c for c in typer.main.get_command(app).commands.values() if c.name == "writer"]  # type: ignore[attr-defined]
    typer_options = {opt for param in command.params for opt in param.opts}
    argparse_options = {
        opt for action in parser()._actions for opt in action.option_strings if opt != "-h"
    }
    assert typer_options - {"--help"} == argparse_options - {"--help"}
    assert command.help == parser().description


def test_ctl_loads_neither_the_bus_nor_the_workers(config: Path) -> None:
    # No supervisor listens: `status` exits 2, as far into the command as a reply would go.
    loaded = loaded_before_ready("ctl", "--config", config, "status")
    assert not (loaded & (WORK | {"workers", "zmq"})), loaded & (WORK | {"workers", "zmq"})


def test_the_probe_sees_what_a_command_loads(config: Path) -> None:
    loaded = loaded_before_ready("track-a", "cycles", "--date", "2026-11-20", "--config", config)
    assert {"sqlalchemy", "workers", "zmq"} <= loaded


def test_the_writers_shortcut_agrees_with_alembic(sqlite_url: str) -> None:
    """The newest revision as the version files state it is alembic's head."""
    assert migrate._newest_on_disk() == migrate.head()
    assert not migrate._at_newest(sqlite_url)  # an empty database: alembic migrates it
    migrate.upgrade(sqlite_url)
    assert migrate._at_newest(sqlite_url)
