"""Two hosts on this machine: network namespaces joined by a veth pair, the bus over tcp+CURVE.

Host A (namespace ``obs-a-*``) runs a producer (`harness.loadgen`) with its outbox in A's
own data directory; host B (``obs-b-*``) runs the writer and its SQLite database in B's. Each
process is confined to its namespace (``ip netns exec``), so everything between them crosses
the veth link, which the tests cut with ``ip link set down``. Needs root (CI runs as root);
skipped where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.curve import generate_key_pair
from tests.support import ROOT, WriterProcess, assert_exactly_once, wait_until

pytestmark = pytest.mark.slow

HOST_A, HOST_B = "10.231.7.1", "10.231.7.2"  # the veth pair's ends, inside our namespaces
_RECORD = struct.Struct("<IIQQ")  # bus.outbox's record header: length, crc, first, last seq
# Events the producer queues while the link is down; 480000 at 4,000/s is a two-minute cut.
CUT_EVENTS = int(os.environ.get("OBSERVER_TEST_CUT_EVENTS", "12000"))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"obs-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    _ip("netns", "del", probe)
    return True


@dataclass
class Hosts:
    """Two namespaces ``a`` and ``b``, and the veth end in ``b`` that the tests cut."""

    a: str
    b: str
    link_b: str

    def link(self, up: bool) -> None:
        _ip("-n", self.b, "link", "set", self.link_b, "up" if up else "down")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if not _namespaces_work():
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 100_000
    a, b = f"obs-a-{tag}", f"obs-b-{tag}"
    link_a, link_b = f"oa{tag}", f"ob{tag}"
    _ip("netns", "add", a)
    _ip("netns", "add", b)
    try:
        _ip("link", "add", link_a, "netns", a, "type", "veth", "peer", "name", link_b, "netns", b)
        for ns, link, address in ((a, link_a, HOST_A), (b, link_b, HOST_B)):
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield Hosts(a, b, link_b)
    finally:
        _ip("netns", "del", a)  # takes the veth pair with it
        _ip("netns", "del", b)


def host_config(root: Path, keys: Path, key: str, extra: str = "") -> str:
    """One host's configuration: its own data directory, the bus over tcp to host B."""
    return (
        f'[paths]\ndata_dir = "{root}"\nrun_dir = "{root / "run"}"\n'
        f'[database]\nurl = "sqlite:///{root / "observer.db"}"\n'
        f'[bus]\ningest_endpoint = "tcp://{HOST_B}:5701"\nfeed_endpoint = "tcp://{HOST_B}:5702"\n'
        "ack_timeout_ms = 1000\n"
        f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "{key}"\n{extra}'
    )


class NamespacedWriter(WriterProcess):
    """The writer of host B, started inside B's namespace."""

    def __init__(self, root: Path, keys: Path, namespace: str) -> None:
        root.mkdir(parents=True)
        super().__init__(root, f"sqlite:///{root / 'observer.db'}")
        self.config.write_text(
            host_config(root, keys, "writer", '[bus.curve.clients]\ncollectors = ["p*"]\n')
        )
        self.namespace = namespace

    def start(self, wait: bool = True) -> NamespacedWriter:
        args = ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "observer",
                "writer", "--config", str(self.config)]  # fmt: skip
        with self.log.open("ab") as log:  # `ip netns exec` execs: the pid is the writer's
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT)
        self.starts += 1
        if wait:
            wait_until(
                lambda: self.log.read_text().count("writer ready") >= self.starts, 60, "ready"
            )
        return self


