"""The ``observer`` command's entry point (console script and ``python -m observer``).

``observer writer`` goes to `observer.writer.command`, which parses its options without the
CLI framework (see there why); ``observer writer --help`` and every other command go to the
typer app in `observer.cli.main`. Both paths turn a database a command could not use into one
line (`database_failure`): the writer's went out as a traceback (``--db mysql2://x``).
"""

from __future__ import annotations

import os
import sys
import traceback

__all__ = ["database_failure", "main"]


def main() -> None:
    """Run the command named on the command line."""
    os.umask(0o077)  # every file and folder a process creates is owner-only (so its children)
    args = sys.argv[1:]
    if args[:1] == ["writer"] and not {"-h", "--help"} & set(args):
        from observer.errors import ObserverError
        from observer.process.logs import mask_secrets
        from observer.writer.command import main as writer

        try:
            code = writer(args[1:])
        except ObserverError as exc:
            print(f"observer: {mask_secrets(str(exc))}", file=sys.stderr, flush=True)
            code = 2
        except Exception as exc:
            from observer.process.heartbeat import NOTIFY_FD_ENV

            failure = database_failure(exc)
            if failure is None or os.environ.get(NOTIFY_FD_ENV):  # its log keeps the traceback
                raise
            reason, code = failure
            print(f"observer: {mask_secrets(reason)}", file=sys.stderr, flush=True)
        sys.exit(code)
    from observer.cli.main import main as cli

    cli()


def database_failure(exc: Exception) -> tuple[str, int] | None:
    """One line and the exit code for a database a command could not use, else None.

    A URL that does not parse or names a database without its driver is configuration
    (exit 2); a database that refuses or lacks a table, a failure (exit 1). SQLAlchemy is
    looked up only if loaded: a command that never imported it cannot raise its errors.
    """
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None:
        return None
    from observer.db.engine import error_reason

    if isinstance(exc, errors.ArgumentError | errors.NoSuchModuleError):
        return f"not a usable database URL: {exc}", 2
    if isinstance(exc, ModuleNotFoundError) and any(
        "/sqlalchemy/dialects/" in frame.filename
        for frame in traceback.extract_tb(exc.__traceback__)
    ):
        return f"no driver for this database URL: {exc}", 2
    if isinstance(exc, errors.SQLAlchemyError):
        return f"the database failed: {error_reason(exc)}", 1
    return None
