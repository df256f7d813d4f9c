"""``observer track-b run``: the ``track_b`` session worker (context sync, slots, streams).

Started by the supervisor before full operation (context sync runs at 09:29:50); exits 0 on
SIGTERM, 1 when the bus fails, 2 on bad configuration. Pins: ``observer ctl slots``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from bus.errors import BusError
from bus.producer import Producer
from observer.cli_exit import fail, settings_or_exit
from observer.clock import Clock, clock_from_env
from observer.config import Settings
from observer.logs import setup_logging
from observer.notify import Notifier
from observer.runtime import producer_for
from workers.track_b.worker import SOURCE, TrackB

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Track B: real-time slots chosen by triggers.")


@app.callback()
def _group() -> None:
    """Keep ``run`` a subcommand (typer collapses a one-command app)."""


def _fail(message: str, code: int) -> NoReturn:
    fail("observer track-b", message, code)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Run Track B until SIGTERM (the supervisor's ``track_b`` program)."""
    settings = settings_or_exit("observer track-b", config)
    setup_logging()
    clock = clock_from_env()
    notifier = Notifier.from_env()
    try:
        producer = producer_for(settings, SOURCE, clock.now_ns)
    except BusError as exc:
        _fail(str(exc), 1)
    notifier.ready()
    try:
        asyncio.run(_run(settings, clock, producer, notifier))
    except BusError as exc:
        _fail(str(exc), 1)
    finally:
        producer.close(drain_timeout=10.0)


async def _run(settings: Settings, clock: Clock, producer: Producer, notifier: Notifier) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await TrackB(settings, clock, producer, notifier, stop).run()
    await stop.wait()  # the day is done: idle until the supervisor stops us
