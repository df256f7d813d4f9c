"""Two collectors hosts and one store host: three network namespaces on one bridge.

Each collectors host has its own name (``[supervisor] host``), its own CURVE key and its own
data directory; both run the same program table, so both run a ``load`` program, which
sends as ``load@c1`` and ``load@c2``. The store host runs the writer. The writer's
allow-list gives each key its own host's sources (``*@c1``, ``*@c2``). Needs root, like
``test_multihost.py``, whose helpers this uses.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.curve import generate_key_pair
from tests.cluster.test_multihost import (
    CONTROL_PORT,
    HOST_B,
    HostSupervisor,
    _ip,
    _namespaces_work,
    ctl_in,
    loadgen_report,
    outboxed,
)
from tests.support import assert_exactly_once, audit, audit_command, load_program, wait_until

pytestmark = pytest.mark.slow

# One /24 on a bridge in the store's namespace: the store at HOST_B, the writer's address.
C1, C2 = "10.231.7.1", "10.231.7.3"
RATE = 1_000  # events/s of each collectors host's producer
CUT_S = float(os.environ.get("OBSERVER_TEST_CUT_S", "3"))  # c2's link down, wall seconds


@dataclass
class ThreeHosts:
    """Namespaces ``store``, ``c1`` and ``c2``; the store's end of each link, to cut it."""

    store: str
    c1: str
    c2: str
    links: dict[str, str]

    def link(self, host: str, up: bool) -> None:
        _ip("-n", self.store, "link", "set", self.links[host], "up" if up else "down")


@pytest.fixture
def three_hosts() -> Iterator[ThreeHosts]:
    if not _namespaces_work():
        pytest.skip("network namespaces need root and iproute2")
    tag = os.getpid() % 100_000
    store, c1, c2 = f"obs-s-{tag}", f"obs-c1-{tag}", f"obs-c2-{tag}"
    bridge = f"br{tag}"
    for ns in (store, c1, c2):
        _ip("netns", "add", ns)
    try:
        _ip("-n", store, "link", "add", bridge, "type", "bridge")
        _ip("-n", store, "addr", "add", f"{HOST_B}/24", "dev", bridge)
        _ip("-n", store, "link", "set", bridge, "up")
        _ip("-n", store, "link", "set", "lo", "up")
        links = {}
        for n, (ns, address) in enumerate(((c1, C1), (c2, C2)), 1):
            near, far = f"oc{n}{tag}", f"os{n}{tag}"
            _ip(
                "link",
                "add",
                near,
                "netns",
                ns,
                "type",
                "veth",
                "peer",
                "name",
                far,
                "netns",
                store,
            )
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", near)
            for each in (near, "lo"):
                _ip("-n", ns, "link", "set", each, "up")
            _ip("-n", store, "link", "set", far, "master", bridge)
            _ip("-n", store, "link", "set", far, "up")
            links[f"c{n}"] = far
        yield ThreeHosts(store, c1, c2, links)
    finally:
        for ns in (store, c1, c2):
            _ip("netns", "del", ns)  # takes the veth pairs and the bridge with them


