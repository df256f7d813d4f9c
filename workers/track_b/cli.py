"""``observer track-b run``: the ``track_b`` session worker (context sync, slots, streams).

Started by the supervisor before full operation (context sync runs at 09:29:50); exits 0 on
SIGTERM, 1 when the bus fails, 2 on bad configuration. Pins: ``observer ctl slots``. The
worker's database, KIS and WebSocket code loads once it has told the supervisor it is READY,
so that a restart is quick.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from observer.cli_support import start_worker
from workers.track_b import SOURCE

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Track B: real-time slots chosen by triggers.")


@app.callback()
def _group() -> None:
    """Keep ``run`` a subcommand (typer collapses a one-command app)."""


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Run Track B until SIGTERM (the supervisor's ``track_b`` program)."""
    worker = start_worker("observer track-b", SOURCE, config, kis=True)
    from workers.track_b.worker import TrackB

    async def day(stop: asyncio.Event) -> None:
        await TrackB(worker.settings, worker.clock, worker.producer, worker.notifier, stop).run()
        await stop.wait()  # the day is done: idle until the supervisor stops us

    worker.run(day)
