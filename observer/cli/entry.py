"""The ``observer`` command's entry point (console script and ``python -m observer``).

``observer writer`` goes to `observer.cli.writer`, which parses its options without the CLI
framework (see there why); ``observer writer --help`` and every other command go to the typer
app in `observer.cli.main`. Both paths turn a database a command could not use into one line
(`observer.cli.support.database_failure`).
"""

from __future__ import annotations

import os
import sys

from observer.cli.support import database_failure
from observer.errors import ObserverError
from observer.process.heartbeat import NOTIFY_FD_ENV
from observer.process.logs import mask_secrets

__all__ = ["main"]


def main() -> None:
    """Run the command named on the command line."""
    os.umask(0o077)  # every file and folder a process creates is owner-only (so its children)
    args = sys.argv[1:]
    if args[:1] == ["writer"] and not {"-h", "--help"} & set(args):
        # deferred: the writer's modules (SQLAlchemy, ZeroMQ) load for the writer alone
        from observer.cli.writer import main as writer

        try:
            code = writer(args[1:])
        except ObserverError as exc:
            print(f"observer: {mask_secrets(str(exc))}", file=sys.stderr, flush=True)
            code = 2
        except Exception as exc:
            failure = database_failure(exc)
            if failure is None or os.environ.get(NOTIFY_FD_ENV):  # its log keeps the traceback
                raise
            reason, code = failure
            print(f"observer: {mask_secrets(reason)}", file=sys.stderr, flush=True)
        sys.exit(code)
    # deferred: the typer app (about 0.17 s, and pydantic once it parses) never loads for the
    # writer, on the critical path of a restart (tests/cli/test_startup.py)
    from observer.cli.main import main as cli

    cli()
