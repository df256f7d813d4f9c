"""``observer backup``: the supervisor's ``backup`` job (21:00 on trading days).

It makes a backup exactly as ``observer db backup`` does (`observer.db.backup`), beating to
the supervisor while the dump runs, and publishes the outcome as an alert: ``backup_made``
(info, with the folder, size and time) or ``backup_failed`` (critical). A failed run exits 1
so the supervisor records the failure too.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from bus.events import Alert
from observer.cli_support import fail, start_worker
from observer.config import default_config_path
from observer.db.backup import Backup, make_backup
from observer.errors import BackupError
from observer.runtime import drained

__all__ = ["app"]

SOURCE = "backup"

app = typer.Typer(
    no_args_is_help=True, help="The scheduled backup job (`observer db backup` makes one by hand)."
)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Make, verify and keep a backup; alert on failure (the supervisor's ``backup`` job)."""
    worker = start_worker("observer backup", SOURCE, config)
    path = config or default_config_path()
    outcome: list[Backup | BackupError] = []

    def back_up() -> None:
        try:
            outcome.append(make_backup(worker.settings, path))
        except BackupError as exc:
            outcome.append(exc)
        except Exception as exc:  # anything else still ends as a failed backup, alerted
            outcome.append(BackupError(f"backup failed: {type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=back_up, name="backup")
    thread.start()
    while thread.is_alive():  # a dump of a large database takes minutes: stay alive
        worker.notifier.beat()
        thread.join(timeout=worker.notifier.interval_s)
    (result,) = outcome
    if isinstance(result, Backup):
        alert = Alert(
            severity="info",
            code="backup_made",
            message=f"backup {result.path.name}: {result.size / 1e6:.1f} MB, verified",
            context={k: str(v) for k, v in result.summary().items()},
        )
    else:
        alert = Alert(severity="critical", code="backup_failed", message=str(result)[:2000])
    worker.producer.send(alert)
    delivered = drained(worker.producer, worker.notifier, 60.0)
    worker.producer.close(drain_timeout=0)
    if not isinstance(result, Backup):
        fail("observer backup", str(result), 1)
    if not delivered:
        fail(
            "observer backup", "the writer has not acknowledged the outcome (kept in the outbox)", 1
        )
    typer.echo(f"{result.path}  {result.size / 1e6:.1f} MB, verified, {result.seconds:.1f} s")
