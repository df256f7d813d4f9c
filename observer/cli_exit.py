"""How every ``observer`` command fails: one line on stderr, a documented exit code."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from observer.config import Settings, load_settings
from observer.errors import ConfigError

__all__ = ["fail", "settings_or_exit"]


def fail(program: str, message: str, code: int) -> NoReturn:
    """Print ``<program>: <message>`` on stderr and exit with ``code``."""
    typer.echo(f"{program}: {message}", err=True)
    raise typer.Exit(code)


def settings_or_exit(program: str, config: Path | None) -> Settings:
    """The configuration, or exit 2 naming what is wrong with it."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(program, str(exc), 2)
