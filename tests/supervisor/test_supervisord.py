"""The shipped supervisord.conf under real supervisord: up, a restart through ctl, a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from observer.supervisor.control import request
from tests.support import ROOT, WRITER_PROGRAM, load_program, wait_until

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# A PATH without the virtualenv, as in an operator's shell: the configurations find
# `observer` in the deployment's .venv themselves.
ENV = {
    **os.environ,
    "PATH": os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != BIN
    ),
}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Path]:
    """A deployment folder: the shipped supervisord.conf and a test observer.toml."""
    shutil.copy(ROOT / "supervisord.conf", tmp_path / "supervisord.conf")
    (tmp_path / ".venv").symlink_to(BIN.parent)  # the README's venv in the deployment
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "observer.toml").write_text(
        '[paths]\ndata_dir = "var"\n[database]\nurl = "sqlite:///var/observer.db"\n'
        "[supervisor]\nmetrics_port = 0\n" + WRITER_PROGRAM + load_program(rate=300)
    )
    (tmp_path / "var" / "log").mkdir(parents=True)
    (tmp_path / "var" / "run").mkdir(mode=0o700)
    yield tmp_path


def _ctl(deployment: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _supervisorctl(deployment / "supervisord.conf", *args)


def _supervisorctl(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(conf), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _shut_down(conf: Path, supervisord: subprocess.Popen[bytes]) -> None:
    """supervisorctl shutdown, and supervisord killed if it is not gone within 60 s."""
    _supervisorctl(conf, "shutdown")
    try:
        supervisord.wait(60)
    except subprocess.TimeoutExpired:
        supervisord.kill()
        supervisord.wait()


def test_supervisord_runs_restarts_and_stops_the_tree(deployment: Path) -> None:
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-c", str(deployment / "supervisord.conf")],
        cwd=deployment,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        umask=0o077,  # as the README starts it
    )
    sock = deployment / "var" / "run" / "control.sock"
    try:
        # The tree comes up: supervisord -> observer supervise -> writer, load.
        def healthy() -> dict[str, object] | None:
            if not sock.exists():
                return None
            try:
                reply = request(sock, "status", [], 30)
            except ConnectionRefusedError:  # a file left by a supervisor that was killed
                return None
            return reply.data if reply.data.get("healthy") else None

        status = wait_until(healthy, 90, "a healthy tree under supervisord")
        pids = {p["name"]: p["pid"] for p in status["programs"]}  # type: ignore[attr-defined]
        supervisor_pid = psutil.Process(pids["writer"]).ppid()
        assert psutil.Process(supervisor_pid).ppid() == supervisord.pid

        # One worker restarted through `observer ctl`, the rest untouched.
        restarted = subprocess.run(
            [
                str(BIN / "observer"),
                "ctl",
                "--data-dir",
                str(deployment / "var"),
                "restart",
                "load",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert restarted.returncode == 0, restarted.stderr
        reply = json.loads(restarted.stdout.splitlines()[-1])
        assert reply["ok"] and reply["ready_s"] > 0
        after = request(sock, "status", [], 30).data
        new_pids = {p["name"]: p["pid"] for p in after["programs"]}
        assert new_pids["writer"] == pids["writer"] and new_pids["load"] != pids["load"]

        # Stopped through supervisorctl: the drain leaves nothing behind and loses nothing.
        stopped = _ctl(deployment, "stop", "observer")
        assert "observer: stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        for pid in [supervisor_pid, *new_pids.values()]:
            assert not psutil.pid_exists(pid) or (
                psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            )
        log = (deployment / "var" / "log" / "observer.log").read_text()
        assert "stopped" in log and "SIGKILL" not in log
    finally:
        _shut_down(deployment / "supervisord.conf", supervisord)

    engine = make_engine(f"sqlite:///{deployment / 'var' / 'observer.db'}")
    try:
        with engine.connect() as conn:
            audit = {r.source: r for r in audit_sources(conn)}
    finally:
        engine.dispose()
    reports = [
        json.loads(line)
        for line in (deployment / "var" / "log" / "load.log").read_text().splitlines()
        if line.startswith('{"source"')
    ]
    assert len(reports) == 2  # one per load process: the restarted one and the stopped one
    assert all(r["drained"] for r in reports)
    assert audit["load"].complete
    assert reports[-1]["last_seq"] == audit["load"].max_seq  # every event sent was committed
    # The folders were made by `mkdir -p` under umask 022 (the fixture's): still nothing is open.
    open_to_others = [
        f"{p.relative_to(deployment)} {p.stat().st_mode & 0o777:o}"
        for p in [deployment / "var", *(deployment / "var").rglob("*")]
        if p.stat().st_mode & 0o077
    ]
    assert open_to_others == []


def _role_deployment(root: Path, role: str, settings: str, programs: str) -> Path:
    """A host's folder: config/supervisord/<role>.conf as shipped, and its observer.toml."""
    (root / "config" / "supervisord").mkdir(parents=True)
    shutil.copy(ROOT / "config" / "supervisord" / f"{role}.conf", root / "config" / "supervisord")
    (root / ".venv").symlink_to(BIN.parent)  # the README's venv in the deployment
    (root / "config" / "observer.toml").write_text(
        '[paths]\ndata_dir = "var"\n[database]\nurl = "sqlite:///var/observer.db"\n'
        f"[supervisor]\nmetrics_port = 0\n{settings}{programs}"
    )
    (root / "var" / "log").mkdir(parents=True)
    (root / "var" / "run").mkdir(mode=0o700)
    return root


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A folder whose sockets fit in a Unix socket's 108 bytes: the role configurations'
    `config/supervisord/../../var/run/supervisord.sock` under pytest's own folders (one more
    level for each xdist worker) did not, and supervisord never came up."""
    root = Path(tempfile.mkdtemp(prefix="roles-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_store_and_collectors_configurations_run_one_deployment(short_path: Path) -> None:
    from bus.curve import generate_key_pair
    from tests.supervisor.test_control_tcp import both_hosts, control_settings
    from tests.support import assert_exactly_once, audit, free_port

    keys = short_path / "keys"
    for name in ("store", "collectors", "alice"):
        generate_key_pair(keys, name)
    ingest, feed, store_port, collectors_port = (free_port() for _ in range(4))
    bus = (
        f'ingest_endpoint = "tcp://127.0.0.1:{ingest}"\nfeed_endpoint = "tcp://127.0.0.1:{feed}"\n'
    )
    programs = WRITER_PROGRAM + load_program(rate=300)  # both hosts share the program table
    clients = '[bus.curve.clients]\ncollectors = ["load", "supervisor_collectors"]\nstore = ["*"]\n'
    hosts = {
        "store": _role_deployment(
            short_path / "store",
            "store",
            control_settings(keys, "store", store_port, bus) + clients,
            programs,
        ),
        "collectors": _role_deployment(
            short_path / "collectors",
            "collectors",
            control_settings(keys, "collectors", collectors_port, bus),
            programs,
        ),
    }

    def conf_of(role: str) -> Path:
        return hosts[role] / "config" / "supervisord" / f"{role}.conf"

    daemons = {}
    for role, root in hosts.items():
        daemons[role] = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(conf_of(role))],
            cwd=root,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o077,
        )

    both = both_hosts("127.0.0.1", store_port, "127.0.0.1", collectors_port)

    def status() -> dict[str, object] | None:
        shown = subprocess.run(
            [
                str(BIN / "observer"),
                "ctl",
                "--config",
                str(hosts["store"] / "config" / "observer.toml"),
                *both,
                "--json",
                "status",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        if shown.returncode == 2:  # a supervisor not up yet
            return None
        report: dict[str, object] = json.loads(shown.stdout)
        return report if report["healthy"] else None

    try:
        report = wait_until(status, 120, "both hosts healthy under supervisord")
        programs_of = {h["host"]: [p["name"] for p in h["programs"]] for h in report["hosts"]}  # type: ignore[attr-defined]
        assert programs_of == {
            f"127.0.0.1:{store_port}": ["writer"],
            f"127.0.0.1:{collectors_port}": ["load"],
        }
        for role, daemon in daemons.items():  # supervisord -> observer supervise --role ROLE
            (supervise,) = psutil.Process(daemon.pid).children()
            assert supervise.cmdline()[-2:] == ["--role", role]
        # The collectors first (their outboxes drain into the writer), then the store.
        for role in ("collectors", "store"):
            stopped = _supervisorctl(conf_of(role), "stop", "observer")
            assert "observer: stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    finally:
        for role, daemon in daemons.items():
            _shut_down(conf_of(role), daemon)
    url = f"sqlite:///{hosts['store'] / 'var' / 'observer.db'}"
    found = {source: a.max_seq for source, a in audit(url).items()}
    assert set(found) == {"load", "supervisor", "supervisor_collectors"}
    assert_exactly_once(url, found)
    log = (hosts["collectors"] / "var" / "log" / "load.log").read_text().splitlines()
    (sent,) = [json.loads(line) for line in log if line.startswith('{"source"')]
    assert sent["drained"] and sent["last_seq"] == found["load"]  # every event sent: committed
