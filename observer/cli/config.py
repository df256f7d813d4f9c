"""``observer config show``: the settings a file gives, the defaults, or what a file changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from observer.cli.support import fail
from observer.config.load import load_settings
from observer.config.show import changes, settings_document, to_toml
from observer.config.tree import Settings
from observer.errors import ConfigError

__all__ = ["config_app"]

config_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # help names configuration tables: "[track_b]"
    help="The configuration: every setting as a file gives it, the defaults, what it changes.",
)


@config_app.command()
def show(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml to load")] = None,
    defaults: Annotated[
        bool, typer.Option("--defaults", help="the built-in defaults, not a file's")
    ] = False,
    changed: Annotated[
        bool, typer.Option("--changed", help="only what the file sets apart from the defaults")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object, not TOML")] = False,
) -> None:
    """Every setting, as TOML that loads back to the same settings (exit 2: a bad file).

    The file read as the processes read it (what it ``extends``, old names moved to their
    places), each key present, unset ones at their default. Secrets are never settings; a
    database URL's password shows as ***.
    """
    if defaults and (changed or config is not None):
        fail("observer config show", "--defaults shows no file: not with --config or --changed", 2)
    base = settings_document(Settings())
    if defaults:
        document = base
    else:
        try:  # read only: unlike a process, showing a file tightens no folder it names
            settings = load_settings(config)
        except ConfigError as exc:
            fail("observer config show", str(exc), 2)
        document = settings_document(settings)
        if changed:
            document = changes(document, base)
    text = json.dumps(document, default=str, ensure_ascii=False) if as_json else to_toml(document)
    typer.echo(text)
