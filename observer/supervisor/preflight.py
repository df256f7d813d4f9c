"""Before the supervisor starts anything, whether this host's programs can reach KIS at all.

A configuration pointing at KIS without credentials, or at a simulator nobody started, would
start every KIS program only for each to fail (``ConnectError``, a missing key) and alert on
its own. One message at start, saying what to set, replaces that storm. The check is quick:
credentials are read from the environment or their files, and the simulator is asked for one
TCP connection, retried a few times within `SIM_WAIT_S` wall seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from observer.errors import ConfigError
from observer.kis.credentials import configured_credentials
from observer.kis.settings import KisSettings
from observer.supervisor.settings import ProgramSettings

__all__ = ["KIS_COMMANDS", "SIM_WAIT_S", "kis_preflight", "talks_to_kis"]

# The `observer` verbs whose programs call KIS (REST, WebSocket, tokens or master files).
KIS_COMMANDS = frozenset(
    {"track-a", "track-b", "gap-recovery", "master-file", "universe", "token", "readiness", "etf"}
)
SIM_WAIT_S = 2.0  # wall seconds spent at most waiting for the simulator's port
_ATTEMPT_S = 0.5


def talks_to_kis(programs: Iterable[ProgramSettings], role: str) -> bool:
    """Whether this host's ``role`` starts one of the KIS programs on its own.

    A daemon or session program, or a job with a schedule or run at start; not a job only an
    operator runs (``observer ctl run``), which meets its own failure when run.
    """
    for program in programs:
        command = program.command
        # unset: the writer's host is "store", every other program's "collectors"
        own = program.role or ("store" if command[:2] == ("observer", "writer") else "collectors")
        kis = len(command) > 1 and command[0] == "observer" and command[1] in KIS_COMMANDS
        started = program.kind != "job" or bool(program.schedule) or program.run_on_start
        if program.enabled and role in ("all", own) and kis and started:
            return True
    return False


def kis_preflight(kis: KisSettings, wait_s: float = SIM_WAIT_S) -> str | None:
    """What to set before KIS programs can run, in one message; None if nothing.

    ``environment`` real or paper: every account's credentials must load. ``sim``: the
    simulator's URL must accept a connection within ``wait_s`` wall seconds.
    """
    if kis.environment != "sim":
        try:
            configured_credentials(kis)
        except ConfigError as exc:
            return (
                f'[kis] environment = "{kis.environment}" but {exc} (or an owner-only '
                'credentials_file in its [[kis.accounts]] entry), or set environment = "sim"'
            )
        return None
    if _answers(kis.sim_url, wait_s):
        return None
    return (
        f'[kis] environment = "sim" but no simulator answers at sim_url = "{kis.sim_url}": '
        'start it (observer sim), or set [kis] environment = "real" or "paper" with each '
        "account's credentials (README, production)"
    )


def _answers(url: str, wait_s: float) -> bool:
    """Whether ``url``'s host and port accept a TCP connection within ``wait_s`` (wall)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.05, min(_ATTEMPT_S, left))):
                return True
        except OSError:
            if deadline - time.monotonic() <= _ATTEMPT_S / 2:
                return False
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))  # a refusal is instant
