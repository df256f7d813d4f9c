"""``observer keys``: the CURVE key pairs of a bus that runs over tcp between hosts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from bus.errors import KeyFileError
from observer.cli.support import fail, settings_or_exit
from observer.cluster.settings import KEY_NAME

__all__ = ["keys_app"]

keys_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # help names configuration tables: "[bus.curve] keys_dir"
    help="CURVE keys of the bus between hosts.",
)


@keys_app.command()
def generate(
    name: Annotated[str, typer.Option("--name", help="the key pair's name")] = "writer",
    keys_dir: Annotated[
        Path | None, typer.Option("--keys-dir", help="default: [bus.curve] keys_dir")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml to load")] = None,
) -> None:
    """Write a new key pair: NAME.key (public, for the peers) and NAME.key_secret (0600).

    Copy NAME.key to the other hosts' keys_dir; the secret file never leaves this host.
    """
    # deferred: ZeroMQ (about 0.03 s) for this command only (tests/cli/test_startup.py)
    from bus.curve import generate_key_pair

    if re.fullmatch(KEY_NAME, name) is None:  # a name a configuration can give
        fail("observer keys", f"invalid key name {name[:70]!r}: 1-64 of A-Z a-z 0-9 _ -", 2)
    folder = keys_dir or Path(settings_or_exit("observer keys", config).bus.curve.keys_dir)
    try:
        public, secret = generate_key_pair(folder, name)
    except KeyFileError as exc:
        fail("observer keys", str(exc), 2)
    except OSError as exc:  # the folder is a file, or not ours
        fail("observer keys", f"cannot write a key pair in {folder}: {exc.strerror}", 2)
    typer.echo(f"wrote {public} (public) and {secret} (secret, owner-only: keep it here)")
