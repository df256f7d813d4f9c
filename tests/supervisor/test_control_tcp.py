"""Control over tcp (CURVE, operator keys) and roles, with real supervisors on loopback tcp.

The two-host runs in network namespaces are in ``test_multihost.py``; here both "hosts" are
supervisors on this machine, each with its own data directory, joined by loopback tcp.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import msgspec
import psutil
import pytest
import zmq

from bus.curve import ClientCurve, generate_key_pair, load_key_pair
from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.cluster.transport import operator_curve
from observer.config.load import load_settings
from observer.errors import ConfigError
from observer.supervisor.control import MAX_REQUEST_BYTES
from observer.supervisor.control_tcp import ControlHandshakeFailed, request_tcp
from tests.supervisor.test_prometheus import _scrape, _value
from tests.support import (
    ROOT,
    WRITER_PROGRAM,
    SupervisorProcess,
    assert_exactly_once,
    audit,
    free_port,
    load_program,
    wait_until,
)

pytestmark = pytest.mark.slow


def ctl(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    head = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [sys.executable, "-m", "observer", "ctl", *head, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


# ---------------------------------------------------------------- configuration


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observer.toml"
    path.write_text(text)
    return path


def test_a_tcp_control_endpoint_is_never_plaintext(tmp_path: Path) -> None:
    tcp = '[supervisor]\ncontrol_endpoint = "tcp://127.0.0.1:5703"\noperators = ["alice"]\n'
    with pytest.raises(ConfigError, match="never plaintext"):
        load_settings(_config(tmp_path, tcp))
    keyed = '[bus.curve]\nkey = "host"\n'
    no_operators = '[supervisor]\ncontrol_endpoint = "tcp://127.0.0.1:5703"\n' + keyed
    with pytest.raises(ConfigError, match="operators"):
        load_settings(_config(tmp_path, no_operators))
    ipc = '[supervisor]\ncontrol_endpoint = "ipc:///tmp/x"\noperators = ["alice"]\n' + keyed
    with pytest.raises(ConfigError, match="expected tcp://host:port"):
        load_settings(_config(tmp_path, ipc))
    assert load_settings(_config(tmp_path, tcp + keyed)).supervisor.operators == ("alice",)
    unbound = '[supervisor]\ncontrol_bind = "tcp://127.0.0.1:5703"\n' + keyed
    with pytest.raises(ConfigError, match=r"only for a tcp supervisor\.control_endpoint"):
        load_settings(_config(tmp_path, unbound))
    with pytest.raises(ConfigError, match=r"expected tcp://address:port \(or tcp://\*:port\)"):
        load_settings(_config(tmp_path, tcp + 'control_bind = "127.0.0.1:5703"\n' + keyed))
    nat = tcp + 'control_bind = "tcp://*:5703"\n' + keyed
    assert load_settings(_config(tmp_path, nat)).supervisor.control_bind == "tcp://*:5703"
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "observer",
            "supervise",
            "--config",
            str(tmp_path / "observer.toml"),
            "--role",
            "writers",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert wrong.returncode == 2 and "expected all, store or collectors" in wrong.stderr
    # The client refuses anything but tcp too (and so never sends a request in clear).
    refused = ctl(
        "--endpoint", "http://127.0.0.1:5703", "--key", "/x", "--server-key", "/y", "status"
    )
    assert refused.returncode == 2 and "expected tcp://host:port" in refused.stderr


def test_roles_come_from_the_program_table(tmp_path: Path) -> None:
    settings = load_settings(ROOT / "config" / "observer.toml")
    roles = {name: p.host_role for name, p in settings.programs.items()}
    assert {n for n, r in roles.items() if r == "store"} == {
        "writer",
        "notifier",
        "backup",
        "archive",
        "archive_verify",
        "etf_check",
    }
    assert roles["track_b"] == roles["track_a"] == roles["token"] == "collectors"
    # Unset, the writer's command goes with the database and everything else collects.
    bare = load_settings(_config(tmp_path, WRITER_PROGRAM + load_program()))
    assert [p.host_role for p in bare.programs.values()] == ["store", "collectors"]


# ---------------------------------------------------------------- a supervisor over tcp


def control_settings(keys: Path, key: str, port: int, bus: str = "") -> str:
    """Lines of [supervisor] (the fixture opens it), then [bus] and [bus.curve]."""
    return (
        f'control_endpoint = "tcp://127.0.0.1:{port}"\noperators = ["alice"]\n'
        f"[bus]\n{bus}ack_timeout_ms = 1000\n"
        f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "{key}"\nserver_key = "store"\n'
    )


def sup_endpoint(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def raw_request(
    endpoint: str, curve: ClientCurve, payload: bytes, wait_ms: int = 30_000
) -> bytes | None:
    """Send ``payload`` as one message with ``curve``; the reply, or None after ``wait_ms``."""
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        socket = context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        curve.apply(socket)
        socket.connect(endpoint)
        socket.send(payload)
        return socket.recv() if socket.poll(wait_ms) else None
    finally:
        context.destroy(0)


def both_hosts(store: str, store_port: int, collectors: str, collectors_port: int) -> list[str]:
    """`observer ctl` options for alice to reach the store's and the collectors' supervisors."""
    return [
        "--key",
        "alice",
        "--endpoint",
        f"tcp://{store}:{store_port}",
        "--server-key",
        "store",
        "--endpoint",
        f"tcp://{collectors}:{collectors_port}",
        "--server-key",
        "collectors",
    ]


def test_a_missing_operator_key_stops_the_supervisor_in_one_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_key_pair(keys, "store")  # the host's pair, but no alice.key
    config = _config(
        tmp_path,
        f'[paths]\ndata_dir = "{tmp_path / "var"}"\n[supervisor]\nmetrics_port = 0\n'
        + control_settings(keys, "store", free_port()),
    )
    ran = subprocess.run(
        [sys.executable, "-m", "observer", "supervise", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert ran.returncode == 2, ran.stderr
    assert f"cannot read the key file {keys / 'alice.key'}: no such file" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_an_operator_key_commands_and_an_unknown_key_is_refused_with_nothing_done(
    tmp_path: Path, keys: Path
) -> None:
    port, metrics = free_port(), free_port()
    sup = SupervisorProcess(
        tmp_path,
        WRITER_PROGRAM + load_program(),
        settings=control_settings(keys, "store", port),
        metrics_port=metrics,
    ).start()
    endpoint = ["--endpoint", f"tcp://127.0.0.1:{port}", "--server-key", "store"]
    config = sup.config  # the operator's: its [bus.curve] keys_dir holds alice's pair

    shown = ctl(*endpoint, "--key", "alice", "--json", "status", config=config)
    assert shown.returncode == 0, shown.stderr
    assert {p["name"] for p in json.loads(shown.stdout)["programs"]} == {"writer", "load"}
    table = ctl(*endpoint, "--key", "alice", "status", config=config)
    assert table.returncode == 0 and f"127.0.0.1:{port}" in table.stdout
    before = sup.program("load")
    restarted = ctl(*endpoint, "--key", "alice", "--json", "restart", "load", config=config)
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["ok"]
    assert sup.program("load")["pid"] != before["pid"]

    # Track B's slots live on the host that runs it; this one does not, and says so.
    elsewhere = ctl(*endpoint, "--key", "alice", "slots", "list", config=config)
    assert elsewhere.returncode == 1
    assert (
        "Track B is not run by this host" in elsewhere.stderr and "(elsewhere)" in elsewhere.stderr
    )

    # Hostile requests from an operator's key: bounded as on the Unix socket.
    alice = operator_curve(keys, "alice", "store")
    answer = raw_request(sup_endpoint(port), alice, b"{not json")
    assert answer is not None and msgspec.json.decode(answer)["code"] == "bad_request"
    assert raw_request(sup_endpoint(port), alice, b"x" * (MAX_REQUEST_BYTES + 1), 2000) is None
    assert sup.status()["healthy"]  # the peer was dropped; the supervisor goes on

    # mallory's pair is valid CURVE, but not an operator's: refused before any command.
    assert _value(_scrape(metrics), "observer_control_refused_total") == 0.0  # alice's passed
    after = sup.program("load")
    for command in ("restart", "stop"):
        refused = ctl(*endpoint, "--key", "mallory", command, "load", config=config)
        assert refused.returncode == 2 and "refused this key" in refused.stderr
    now = sup.program("load")
    assert (now["pid"], now["restarts"], now["state"]) == (
        after["pid"],
        after["restarts"],
        "running",
    )
    refused_count = sup.status()["control_refused"]
    assert refused_count >= 2
    # The same count for Prometheus (a counter: observer_control_refused_total).
    served = _scrape(metrics)
    assert _value(served, "observer_control_refused_total") == refused_count
    assert served["observer_control_refused_total"][0].labels == {}
    mallory = load_key_pair(keys, "mallory")
    log = sup.log.read_text()
    assert log.count(f"unknown public key {mallory.public.decode()}") == 1  # once per key
    for name in ("alice", "mallory", "store"):  # no secret in the supervisor's log
        assert load_key_pair(keys, name).secret.decode() not in log
    wait_until(
        lambda: sup.rows(
            "SELECT subject FROM alerts WHERE code = 'control_key_refused'", until_schema=True
        ),
        30,
        "the refusal's alert",
    )
    assert sup.rows("SELECT subject FROM alerts WHERE code = 'control_key_refused'") == [
        (mallory.public.decode(),)
    ]
    assert sup.terminate() == 0


def test_behind_nat_the_control_socket_binds_its_bind_address(tmp_path: Path, keys: Path) -> None:
    """Operators are told ``localhost`` (the "public" name); the supervisor binds 127.0.0.1."""
    port = free_port()
    settings = control_settings(keys, "store", port).replace(
        f'control_endpoint = "tcp://127.0.0.1:{port}"',
        f'control_endpoint = "tcp://localhost:{port}"\ncontrol_bind = "tcp://127.0.0.1:{port}"',
    )
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM, settings=settings).start()
    assert sup.proc is not None
    assert f"control commands over tcp+CURVE at tcp://127.0.0.1:{port}" in sup.log.read_text()
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(sup.proc.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    assert ("127.0.0.1", port) in listening
    remote = ["--endpoint", f"tcp://localhost:{port}", "--server-key", "store", "--key", "alice"]
    shown = ctl(*remote, "--json", "status", config=sup.config)
    assert shown.returncode == 0, shown.stderr
    assert [p["name"] for p in json.loads(shown.stdout)["programs"]] == ["writer"]
    assert sup.terminate() == 0


def test_a_wrong_server_key_fails_at_once_and_says_what_to_check(
    tmp_path: Path, keys: Path
) -> None:
    """The supervisor cannot open a HELLO sealed for another key and drops it, ZAP never
    hears of it, and ZeroMQ retries for ever: the request used to wait its whole timeout."""
    port = free_port()
    sup = SupervisorProcess(
        tmp_path, WRITER_PROGRAM, settings=control_settings(keys, "store", port)
    ).start()
    wrong = operator_curve(keys, "alice", "collectors")  # another host's public key
    why = (
        f"the CURVE handshake with {sup_endpoint(port)} failed: "
        "is --server-key this supervisor's public key?"
    )
    started = time.monotonic()
    with pytest.raises(ControlHandshakeFailed) as caught:
        request_tcp(sup_endpoint(port), wrong, "status", [], 60)
    assert str(caught.value) == why
    assert time.monotonic() - started < 30  # well before the timeout (a generous bound)
    remote = ["--endpoint", sup_endpoint(port), "--server-key", "collectors", "--key", "alice"]
    shown = ctl(*remote, "status", config=sup.config)  # `observer ctl` waits 60 s at most
    assert shown.returncode == 2 and shown.stderr == f"observer ctl: {why}\n"
    assert sup.status()["control_refused"] == 0  # alice's key was never judged
    assert sup.terminate() == 0


# Track B in this host's table as a job nobody starts: the test needs its slots, not a stream.
TRACK_B_HERE = """
[programs.track_b]
kind = "job"
command = ["observer", "track-b", "run"]
"""


def test_slots_over_tcp_pin_and_list_on_the_host_of_track_b(tmp_path: Path, keys: Path) -> None:
    port = free_port()
    # A Saturday: with the system clock in KRX hours, the supervisor wants Track B's account
    # streaming and is not healthy while this job is not running (the test failed at 10:17 KST).
    weekend = SimulatedClock(int(datetime(2026, 11, 21, 12, 0, tzinfo=KST).timestamp() * 1e9), 1.0)
    sup = SupervisorProcess(
        tmp_path,
        WRITER_PROGRAM + TRACK_B_HERE,
        settings=control_settings(keys, "store", port),
        clock=weekend.spec,
    ).start()
    remote = ["--endpoint", sup_endpoint(port), "--server-key", "store", "--key", "alice"]
    pins = sup.data_dir / "track_b" / "pins.json"

    pinned = ctl(*remote, "slots", "pin", "005930", "000660", config=sup.config)
    assert pinned.returncode == 0, pinned.stderr
    assert pinned.stdout == f"pinned: 000660, 005930 ({pins})\n"
    assert json.loads(pins.read_text()) == ["000660", "005930"]  # in that host's data folder
    # Track B's own refusals and exit codes come back as they are.
    wrong = ctl(*remote, "slots", "pin", "ABC", config=sup.config)
    assert wrong.returncode == 1 and "not stock codes: ABC" in wrong.stderr
    unshown = ctl(*remote, "slots", "list", config=sup.config)
    assert unshown.returncode == 1 and "has not shown its slots" in unshown.stderr

    shown = {
        "slots": [
            {
                "account": "acct1",
                "slot": 1,
                "symbol": "005930",
                "trigger": "pinned",
                "score": 0.0,
                "pinned": True,
            }
        ],
        "closed": [],
        "barred": [],
    }
    (sup.data_dir / "track_b" / "slots.json").write_text(json.dumps(shown))
    listed = ctl(*remote, "--json", "slots", "list", config=sup.config)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == shown
    table = ctl(*remote, "slots", "list", config=sup.config)
    assert table.returncode == 0 and "005930" in table.stdout and "pinned" in table.stdout
    local = ctl("--data-dir", str(sup.data_dir), "slots", "list")  # the same as on that host
    assert local.stdout == table.stdout
    unpinned = ctl(*remote, "slots", "unpin", "005930", config=sup.config)
    assert unpinned.returncode == 0 and json.loads(pins.read_text()) == ["000660"]

    # Only an action and codes cross the network: options and anything else are refused.
    elsewhere = tmp_path / "elsewhere"
    for hostile in (
        ["pin", "--data-dir", str(elsewhere), "005930"],
        ["pin", "../../x"],
        ["list", "005930"],
        ["drop", "005930"],
    ):
        refused = ctl(*remote, "slots", *hostile, config=sup.config)
        assert refused.returncode == 1 and "(bad_request)" in refused.stderr, hostile
    assert not elsewhere.exists() and json.loads(pins.read_text()) == ["000660"]
    # A key that is not an operator's never reaches the command.
    mallory = ["--endpoint", sup_endpoint(port), "--server-key", "store", "--key", "mallory"]
    intruder = ctl(*mallory, "slots", "pin", "035720", config=sup.config)
    assert intruder.returncode == 2 and "refused this key" in intruder.stderr
    assert json.loads(pins.read_text()) == ["000660"]
    assert sup.terminate() == 0


def test_collectors_wait_for_the_writer_on_the_store_host_and_status_shows_both(
    tmp_path: Path, keys: Path
) -> None:
    ingest, feed, store_port, collectors_port = (free_port() for _ in range(4))
    bus = (
        f'ingest_endpoint = "tcp://127.0.0.1:{ingest}"\nfeed_endpoint = "tcp://127.0.0.1:{feed}"\n'
    )
    programs = (
        WRITER_PROGRAM
        + load_program(rate=500)
        + ('\n[programs.reports]\nkind = "job"\nrole = "store"\ncommand = ["observer", "audit"]\n')
    )
    (tmp_path / "collectors").mkdir()
    (tmp_path / "store").mkdir()
    collectors = SupervisorProcess(
        tmp_path / "collectors",
        programs,
        settings=control_settings(keys, "collectors", collectors_port, bus),
    )
    store = SupervisorProcess(
        tmp_path / "store",
        WRITER_PROGRAM + load_program(rate=500),
        settings=control_settings(keys, "store", store_port, bus)
        + '[bus.curve.clients]\ncollectors = ["load", "supervisor_collectors"]\nstore = ["*"]\n',
    )
    # The collectors' host first: its worker waits for the writer on the other host.
    collectors_proc = _supervise(collectors, "collectors")
    wait_until(lambda: collectors.program("load")["state"] == "waiting", 60, "load waiting")
    assert "writer" in collectors.program("load")["detail"]
    assert [p["name"] for p in collectors.status()["programs"]] == ["load"]
    _supervise(store, "store")
    wait_until(lambda: collectors.program("load")["state"] == "running", 60, "load running")
    assert [p["name"] for p in store.status()["programs"]] == ["writer"]
    wait_until(lambda: store.rows("SELECT count(*) FROM trade_ticks")[0][0] > 1000, 60, "ticks")

    both = both_hosts("127.0.0.1", store_port, "127.0.0.1", collectors_port)
    shown = ctl(*both, "--json", "status", config=store.config)
    report = json.loads(shown.stdout)
    hosts = {h["host"]: [p["name"] for p in h["programs"]] for h in report["hosts"]}
    assert hosts == {
        f"127.0.0.1:{store_port}": ["writer"],
        f"127.0.0.1:{collectors_port}": ["load"],
    }
    # The collectors' table names a store job that the store host does not run: nowhere.
    assert report["nowhere"] == ["reports"] and shown.returncode == 1
    table = ctl(*both, "status", config=store.config)
    assert "run by none of these hosts: reports" in table.stdout
    assert f"127.0.0.1:{collectors_port}" in table.stdout

    assert collectors.terminate() == 0 and collectors_proc.returncode == 0
    # The collectors' host silent: the store's status still shows, the silent host named.
    shown = ctl(*both, "--json", "status", config=store.config)
    report = json.loads(shown.stdout)
    silent = f"no supervisor answered at tcp://127.0.0.1:{collectors_port}: no connection"
    assert [h["ok"] for h in report["hosts"]] == [True, False] and shown.returncode == 1
    assert [p["name"] for p in report["hosts"][0]["programs"]] == ["writer"]
    assert report["hosts"][1]["problems"][0].startswith(silent)
    assert report["nowhere"] == []  # the silent host may run "reports": not judged
    table = ctl(*both, "status", config=store.config)
    assert f"127.0.0.1:{collectors_port} unhealthy: {silent}" in table.stdout
    assert "writer" in table.stdout and table.returncode == 1
    assert store.terminate() == 0
    sources = {s: a.max_seq for s, a in audit(store.url).items()}
    assert set(sources) == {"load", "supervisor", "supervisor_collectors"}
    assert_exactly_once(store.url, sources)  # 0 lost, 0 duplicated


def _supervise(sup: SupervisorProcess, role: str) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "observer",
        "supervise",
        "--config",
        str(sup.config),
        "--role",
        role,
    ]
    with sup.log.open("ab") as log:
        sup.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=sup.workdir)
    wait_until(lambda: sup.socket.exists() or sup.proc.poll() is not None, 60, "socket")  # type: ignore[union-attr]
    assert sup.proc.poll() is None, sup.log.read_text()
    return sup.proc
