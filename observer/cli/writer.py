"""``observer writer``: its options, parsed without the CLI framework.

The writer's start is on the critical path of every restart, and importing pydantic (which the
typer app needs) is a fifth of it, so `observer.cli.entry` parses the writer's options here. The
typer command of the same name (for ``observer --help``) calls `run` too; a test keeps the two
option lists equal.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from observer.cli.support import fail, settings_or_exit
from observer.errors import ConfigError, StoreError, WriterLocked
from observer.process.logs import setup_logging
from observer.runtime import stop_on_signals
from observer.writer.run import run_writer

__all__ = ["main", "parser", "run"]

DESCRIPTION = "Run the writer: ingest, commit, ack, feed (exit 2: database, 3: locked)."


def parser() -> argparse.ArgumentParser:
    """The writer's options, as ``observer writer --help`` lists them."""
    options = argparse.ArgumentParser(prog="observer writer", description=DESCRIPTION)
    options.add_argument("--config", type=Path, help="observer.toml to load")
    options.add_argument("--db", help="database URL (default: config)")
    options.add_argument("--run-dir", type=Path, help="sockets and outboxes")
    options.add_argument("--capture", type=Path, help="tee committed frames to this file")
    return options


def run(config: Path | None, db: str | None, run_dir: Path | None, capture: Path | None) -> int:
    """Serve until SIGTERM or SIGINT; the exit code (2: database or a path refused, 3: locked)."""
    settings = settings_or_exit("observer", config)
    setup_logging()
    try:
        return run_writer(settings, stop_on_signals(), db_url=db, run_dir=run_dir, capture=capture)
    except (StoreError, ConfigError) as exc:  # ConfigError: a CURVE key file (tcp)
        fail("observer", str(exc), 2)
    except WriterLocked as exc:
        fail("observer", str(exc), 3)
    except OSError as exc:  # a folder or file it was given that the system refused
        if exc.filename is None:
            raise
        fail("observer", f"{exc.filename}: {exc.strerror}", 2)


def main(argv: list[str]) -> int:
    """Parse ``argv`` (the arguments after ``writer``) and run."""
    args = parser().parse_args(argv)
    return run(args.config, args.db, args.run_dir, args.capture)
