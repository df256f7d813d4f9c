"""Two hosts on this machine: network namespaces joined by a veth pair, the bus over tcp+CURVE.

Host A (namespace ``obs-a-*``) runs a producer (`harness.loadgen`) with its outbox in A's
own data directory; host B (``obs-b-*``) runs the writer and its SQLite database in B's. Each
process is confined to its namespace (``ip netns exec``), so everything between them crosses
the veth link, which the tests cut with ``ip link set down``. Needs root (CI runs as root);
skipped where namespaces cannot be made.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.curve import generate_key_pair
from tests.supervisor.test_control_tcp import both_hosts
from tests.support import (
    ROOT,
    WriterProcess,
    assert_exactly_once,
    audit,
    audit_command,
    db_rows,
    load_program,
    wait_until,
)

pytestmark = pytest.mark.slow

HOST_A, HOST_B = "10.231.7.1", "10.231.7.2"  # the veth pair's ends, inside our namespaces
_RECORD = struct.Struct("<IIQQ")  # bus.outbox's record header: length, crc, first, last seq
# Events the producer queues while the link is down; 480000 at 4,000/s is a two-minute cut.
CUT_EVENTS = int(os.environ.get("OBSERVER_TEST_CUT_EVENTS", "12000"))
# The cut of the day under two supervisors, in wall seconds (120: two minutes).
CUT_S = float(os.environ.get("OBSERVER_TEST_CUT_S", "5"))
DAY_RATE = 2_000  # events/s of the collectors' producer
CONTROL_PORT = 5703


def in_namespace(namespace: str, module: str) -> list[str]:
    """The start of a command line run on a host: ``python -m module`` in its namespace."""
    return ["ip", "netns", "exec", namespace, sys.executable, "-m", module]


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


@contextlib.contextmanager
def namespaces(prefix: str = "obs") -> Iterator[Hosts]:
    """Two namespaces ``PREFIX-a-*`` and ``PREFIX-b-*`` joined by a veth pair; skips without."""
    if not _namespaces_work():
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 100_000
    a, b = f"{prefix}-a-{tag}", f"{prefix}-b-{tag}"
    link_a, link_b = f"{prefix[0]}a{tag}", f"{prefix[0]}b{tag}"
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


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with namespaces() as both:
        yield both


def host_config(root: Path, keys: Path, key: str, extra: str = "", port: int = 5701) -> str:
    """One host's configuration: its own data directory, the bus over tcp to host B.

    The writer's ingest listens on ``port``, its feed on the next one.
    """
    return (
        f'[paths]\ndata_dir = "{root}"\nrun_dir = "{root / "run"}"\n'
        f'[database]\nurl = "sqlite:///{root / "observer.db"}"\n'
        f'[bus]\ningest_endpoint = "tcp://{HOST_B}:{port}"\n'
        f'feed_endpoint = "tcp://{HOST_B}:{port + 1}"\n'
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
        args = [
            *in_namespace(self.namespace, "observer"),
            "writer",
            "--config",
            str(self.config),
        ]
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
            [
                *in_namespace(self.namespace, "harness.loadgen"),
                "--source",
                self.source,
                "--events",
                str(events),
                "--rate",
                str(rate),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "OBSERVER_CONFIG": str(self.config)},
        )
        return self

    def outboxed(self) -> int:
        """The highest seq written to the outbox on A's disk."""
        return outboxed(self.outbox)

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


def outboxed(outbox: Path) -> int:
    """The highest seq written to an outbox (read from its record headers)."""
    last = 0
    for segment in sorted(outbox.glob("*.seg")):
        data = segment.read_bytes()
        at = 0
        while at + _RECORD.size <= len(data):
            length, _crc, _first, record_last = _RECORD.unpack_from(data, at)
            if at + _RECORD.size + length > len(data):
                break  # being written
            last = max(last, record_last)
            at += _RECORD.size + length
    return last


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
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
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


# ---------------------------------------------------------------- a day under two supervisors


