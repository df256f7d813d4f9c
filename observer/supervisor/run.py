"""`observer supervise`: the supervisor on its own event loop, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from observer.calendar.clock import Clock
from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.supervisor.core import Supervisor, SupervisorLocked
from observer.supervisor.preflight import kis_preflight, talks_to_kis

__all__ = ["run_supervisor"]

log = logging.getLogger(__name__)


def run_supervisor(settings: Settings, config_path: Path, clock: Clock) -> int:
    """Supervise until SIGTERM or SIGINT; return the exit code.

    0 after a stop; 1, with the traceback logged, when one of the supervisor's own tasks
    failed (its children were stopped first): supervisord restarts it; 2, in one line, when
    a file its configuration names cannot be used at start (an operator's key), or when this
    host's KIS programs could not reach KIS (`kis_preflight`: no credentials, no simulator).

    Raises
    ------
    SupervisorLocked
        Another supervisor runs with this run directory.
    """

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            supervisor = Supervisor(settings, config_path, clock)
        except ConfigError as exc:  # a file its configuration names (a key): no traceback
            log.critical("the supervisor cannot start: %s", exc)
            return 2
        except OSError as exc:  # its run folder: where it cannot be created, one line
            if exc.filename is None:
                raise
            log.critical("the supervisor cannot start: %s: %s", exc.filename, exc.strerror)
            return 2
        return await supervisor.run(stop)

    own = settings.supervisor
    if own.kis_preflight and talks_to_kis(settings.programs.values(), own.role):
        missing = kis_preflight(settings.kis)
        if missing is not None:  # before any program starts: one message, not a storm
            log.critical("the supervisor will not start: %s", missing)
            return 2
    try:
        return asyncio.run(main())
    except SupervisorLocked:
        raise
    except Exception as exc:
        log.critical("the supervisor failed: %s", exc, exc_info=exc)
        return 1
