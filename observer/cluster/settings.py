"""Settings of the bus between hosts: tcp endpoints and their mandatory CURVE keys.

``[bus] ingest_endpoint`` and ``feed_endpoint`` are empty by default: ``ipc://`` sockets under the
run directory, one host. Set to the writer's ``tcp://host:port`` (it binds, the others connect)
they carry the bus between hosts, and a tcp endpoint without ``[bus.curve] key`` is refused when
the configuration is loaded (keys are read at a process's start: `observer.cluster.transport`).
Behind NAT, ``ingest_bind``, ``feed_bind`` and ``control_bind`` name what the server binds.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from bus.codec import MAX_FRAME_BYTES
from observer.setting_types import Positive, Strict

__all__ = [
    "KEY_NAME",
    "TCP_BIND",
    "TCP_ENDPOINT",
    "CurveSettings",
    "KeyName",
    "check_control_endpoint",
    "check_endpoints",
]

KEY_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # a key pair's name, the stem of its files
KeyName = Annotated[str, Meta(pattern=KEY_NAME)]

TCP_ENDPOINT = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")
# What a server may bind: a tcp endpoint, or ``*`` for every interface.
TCP_BIND = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|\*|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})$")


class CurveSettings(Strict, frozen=True):
    """The host's CURVE key pair, the writer's public key and (on the writer) the allow-list.

    Key files live in ``keys_dir`` as ``<name>.key`` (public) and ``<name>.key_secret``
    (owner-only), written by ``observer keys generate --name NAME``.
    """

    keys_dir: str = "var/keys"
    key: KeyName | None = None  # this host's key pair; required with a tcp endpoint
    server_key: KeyName = "writer"  # the writer's public key (<keys_dir>/<server_key>.key)
    # The writer's allow-list: client key name -> the sources that key may send as
    # (shell patterns, "track_b*"; "*@c2": every source of the host named c2, see
    # `observer.cluster.hosts`). Any other key is refused; a frame with a source its key may not
    # use, or one another key sends as, is refused and alerted, never stored.
    clients: dict[KeyName, tuple[str, ...]] = msgspec.field(default_factory=dict)


def check_endpoints(
    ingest: str, feed: str, curve: CurveSettings, ingest_bind: str = "", feed_bind: str = ""
) -> None:
    """Refuse a malformed endpoint or bind address, tcp without CURVE keys, and half tcp.

    Both endpoints are the writer's sockets, on its host: one over tcp and the other ipc (or
    empty, ipc under the run directory) would have the other hosts follow a local socket
    that nothing binds there, and receive nothing without an error (ValueError).
    """
    for name, endpoint, bind in (
        ("ingest", ingest, ingest_bind),
        ("feed", feed, feed_bind),
    ):
        if endpoint and not endpoint.startswith("ipc://"):
            _check_tcp(f"bus.{name}_endpoint", endpoint, "tcp://host:port or ipc://path", curve)
        _check_bind(f"bus.{name}_bind", bind, f"bus.{name}_endpoint", endpoint)
    for name, what, endpoint, other, other_endpoint in (
        ("feed", "the feed", feed, "ingest", ingest),
        ("ingest", "ingest", ingest, "feed", feed),
    ):
        if other_endpoint.startswith("tcp://") and not endpoint.startswith("tcp://"):
            now = repr(endpoint) if endpoint else "empty: ipc under the run directory"
            raise ValueError(
                f"bus.{name}_endpoint must be tcp too when bus.{other}_endpoint is: {what} "
                f"is the writer's, on its host (it is {now})"
            )


def check_control_endpoint(
    endpoint: str, curve: CurveSettings, operators: tuple[str, ...], bind: str = ""
) -> None:
    """Refuse a malformed control endpoint, or one over tcp without CURVE or operators."""
    _check_bind("supervisor.control_bind", bind, "supervisor.control_endpoint", endpoint)
    if not endpoint:
        return
    _check_tcp("supervisor.control_endpoint", endpoint, "tcp://host:port", curve)
    if not operators:
        raise ValueError(
            "supervisor.control_endpoint is tcp: list the operators' public keys allowed to "
            "use it in [supervisor] operators (`observer keys generate --name NAME`)"
        )


def _check_bind(name: str, bind: str, endpoint_name: str, endpoint: str) -> None:
    """A bind address is a tcp one, and only for a tcp endpoint (ipc binds its own path)."""
    if not bind:
        return
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"{name} is only for a tcp {endpoint_name} (it is {endpoint or 'ipc'!r})")
    match = TCP_BIND.match(bind)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"{name} = {bind!r}: expected tcp://address:port (or tcp://*:port)")


def _check_tcp(name: str, endpoint: str, expected: str, curve: CurveSettings) -> None:
    match = TCP_ENDPOINT.match(endpoint)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"{name} = {endpoint!r}: expected {expected}")
    if curve.key is None:
        raise ValueError(
            f"{name} is tcp, and tcp is never plaintext: set [bus.curve] key to this "
            "host's key pair (`observer keys generate --name NAME`)"
        )


class BusSettings(Strict, frozen=True):
    """Producer tuning shared by every worker."""

    batch_events: Positive = 1000
    linger_ms: Annotated[int, Meta(ge=0)] = 2
    # The largest frame (one ZeroMQ message): producers cut frames below it and refuse a
    # larger event; the writer drops a peer that sends more (ZMQ_MAXMSGSIZE).
    max_frame_bytes: Annotated[int, Meta(ge=64 * 1024)] = MAX_FRAME_BYTES
    max_in_flight: Positive = 20_000
    ack_timeout_ms: Positive = 5000
    backlog_alert_events: Positive = 1_000_000
    # What the writer acknowledges survives a power cut: it commits with fsync (SQLite
    # synchronous=FULL; PostgreSQL synchronous_commit=on) and producers send a frame only
    # once it is fsynced in their outbox. False survives kill -9 only (see the README).
    fsync: bool = True
    # Empty: ipc:// under the run directory. tcp://host:port (the writer's host) needs CURVE.
    ingest_endpoint: str = ""
    feed_endpoint: str = ""
    # Behind NAT: what the writer binds when the endpoints name an address it does not have
    # (tcp://10.0.0.2:5701, tcp://*:5701). Empty: the endpoint itself.
    ingest_bind: str = ""
    feed_bind: str = ""
    curve: CurveSettings = CurveSettings()

    def __post_init__(self) -> None:
        check_endpoints(
            self.ingest_endpoint, self.feed_endpoint, self.curve, self.ingest_bind, self.feed_bind
        )