class NamespacedProducer:
    """`harness.loadgen` on host A: its settings (and so its outbox) are host A's."""

    def __init__(self, root: Path, keys: Path, namespace: str, source: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "observer.toml"
        self.config.write_text(host_config(root, keys, "collectors"))
        self.outbox = root / "run" / "outbox" / source
        self.namespace = namespace
        self.source = source
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, events: int, rate: float) -> NamespacedProducer:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "harness.loadgen",
             "--source", self.source, "--events", str(events), "--rate", str(rate)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "OBSERVER_CONFIG": str(self.config)},
        )  # fmt: skip
        return self

    def outboxed(self) -> int:
        """The highest seq written to the outbox on A's disk (read from the record headers)."""
        last = 0
        for segment in sorted(self.outbox.glob("*.seg")):
            data = segment.read_bytes()
            at = 0
            while at + _RECORD.size <= len(data):
                length, _crc, _first, record_last = _RECORD.unpack_from(data, at)
                if at + _RECORD.size + length > len(data):
                    break  # being written
                last = max(last, record_last)
                at += _RECORD.size + length
        return last

    def result(self, timeout: float = 300) -> dict[str, object]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err.decode()
        report: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        return report

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


@dataclass
class TwoHosts:
    hosts: Hosts
    writer: NamespacedWriter
    producer: NamespacedProducer


@pytest.fixture
def two_hosts(hosts: Hosts, tmp_path: Path) -> Iterator[TwoHosts]:
    keys = tmp_path / "keys"  # each host's files would be copied; one folder stands for both
    generate_key_pair(keys, "writer")
    generate_key_pair(keys, "collectors")
    writer = NamespacedWriter(tmp_path / "host-b", keys, hosts.b)
    producer = NamespacedProducer(tmp_path / "host-a", keys, hosts.a, "p0")
    try:
        yield TwoHosts(hosts, writer.start(), producer)
    finally:
        producer.kill()
        writer.kill()


def test_a_producer_on_one_host_delivers_to_the_writer_on_another_exactly_once(
    two_hosts: TwoHosts,
) -> None:
    report = two_hosts.producer.start(events=20_000, rate=0).result()
    assert report["drained"] is True
    assert_exactly_once(two_hosts.writer.url, {"p0": 20_000})
    audit = subprocess.run(
        [sys.executable, "-m", "observer", "audit", "--config", str(two_hosts.writer.config)],
        capture_output=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stdout.decode()
    # The producer's host cannot reach the writer's files: nothing but the link joins them.
    assert not (two_hosts.producer.outbox.parent.parent / "ingest.sock").exists()


@pytest.mark.timeout(120 + CUT_EVENTS // 1000)
def test_a_cut_link_keeps_the_events_in_the_outbox_and_delivers_them_after(
    two_hosts: TwoHosts,
) -> None:
    backlog = CUT_EVENTS
    events = backlog + 28_000
    producer, writer = two_hosts.producer, two_hosts.writer
    producer.start(events=events, rate=4_000)
    wait_until(lambda: writer.offsets().get("p0", 0) > 2_000, 60, "commits before the cut")
    two_hosts.hosts.link(up=False)
    cut_at = time.monotonic()
    committed_at_cut = writer.offsets()["p0"]
    # While the link is down the producer goes on: its outbox on A's disk keeps the events.
    wait_until(
        lambda: producer.outboxed() >= committed_at_cut + backlog, 60 + backlog / 2000, "a backlog"
    )
    held = producer.outboxed()
    assert writer.offsets()["p0"] < held  # the writer has not seen them: they wait on A's disk
    two_hosts.hosts.link(up=True)
    down_s = time.monotonic() - cut_at
    restored_at = time.monotonic()
    wait_until(lambda: writer.offsets().get("p0", 0) >= held, 120, "the backlog delivered")
    drain_s = time.monotonic() - restored_at
    report = producer.result()
    assert report["drained"] is True
    assert_exactly_once(writer.url, {"p0": events})
    print(
        f"\nlink down {down_s:.1f}s; outbox held {held - committed_at_cut} events beyond the "
        f"last commit; delivered {drain_s:.1f}s after the link came back; "
        f"resends {report['resends']}, reconnects {report['reconnects']}"
    )
