"""Settings of the bus between hosts: tcp endpoints and their mandatory CURVE keys.

``[bus] ingest_endpoint`` and ``feed_endpoint`` are empty by default: ``ipc://`` sockets
under the run directory, one host. Set to ``tcp://host:port`` (the writer's address: the
writer binds it, everyone else connects to it) they carry the bus between hosts, and then
CURVE is mandatory: a configuration with a tcp endpoint and no ``[bus.curve] key`` is refused
when it is loaded. The keys themselves are read when a process starts (`observer.transport`).
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from observer.config_types import Strict

__all__ = ["TCP_ENDPOINT", "CurveSettings", "KeyName", "check_control_endpoint", "check_endpoints"]

KeyName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

TCP_ENDPOINT = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")


class CurveSettings(Strict, frozen=True):
    """The host's CURVE key pair, the writer's public key and (on the writer) the allow-list.

    Key files live in ``keys_dir`` as ``<name>.key`` (public) and ``<name>.key_secret``
    (owner-only), written by ``observer keys generate --name NAME``.
    """

    keys_dir: str = "var/keys"
    key: KeyName | None = None  # this host's key pair; required with a tcp endpoint
    server_key: KeyName = "writer"  # the writer's public key (<keys_dir>/<server_key>.key)
    # The writer's allow-list: client key name -> the sources that key may send as
    # (shell patterns, "track_b*"). Any other key is refused; a frame with a source its
    # key may not use is refused and alerted, never stored.
    clients: dict[KeyName, tuple[str, ...]] = msgspec.field(default_factory=dict)


def check_endpoints(ingest: str, feed: str, curve: CurveSettings) -> None:
    """Refuse a malformed endpoint, and a tcp endpoint without CURVE keys (ValueError)."""
    for name, endpoint in (("ingest_endpoint", ingest), ("feed_endpoint", feed)):
        if not endpoint or endpoint.startswith("ipc://"):
            continue
        _check_tcp(f"bus.{name}", endpoint, "tcp://host:port or ipc://path", curve)


def check_control_endpoint(endpoint: str, curve: CurveSettings, operators: tuple[str, ...]) -> None:
    """Refuse a malformed control endpoint, or one over tcp without CURVE or operators."""
    if not endpoint:
        return
    _check_tcp("supervisor.control_endpoint", endpoint, "tcp://host:port", curve)
    if not operators:
        raise ValueError(
            "supervisor.control_endpoint is tcp: list the operators' public keys allowed to "
            "use it in [supervisor] operators (`observer keys generate --name NAME`)"
        )


def _check_tcp(name: str, endpoint: str, expected: str, curve: CurveSettings) -> None:
    match = TCP_ENDPOINT.match(endpoint)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"{name} = {endpoint!r}: expected {expected}")
    if curve.key is None:
        raise ValueError(
            f"{name} is tcp, and tcp is never plaintext: set [bus.curve] key to this "
            "host's key pair (`observer keys generate --name NAME`)"
        )
