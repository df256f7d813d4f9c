"""The writer's side of CURVE handshakes that fail before its ZAP is asked.

A client holding another writer's public key fails every handshake before `bus.curve.Gatekeeper`
sees a key, so a socket monitor on the tcp ingest and feed is the only place it shows. Each
failure is counted (``handshake_failures``); the first on an endpoint in a run is logged with a
hint and alerted (``bus_handshake_failed``, a warning), once per endpoint: the monitor never names
the peer. Failures a ZAP refusal causes are the Gatekeeper's (``bus_key_refused``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import zmq
from zmq.utils.monitor import recv_monitor_message

from bus.events import Alert, Event

__all__ = ["HANDSHAKE_FAILED", "HandshakeWatch"]

log = logging.getLogger(__name__)

HANDSHAKE_FAILED = "bus_handshake_failed"
# Not EVENT_HANDSHAKE_FAILED_AUTH: that is ZAP's refusal, alerted by the Gatekeeper per key.
_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL


class HandshakeWatch:
    """Monitor the writer's tcp sockets for failed handshakes; count, log and alert them.

    ``sockets`` maps a role (``ingest``, ``feed``) to a bound socket; only tcp ones need
    watching (ipc has no CURVE). `close` must run before the sockets close.
    """

    def __init__(self, sockets: Mapping[str, tuple[zmq.Socket[bytes], str]]) -> None:
        self.failures = 0
        self._watched = [
            (role, endpoint, socket, socket.get_monitor_socket(_FAILED))
            for role, (socket, endpoint) in sockets.items()
            if endpoint.startswith("tcp://")
        ]
        self._alerted: set[str] = set()

    def check(self) -> list[Event]:
        """Read the failures so far, without waiting; the alerts of first failures."""
        alerts: list[Event] = []
        for role, endpoint, _, monitor in self._watched:
            while True:
                try:
                    message = recv_monitor_message(monitor, flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                if message["event"] & _FAILED:
                    self.failures += 1
                    if endpoint not in self._alerted:
                        self._alerted.add(endpoint)
                        alerts.append(self._first(role, endpoint))
        return alerts

    def close(self) -> None:
        """Stop monitoring (before the watched sockets close)."""
        for _, _, socket, monitor in self._watched:
            socket.disable_monitor()
            monitor.close(linger=0)
        self._watched = []

    def _first(self, role: str, endpoint: str) -> Alert:
        log.error(
            "a client failed the CURVE handshake on the %s endpoint %s: does the client hold "
            "this writer's public key? (further failures are counted in handshake_failures)",
            role,
            endpoint,
        )
        return Alert(
            severity="warning",
            code=HANDSHAKE_FAILED,
            message=(
                f"a client failed the CURVE handshake on the writer's {role} endpoint: "
                "it may hold another writer's public key"
            ),
            context={"endpoint": endpoint, "role": role},
            subject=endpoint,
        )
