"""Track B's WebSocket sessions as the running supervisor reports them (for the readiness job).

Track B owns every account's session; other programs must not open a second one (KIS refuses
it, ``OPSP8996``). They ask the supervisor, whose ``status`` carries Track B's heartbeat.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from observer.kis.account_health import by_account, state_name
from observer.supervisor.control import request

__all__ = ["StreamReport", "stream_report"]

STREAMER = "track_b"


@dataclass(frozen=True, slots=True)
class StreamReport:
    """Track B's session of one account as its heartbeat reports it."""

    state: str  # observer.kis.account_health.STREAM_STATES
    identified: bool


async def stream_report(control_socket: Path, alias: str) -> StreamReport | None:
    """Track B's session of ``alias`` from the supervisor's status; None if Track B is down."""
    try:
        reply = await asyncio.to_thread(request, control_socket, "status", [], 10.0)
    except (OSError, TimeoutError):
        return None  # no supervisor: run by hand, the session is the check's own
    streamer = next((p for p in reply.data.get("programs", []) if p["name"] == STREAMER), None)
    if streamer is None or streamer["state"] != "running":
        return None
    figures = by_account(streamer.get("counters") or {}).get(alias)
    if figures is None or "stream_state" not in figures:
        return StreamReport("unknown", False)
    return StreamReport(state_name(figures["stream_state"]), figures.get("identified") == 1.0)