@pytest.mark.timeout(300 + int(CUT_S) * 2)
def test_two_named_collectors_hosts_deliver_to_one_writer_each_under_its_own_sources(
    three_hosts: ThreeHosts, tmp_path: Path
) -> None:
    hosts = three_hosts
    keys = tmp_path / "keys"  # each host's files would be copied; one folder stands for all
    for name in ("writer", "c1", "c2", "alice"):
        generate_key_pair(keys, name)
    programs = (  # one program table for every host; each runs its role's part
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
        + load_program(rate=RATE)
    )
    clients = '[bus.curve.clients]\nc1 = ["*@c1"]\nc2 = ["*@c2"]\nwriter = ["*"]\n'
    store = HostSupervisor(tmp_path / "store", keys, "writer", HOST_B, clients + programs)
    c1 = HostSupervisor(tmp_path / "c1", keys, "c1", C1, programs, name="c1")
    c2 = HostSupervisor(tmp_path / "c2", keys, "c2", C2, programs, name="c2")
    url = f"sqlite:///{store.root / 'observer.db'}"
    every = ["--key", "alice"]
    for address, key in ((HOST_B, "writer"), (C1, "c1"), (C2, "c2")):
        every += ["--endpoint", f"tcp://{address}:{CONTROL_PORT}", "--server-key", key]

    def status() -> dict[str, object]:
        shown = ctl_in(hosts.c1, c1.config, *every, "--json", "status")
        assert shown.returncode in (0, 1), shown.stderr
        report: dict[str, object] = json.loads(shown.stdout)
        return report

    def committed(source: str) -> int:
        found = audit(url).get(source)
        return found.max_seq if found is not None else 0

    try:
        c1.start(hosts.c1, "collectors")
        c2.start(hosts.c2, "collectors")
        store.start(hosts.store, "store")
        day = wait_until(lambda: (r := status())["healthy"] and r, 120, "three hosts up")
        shown = {
            (h["host"], h["host_name"], h["bus_source"]): sorted(p["name"] for p in h["programs"])
            for h in day["hosts"]  # type: ignore[attr-defined]
        }
        assert shown == {
            (f"{HOST_B}:{CONTROL_PORT}", "", "supervisor"): ["writer"],
            (f"{C1}:{CONTROL_PORT}", "c1", "supervisor@c1"): ["load"],
            (f"{C2}:{CONTROL_PORT}", "c2", "supervisor@c2"): ["load"],
        }
        wait_until(
            lambda: min(committed("load@c1"), committed("load@c2")) > 2 * RATE, 60, "commits"
        )

        # One collectors host cut off: the other goes on; the cut one keeps its outbox.
        hosts.link("c2", up=False)
        at_cut = {s: committed(s) for s in ("load@c1", "load@c2")}
        outbox = c2.root / "run" / "outbox" / "load@c2"
        wait_until(lambda: outboxed(outbox) >= at_cut["load@c2"] + CUT_S * RATE, 60, "a cut")
        assert committed("load@c1") >= at_cut["load@c1"] + CUT_S * RATE * 0.5
        held = outboxed(outbox)
        assert committed("load@c2") < held
        hosts.link("c2", up=True)
        restored_at = time.monotonic()
        wait_until(lambda: committed("load@c2") >= held, 120, "c2's outbox delivered")
        drain_s = time.monotonic() - restored_at
        assert status()["healthy"]
    finally:
        stopped = [
            each.stop() if each.proc and each.proc.poll() is None else -1
            for each in (c1, c2, store)
        ]
        for each in (c1, c2, store):
            each.kill()
    logs = "".join(each.log.read_text()[-1500:] for each in (c1, c2, store))
    assert stopped == [0, 0, 0], logs
    found = {source: a.max_seq for source, a in audit(url).items()}
    assert set(found) == {"load@c1", "load@c2", "supervisor@c1", "supervisor@c2", "supervisor"}
    assert_exactly_once(url, found)  # 0 lost, 0 duplicated
    for host in (c1, c2):
        report = loadgen_report(host.root)
        assert report["drained"] and report["last_seq"] == found[report["source"]]
    checked = audit_command(store.config)
    assert checked.returncode == 0, checked.stdout
    assert "load@c1" in checked.stdout and "load@c2" in checked.stdout
    writer_log = (store.root / "log" / "writer.log").read_text()
    assert "refused frames" not in writer_log and "refused_sources=0" in writer_log
    print(
        f"\nc2 cut {CUT_S:g}s; c2's outbox held {held - at_cut['load@c2']} events beyond its "
        f"last commit, delivered {drain_s:.1f}s after the link came back; "
        + ", ".join(f"{s} {n}" for s, n in sorted(found.items()))
    )