class HostSupervisor:
    """`observer supervise --role ROLE` inside a namespace, its control also on tcp."""

    def __init__(
        self,
        root: Path,
        keys: Path,
        key: str,
        address: str,
        extra: str,
        name: str = "",
        port: int = 5701,
    ) -> None:
        """``port``: the writer's ingest (the feed the next, control the one after)."""
        root.mkdir(parents=True)
        self.root = root
        self.config = root / "observer.toml"
        control = (
            # kis_preflight: the simulator is started beside the hosts, not before them
            f'[supervisor]\nmetrics_port = 0\noperators = ["alice"]\nhost = "{name}"\n'
            "kis_preflight = false\n"
            f'control_endpoint = "tcp://{address}:{port + 2}"\n'
        )
        self.config.write_text(host_config(root, keys, key, control + extra, port))
        self.log = root / "supervisor.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, namespace: str, role: str, *options: str) -> HostSupervisor:
        """``options``: more of `observer supervise`'s (``--clock SPEC``)."""
        args = [
            *in_namespace(namespace, "observer"),
            "supervise",
            "--config",
            str(self.config),
            "--role",
            role,
            *options,
        ]
        with self.log.open("ab") as log:  # `ip netns exec` execs: the pid is the supervisor's
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=ROOT)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(90)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def power_off(self, namespace: str) -> None:
        """The host goes down at once: SIGKILL to every process of its namespace."""
        for pid in map(int, _pids(namespace)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(30)
        wait_until(lambda: not _pids(namespace), 30, f"every process of {namespace} gone")


def stop_hosts(*hosts: HostSupervisor) -> list[int]:
    """Stop each host's supervisor (-1: it was not running); kill any left after."""
    stopped = [each.stop() if each.proc and each.proc.poll() is None else -1 for each in hosts]
    for each in hosts:
        each.kill()
    return stopped


def _pids(namespace: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=30
    ).stdout.split()


def loadgen_report(root: Path) -> dict[str, Any]:
    """The last report line a host's supervised `harness.loadgen` wrote to its log."""
    lines = (root / "log" / "load.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"source"')][-1]


def ctl_in(namespace: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`observer ctl` run on a host (its namespace), as an operator there would."""
    return subprocess.run(
        [
            *in_namespace(namespace, "observer"),
            "ctl",
            "--config",
            str(config),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )


@pytest.mark.timeout(300 + int(CUT_S) * 2)
def test_a_day_on_two_hosts_survives_the_store_hosts_link_cut_and_its_reboot(
    hosts: Hosts, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    for name in ("writer", "collectors", "alice"):
        generate_key_pair(keys, name)
    programs = (  # one program table for both hosts; each runs its role's part
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
        '[programs.notifier]\nkind = "daemon"\nrole = "store"\n'
        'command = ["observer", "notifier", "run"]\ndepends_on = ["writer"]\n'
        # At stop the load drains to the store host over the link, then prints its report:
        # a loaded machine may need more than the default 10 s before it would be killed.
        + load_program(rate=DAY_RATE, extra="stop_grace_s = 60.0")
    )
    clients = (
        '[bus.curve.clients]\ncollectors = ["load", "supervisor_collectors"]\nwriter = ["*"]\n'
    )
    store = HostSupervisor(tmp_path / "host-b", keys, "writer", HOST_B, clients + programs)
    collectors = HostSupervisor(tmp_path / "host-a", keys, "collectors", HOST_A, programs)
    url = f"sqlite:///{store.root / 'observer.db'}"
    both = both_hosts(HOST_B, CONTROL_PORT, HOST_A, CONTROL_PORT)
    both[both.index("store")] = "writer"  # the store host's key pair is named "writer" here

    def status(*endpoints: str) -> dict[str, object]:
        shown = ctl_in(hosts.a, collectors.config, *endpoints, "--json", "status")
        assert shown.returncode in (0, 1), shown.stderr
        report: dict[str, object] = json.loads(shown.stdout)
        return report

    def committed() -> int:
        found = audit(url).get("load")
        return found.max_seq if found is not None else 0

    try:
        collectors.start(hosts.a, "collectors")
        store.start(hosts.b, "store")
        day = wait_until(lambda: (r := status(*both))["healthy"] and r, 120, "both hosts up")
        shown = {h["host"]: sorted(p["name"] for p in h["programs"]) for h in day["hosts"]}  # type: ignore[attr-defined]
        assert shown == {
            f"{HOST_B}:{CONTROL_PORT}": ["notifier", "writer"],
            f"{HOST_A}:{CONTROL_PORT}": ["load"],
        }
        wait_until(lambda: committed() > 2 * DAY_RATE, 60, "commits before the cut")

        hosts.link(up=False)
        cut_at = time.monotonic()
        at_cut = committed()
        outbox = collectors.root / "run" / "outbox" / "load"
        wait_until(lambda: outboxed(outbox) >= at_cut + CUT_S * DAY_RATE, 60 + 2 * CUT_S, "a cut")
        # The collectors' host answers its operator meanwhile; its worker keeps collecting.
        # The store host, cut off, is named as silent, and both together are unhealthy.
        during: dict[str, Any] = status(*both)
        silent, answered = during["hosts"]  # in the order of both: the store's first
        assert not during["healthy"] and not silent["ok"] and answered["ok"]
        assert silent["problems"][0].startswith(f"no supervisor answered at tcp://{HOST_B}")
        assert [(p["name"], p["state"]) for p in answered["programs"]] == [("load", "running")]
        held = outboxed(outbox)
        assert committed() < held
        # The store host loses power while cut off, and boots again once the link is back:
        # its supervisor starts its writer anew, over the same database.
        store.power_off(hosts.b)
        hosts.link(up=True)
        down_s = time.monotonic() - cut_at
        restored_at = time.monotonic()
        store.start(hosts.b, "store")
        wait_until(lambda: committed() >= held, 300, "the outbox delivered")
        drain_s = time.monotonic() - restored_at
        # The store host's notifier starts once its writer is ready, which may be a moment
        # after the writer took the outbox.
        wait_until(lambda: status(*both)["healthy"], 60, "both hosts healthy again")
    finally:
        stopped = stop_hosts(collectors, store)
    assert stopped == [0, 0], store.log.read_text()[-2000:] + collectors.log.read_text()[-2000:]
    found = {source: a.max_seq for source, a in audit(url).items()}
    assert set(found) == {"load", "supervisor", "supervisor_collectors"}
    assert_exactly_once(url, found)  # 0 lost, 0 duplicated
    report = loadgen_report(collectors.root)
    assert report["drained"] and report["last_seq"] == found["load"]
    checked = audit_command(store.config)
    assert checked.returncode == 0, checked.stdout
    # Two boots of the store host: its supervisor spawned the writer once in each.
    spawned = db_rows(
        url, "select pid from worker_events where worker = 'writer' and action = 'spawned'"
    )
    assert len(spawned) == 2, spawned
    print(
        f"\nlink down {down_s:.1f}s; outbox held {held - at_cut} events beyond the last "
        f"commit; delivered {drain_s:.1f}s after the link came back; {found['load']} events"
    )
