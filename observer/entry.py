"""The ``observer`` command's entry point (console script and ``python -m observer``).

``observer writer`` goes to `observer.writer.command`, which parses its options without the
CLI framework (see there why); ``observer writer --help`` and every other command go to the
typer app in `observer.cli`.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main() -> None:
    """Run the command named on the command line."""
    os.umask(0o077)  # every file and folder a process creates is owner-only (so its children)
    args = sys.argv[1:]
    if args[:1] == ["writer"] and not {"-h", "--help"} & set(args):
        from observer.errors import ObserverError
        from observer.logs import mask_secrets
        from observer.writer.command import main as writer

        try:
            code = writer(args[1:])
        except ObserverError as exc:
            print(f"observer: {mask_secrets(str(exc))}", file=sys.stderr, flush=True)
            code = 2
        sys.exit(code)
    from observer.cli import main as cli

    cli()
