"""``observer backup``: the supervisor's ``backup`` job (21:00 on trading days).

It makes a backup exactly as ``observer db backup`` does (`observer.db.backup`), beating to
the supervisor while the dump runs, and publishes the outcome as an alert: ``backup_made``
(info, with the folder, size and time) or ``backup_failed`` (critical; a backup refused for
lack of room too, before it writes anything). A failed run exits 1 so the supervisor records
the failure too; the next backup made resolves the alert. Stopped by the supervisor
(SIGTERM), it removes its scratch copies first and exits 143, as the signal would.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bus.events import Alert, AlertResolved
from observer.cli.support import fail, is_open_alert, job_producer, start_job
from observer.config.load import default_config_path
from observer.config.tree import Settings
from observer.errors import BackupError
from observer.process.heartbeat import Heartbeat

if TYPE_CHECKING:
    from observer.db.backup import Backup

__all__ = ["app"]

SOURCE = "backup"
FAILED = "backup_failed"  # critical; resolved by the next backup made
PROGRAM = "observer backup"

app = typer.Typer(
    no_args_is_help=True, help="The scheduled backup job (`observer db backup` makes one by hand)."
)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Make, verify and keep a backup; alert on the outcome (the supervisor's ``backup`` job)."""
    settings, clock, notifier = start_job(PROGRAM, config)
    # deferred: the database layer (SQLAlchemy, about 0.3 s) after READY (tests/cli/test_startup.py)
    from observer.db.backup import Backup

    with job_producer(PROGRAM, settings, SOURCE, clock, notifier, 60.0) as producer:
        result = _back_up(settings, config or default_config_path(), notifier)
        if isinstance(result, Backup):
            made = f"backup {result.path.name}: {result.size / 1e6:.1f} MB, verified"
            producer.send(
                Alert(
                    severity="info",
                    code="backup_made",
                    message=made,
                    context={k: str(v) for k, v in result.summary().items()},
                )
            )
            if is_open_alert(settings, SOURCE, FAILED):  # an earlier run's failure
                producer.send(AlertResolved(code=FAILED, severity="critical", message=made))
        else:
            producer.send(Alert(severity="critical", code=FAILED, message=str(result)[:2000]))
    if not isinstance(result, Backup):
        fail(PROGRAM, str(result), 1)
    typer.echo(f"{result.path}  {result.size / 1e6:.1f} MB, verified, {result.seconds:.1f} s")


def _back_up(settings: Settings, config: Path, notifier: Heartbeat) -> Backup | BackupError:
    """The backup, made on this thread while another beats (a large dump takes minutes).

    On the main thread: the supervisor's SIGTERM then ends it through its cleanup
    (`observer.db.backup_space.sigterm_ends_it`), which a backup on another thread never
    ran, leaving its verification's scratch copy of the database for good.
    """
    # deferred: the database layer (SQLAlchemy, about 0.3 s) after READY (tests/cli/test_startup.py)
    from observer.db.backup import make_backup

    done = threading.Event()
    beating = threading.Thread(target=_beat, args=(notifier, done), name="beat", daemon=True)
    beating.start()
    try:
        return make_backup(settings, config)
    except BackupError as exc:
        return exc
    except Exception as exc:  # anything else still ends as a failed backup, alerted
        return BackupError(f"backup failed: {type(exc).__name__}: {exc}")
    finally:
        done.set()
        beating.join()


def _beat(notifier: Heartbeat, done: threading.Event) -> None:
    """Beat to the supervisor until ``done``."""
    while True:
        notifier.beat()
        if done.wait(notifier.interval_s):
            return
