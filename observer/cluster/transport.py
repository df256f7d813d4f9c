"""Where this process finds the bus, and the CURVE keys it needs to reach it.

`bus_endpoints` gives the configured tcp endpoints or, by default, the ipc sockets under the
run directory; `bind_endpoints`, what the writer binds (the same, or ``[bus] ingest_bind``
and ``feed_bind`` behind NAT). Over tcp, `client_curve` (producers, feed subscribers) and
`server_curve` (the writer) load the key files named in ``[bus.curve]``; a missing or unsafe
key file is a `ConfigError` that names the file, never a key's secret part.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import zmq

from bus.curve import (
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    ClientCurve,
    KeyPair,
    ServerCurve,
    load_key_pair,
    load_public_key,
)
from bus.endpoints import Endpoints, local_endpoints
from bus.errors import KeyFileError
from bus.feed import FeedSubscriber
from observer.cluster.settings import BusSettings
from observer.errors import ConfigError
from observer.supervisor.settings import SupervisorSettings

__all__ = [
    "bind_endpoints",
    "bus_endpoints",
    "client_curve",
    "control_curve",
    "feed_subscriber",
    "is_remote",
    "operator_curve",
    "server_curve",
]


def bus_endpoints(bus: BusSettings, run_dir: Path) -> Endpoints:
    """The writer's ingest and feed endpoints: configured, else ipc under ``run_dir``."""
    local = local_endpoints(run_dir)
    return Endpoints(
        ingest=bus.ingest_endpoint or local.ingest,
        feed=bus.feed_endpoint or local.feed,
    )


def bind_endpoints(bus: BusSettings, run_dir: Path) -> Endpoints:
    """What the writer binds: ``[bus] ingest_bind`` / ``feed_bind``, else `bus_endpoints`."""
    connect = bus_endpoints(bus, run_dir)
    return Endpoints(
        ingest=bus.ingest_bind or connect.ingest,
        feed=bus.feed_bind or connect.feed,
    )


def feed_subscriber(bus: BusSettings, run_dir: Path, prefixes: Iterable[str]) -> FeedSubscriber:
    """A subscriber to the writer's feed for ``prefixes``, with CURVE over tcp."""
    return FeedSubscriber(
        zmq.Context.instance(), bus_endpoints(bus, run_dir).feed, prefixes, client_curve(bus)
    )


def is_remote(bus: BusSettings) -> bool:
    """True when an endpoint is tcp (and so CURVE is in use)."""
    return bus.ingest_endpoint.startswith("tcp://") or bus.feed_endpoint.startswith("tcp://")


def client_curve(bus: BusSettings) -> ClientCurve | None:
    """The host's keys and the writer's public key; None when the bus is ipc only."""
    if not is_remote(bus):
        return None
    curve = bus.curve
    keys_dir = Path(curve.keys_dir)
    try:
        return ClientCurve(
            _own_pair(bus), load_public_key(keys_dir / f"{curve.server_key}{PUBLIC_SUFFIX}")
        )
    except KeyFileError as exc:
        raise ConfigError(f"[bus.curve]: {exc}") from None


def server_curve(bus: BusSettings) -> ServerCurve | None:
    """The writer's keys and allow-list (public key -> sources); None when ipc only."""
    if not is_remote(bus):
        return None
    curve = bus.curve
    keys_dir = Path(curve.keys_dir)
    clients: dict[bytes, tuple[str, ...]] = {}
    try:
        for name, sources in curve.clients.items():
            key = load_public_key(keys_dir / f"{name}{PUBLIC_SUFFIX}")
            clients[key] = clients.get(key, ()) + sources
        return ServerCurve(_own_pair(bus), clients)
    except KeyFileError as exc:
        raise ConfigError(f"[bus.curve]: {exc}") from None


def control_curve(bus: BusSettings, supervisor: SupervisorSettings) -> ServerCurve | None:
    """The supervisor's keys and its operators' public keys; None without a tcp control."""
    if not supervisor.control_endpoint:
        return None
    keys_dir = Path(bus.curve.keys_dir)
    try:
        operators = {
            load_public_key(keys_dir / f"{name}{PUBLIC_SUFFIX}"): ()
            for name in supervisor.operators
        }
        return ServerCurve(_own_pair(bus), operators)
    except KeyFileError as exc:
        raise ConfigError(f"[supervisor] operators: {exc}") from None


def operator_curve(keys_dir: Path, key: str, server_key: str) -> ClientCurve:
    """An operator's pair and a supervisor's public key, each a name in ``keys_dir`` or a path.

    A name ``alice`` is ``<keys_dir>/alice.key_secret`` (the pair) or ``<keys_dir>/alice.key``
    (a public key); anything with a ``/`` is the file itself.
    """
    try:
        if "/" in key:
            path = Path(key)
            pair = load_key_pair(path.parent, path.name.removesuffix(SECRET_SUFFIX))
        else:
            pair = load_key_pair(keys_dir, key)
        server = Path(server_key) if "/" in server_key else keys_dir / f"{server_key}.key"
        return ClientCurve(pair, load_public_key(server))
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None


def _own_pair(bus: BusSettings) -> KeyPair:
    curve = bus.curve
    assert curve.key is not None  # checked when the settings were loaded
    return load_key_pair(Path(curve.keys_dir), curve.key)
