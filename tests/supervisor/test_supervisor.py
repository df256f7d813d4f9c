"""The supervisor as a real process tree: READY, restarts, FATAL, jobs, the control socket."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from observer.db.audit_queries import audit_sources
from observer.db.engine import make_engine
from tests.support import (
    WRITER_PROGRAM,
    SupervisorProcess,
    load_program,
    wait_until,
)

pytestmark = pytest.mark.slow

CRASHING = """
[programs.crashing]
kind = "daemon"
command = ["python", "-c", "raise SystemExit(3)"]
depends_on = ["writer"]
max_failures = 3
backoff_initial_s = 0.05
"""

SILENT = """
[programs.silent]
kind = "daemon"
command = ["python", "-c", "import signal; signal.pause()"]
ready_timeout_s = 0.5
max_failures = 2
backoff_initial_s = 0.05
"""

# A job that works half a second after READY, then fails until the flag file exists: each
# run lasts longer than stable_s, which forgives a daemon, never a job.
FLAKY_RUN = (
    "import os, sys, time; from observer.process.heartbeat import Heartbeat; "
    "Heartbeat.from_env().ready(); "
    "time.sleep(0.5); sys.exit(0 if os.path.exists('fixed') else 4)"
)
FLAKY = f"""
[programs.flaky]
kind = "job"
command = ["python", "-c", "{FLAKY_RUN}"]
stable_s = 0.1
max_failures = 3
backoff_initial_s = 0.05
"""

JOB = """
[programs.burst]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "burst", "--events", "50"]
depends_on = ["writer"]
"""


@pytest.fixture(scope="module")
def sup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorProcess]:
    workdir = tmp_path_factory.mktemp("supervisor")
    supervisor = SupervisorProcess(
        workdir, WRITER_PROGRAM + load_program() + CRASHING + SILENT + FLAKY + JOB
    )
    SupervisorProcess.live.remove(supervisor)  # this one lives for the whole module
    supervisor.start(healthy=False)
    wait_until(lambda: supervisor.program("load")["state"] == "running", 60, "load running")
    yield supervisor
    if supervisor.proc is not None and supervisor.proc.poll() is None:
        supervisor.terminate()


def test_children_have_their_own_process_group_and_die_with_the_supervisor(
    sup: SupervisorProcess,
) -> None:
    for name in ("writer", "load"):
        pid = sup.program(name)["pid"]
        assert os.getpgid(pid) == pid  # own group: a signal to the supervisor's group spares it
        status = Path(f"/proc/{pid}/status").read_text()
        assert os.getpgid(pid) != os.getpgid(sup.proc.pid)  # type: ignore[union-attr]
        assert "PPid:\t" + str(sup.proc.pid) in status  # type: ignore[union-attr]


def test_restart_through_the_control_socket_reaches_ready(sup: SupervisorProcess) -> None:
    before = sup.program("load")
    reply = sup.ctl("restart", "load")
    assert reply.ok and reply.code == "ok", reply
    after = sup.program("load")
    assert after["state"] == "running"
    assert after["pid"] != before["pid"]
    assert after["restarts"] == before["restarts"] + 1
    assert reply.data["ready_s"] > 0
    assert not psutil.pid_exists(before["pid"]) or (
        psutil.Process(before["pid"]).status() == psutil.STATUS_ZOMBIE
    )


def test_a_killed_worker_is_detected_and_respawned(sup: SupervisorProcess) -> None:
    before = sup.program("load")
    os.kill(before["pid"], signal.SIGKILL)
    after = wait_until(
        lambda: (
            (p := sup.program("load"))["pid"] not in (0, before["pid"])
            and p["state"] == "running"
            and p
        ),
        30,
        "load respawned",
    )
    assert after["restarts"] == before["restarts"] + 1
    assert after["last_exit"] == -signal.SIGKILL
    assert sup.status()["healthy"] or sup.program("crashing")["state"] == "fatal"


def test_a_program_that_keeps_failing_is_parked_fatal_with_an_alert(
    sup: SupervisorProcess,
) -> None:
    crashing = wait_until(
        lambda: (p := sup.program("crashing"))["state"] == "fatal" and p, 30, "crashing fatal"
    )
    assert crashing["failures"] == 3
    assert crashing["last_exit"] == 3
    assert "3 failures in a row" in crashing["detail"]
    assert sup.ctl("status").data["healthy"] is False
    alerts = wait_until(
        lambda: sup.rows(
            "select message from alerts where code = 'program_fatal'", until_schema=True
        ),
        30,
        "alert",
    )
    assert any("crashing is FATAL" in row[0] for row in alerts)
    # Starting it by hand clears FATAL and tries again (and fails again, loudly).
    reply = sup.ctl("start", "crashing")
    assert not reply.ok and reply.code == "failed_to_start"


def test_a_program_that_never_says_ready_is_ended_and_retried(sup: SupervisorProcess) -> None:
    silent = wait_until(
        lambda: (p := sup.program("silent"))["state"] == "fatal" and p, 30, "silent fatal"
    )
    assert "no READY within 0.5s" in silent["detail"]
    assert silent["restarts"] >= 1


def test_a_job_runs_on_demand_and_exits(sup: SupervisorProcess) -> None:
    reply = sup.ctl("run", "burst")
    assert reply.ok, reply
    job = wait_until(lambda: (p := sup.program("burst"))["state"] == "exited" and p, 60, "job")
    assert job["last_exit"] == 0
    count = "select count(*) from trade_ticks where source = 'burst'"
    assert wait_until(lambda: sup.rows(count)[0][0] == 50, 30, "the job's 50 rows")


def test_a_job_that_keeps_failing_is_unhealthy_then_fatal_until_a_run_succeeds(
    sup: SupervisorProcess,
) -> None:
    assert sup.ctl("run", "flaky").ok  # READY, then exit 4: "started"
    failing = wait_until(
        lambda: (r := sup.status())["programs"] and any("flaky" in p for p in r["problems"]) and r,
        30,
        "the failed run named",
    )
    assert not failing["healthy"]
    assert any(p.startswith("flaky: ") and "exit code 4" in p for p in failing["problems"])
    # Each run outlasted stable_s, and still the failures add up to FATAL.
    flaky = wait_until(
        lambda: (p := sup.program("flaky"))["state"] == "fatal" and p, 30, "flaky fatal"
    )
    assert flaky["failures"] == 3 and flaky["last_exit"] == 4
    (sup.workdir / "fixed").touch()  # the cause is mended; the operator runs it again
    assert sup.ctl("run", "flaky").ok
    wait_until(lambda: sup.program("flaky")["state"] == "exited", 30, "a run that succeeds")
    assert not any("flaky" in p for p in sup.status()["problems"])


@pytest.mark.parametrize(
    ("command", "args", "code"),
    [
        ("restart", ["nope"], "unknown_program"),
        ("run", ["load"], "not_a_job"),
        ("restart", ["burst"], "is_a_job"),
        ("start", ["writer"], "already_running"),
        ("launch", [], "unknown_command"),
        ("stop", [], "bad_request"),
    ],
)
def test_every_refusal_has_the_same_shape_and_a_stable_code(
    sup: SupervisorProcess, command: str, args: list[str], code: str
) -> None:
    reply = sup.ctl(command, *args)
    assert reply.ok is False
    assert reply.code == code
    assert reply.reason


def test_the_control_socket_is_owner_only(sup: SupervisorProcess) -> None:
    assert sup.socket.stat().st_mode & 0o777 == 0o600
    assert sup.socket.parent.stat().st_mode & 0o777 == 0o700


def test_ctl_prints_a_table_and_exits_by_health(sup: SupervisorProcess) -> None:
    wait_until(lambda: sup.program("writer")["counters"], 30, "the writer's first heartbeat")
    result = subprocess.run(
        [sys.executable, "-m", "observer", "ctl", "--data-dir", str(sup.data_dir), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "writer" in result.stdout and "running" in result.stdout
    assert "writer: " in result.stdout and "events " in result.stdout  # heartbeat counters
    assert result.returncode == (0 if sup.status()["healthy"] else 1)
    missing = subprocess.run(
        [sys.executable, "-m", "observer", "ctl", "--socket", "/nonexistent.sock", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no supervisor" in missing.stderr


def test_stop_holds_a_program_until_started(sup: SupervisorProcess) -> None:
    pid = sup.program("load")["pid"]
    assert sup.ctl("stop", "load").ok
    assert sup.program("load")["state"] == "stopped"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    reply = sup.ctl("start", "load")
    assert reply.ok, reply
    assert sup.program("load")["state"] == "running"


def test_graceful_stop_drains_every_event_and_stops_the_writer_last(
    sup: SupervisorProcess,
) -> None:
    pids = [p["pid"] for p in sup.status()["programs"] if p["pid"]]
    assert sup.terminate() == 0
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    engine = make_engine(sup.url)
    try:
        with engine.connect() as conn:
            results = {r.source: r for r in audit_sources(conn)}
    finally:
        engine.dispose()
    assert results["load"].complete and results["load"].max_seq > 0
    reports = [
        json.loads(line)
        for line in (sup.data_dir / "log" / "load.log").read_text().splitlines()
        if line.startswith('{"source"')
    ]
    assert reports[-1]["drained"] is True
    assert reports[-1]["last_seq"] == results["load"].max_seq  # all sent, all committed
    events = sup.rows(
        "select worker, action from worker_events where worker = 'load' order by seq desc"
    )
    assert events[0] == ("load", "stopped")  # committed: the writer still ran when load stopped
