"""The supervisor's process tree under a crash, its phases on a simulated day, its metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import psutil
import pytest

from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.supervisor.control import request
from observer.supervisor.leftovers import ChildRecord
from tests.support import (
    WRITER_PROGRAM,
    SupervisorProcess,
    free_port,
    load_program,
    timing_over,
    wait_until,
)

pytestmark = pytest.mark.slow


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_sigkill_of_the_supervisor_leaves_no_child(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + load_program()).start()
    wait_until(lambda: sup.program("load")["state"] == "running", 60, "load running")
    children = [p["pid"] for p in sup.status()["programs"]]
    assert all(children)
    assert sup.proc is not None
    sup.proc.kill()
    sup.proc.wait(30)
    wait_until(lambda: all(_gone(pid) for pid in children), 10, "children gone")


def test_leftovers_of_a_dead_supervisor_are_ended_at_start(tmp_path: Path) -> None:
    # An orphan in its own process group, as a crashed supervisor's child would be.
    spawner = subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
            "'import signal; signal.pause()'], process_group=0, stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(p.pid)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stray = psutil.Process(int(spawner.stdout))
    try:
        sup = SupervisorProcess(tmp_path, WRITER_PROGRAM)
        run = sup.data_dir / "run"
        run.mkdir(parents=True, mode=0o700)
        ChildRecord(run / "supervisor-children.json").write({"track_a": stray.pid})
        sup.start()
        wait_until(lambda: _gone(stray.pid), 30, "the orphan ended")
        alerts = wait_until(
            lambda: sup.rows(
                "select code from alerts where code = 'leftover_processes'", until_schema=True
            ),
            30,
        )
        assert alerts
    finally:
        if not _gone(stray.pid):
            stray.kill()


def test_a_second_supervisor_on_the_same_run_directory_exits_3(tmp_path: Path) -> None:
    first = SupervisorProcess(tmp_path, WRITER_PROGRAM).start()
    second = subprocess.run(
        [sys.executable, "-m", "observer", "supervise", "--config", str(first.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert second.returncode == 3
    assert "another supervisor" in second.stderr
    assert first.status()["healthy"]


SESSION_DAY = """
[programs.morning]
kind = "session"
command = ["python", "-m", "harness.loadgen", "--source", "morning", "--events", "0",
           "--rate", "50"]
depends_on = ["writer"]
phases = ["track_a_only"]

[programs.opening_job]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "opening", "--events", "5"]
depends_on = ["writer"]
schedule = [{ at = "09:00", days = "sessions" }, { at = "09:00", days = "sat" }]
"""


def _supervisor_before_nine(tmp_path: Path) -> SupervisorProcess:
    """A supervisor started in the warmup whose simulated clock reaches 09:00 KST after it is up.

    The clock must be fixed before the process starts, and a start can take seconds on a
    busy machine. The clock starts at 08:00 now and runs the warmup's hour in ``lead_s``
    wall seconds, then 150x from 09:00: if 09:00 came before the supervisor was up, that
    one is stopped and one with a longer lead is started in a fresh folder.
    """
    eight = datetime(2026, 11, 20, 8, 0, tzinfo=KST)  # a Friday session
    nine = int((eight + timedelta(hours=1)).timestamp()) * 10**9
    for attempt, lead_s in enumerate((6, 15, 40)):
        clock = SimulatedClock(
            int(eight.timestamp()) * 10**9, 3600 / lead_s, time.time_ns(), ((nine, 150),)
        )
        workdir = tmp_path / f"attempt{attempt}"
        workdir.mkdir()
        sup = SupervisorProcess(workdir, WRITER_PROGRAM + SESSION_DAY, clock=clock.spec)
        sup.start(healthy=False)
        if sup.status()["phase"] == "warmup":
            return sup
        sup.terminate()
    raise AssertionError("the supervisor never started within 40 s")


# Timed: at the lower priority beside a timed day, the morning program was once not even
# spawned within its 12 wall seconds.
@pytest.mark.timed
def test_session_programs_follow_the_phases_and_jobs_run_at_their_time(tmp_path: Path) -> None:
    # At 150x, 09:30 comes 12 s after 09:00: the morning program is up within them on a
    # loaded machine too (3 s, at 600x, were not always enough for it to report ready).
    sup = _supervisor_before_nine(tmp_path)
    wait_until(lambda: sup.status()["phase"] == "full_operation", 60, "full operation")
    timing_over()
    wait_until(lambda: sup.program("morning")["state"] == "stopped", 30, "morning stopped")
    assert sup.ctl("start", "morning").code == "out_of_phase"
    # started at 09:00, 12 wall seconds ago: a loaded machine may still be running it
    wait_until(lambda: sup.program("opening_job")["state"] == "exited", 30, "the 09:00 job")
    assert sup.terminate() == 0
    phases = [row[0] for row in sup.rows("select phase from phases order by seq")]
    assert phases[:3] == ["warmup", "track_a_only", "full_operation"]
    actions = sup.rows("select worker, action from worker_events order by seq")
    assert ("morning", "ready") in actions and ("morning", "stopped") in actions
    opening = sup.rows("select count(*) from trade_ticks where source = 'opening'")[0][0]
    assert opening == 5  # ran once: the Saturday entry does not apply on a Friday
    morning = sup.rows("select count(*) from trade_ticks where source = 'morning'")[0][0]
    assert morning > 0


def test_metrics_endpoint_reports_processes_phase_and_writer_counters(tmp_path: Path) -> None:
    port = free_port()
    SupervisorProcess(
        tmp_path,
        WRITER_PROGRAM + load_program(rate=100),
        settings="sample_interval_s = 0.2",
        metrics_port=port,
    ).start()

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return str(reply.read().decode())

    def ready() -> str | None:
        text = scrape()
        measured = 'observer_process_rss_bytes{program="load"} 0.0' not in text
        return text if 'counter="events"' in text and measured else None

    text = wait_until(ready, 30, "writer counters and samples")
    assert 'observer_process_up{program="writer"} 1.0' in text
    assert 'observer_process_state{program="load",state="running"} 1.0' in text
    assert 'observer_process_restarts_total{program="load"} 0.0' in text
    assert 'observer_phase{phase="idle"}' in text
    assert 'observer_program_counter{counter="events",program="writer"}' in text


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another user")
def test_the_control_socket_refuses_another_user(tmp_path: Path) -> None:
    # A socket in a world-readable folder, made 0666: only the peer-uid check stands in the way.
    open_dir = Path(tempfile.mkdtemp(prefix="observer-ctl-"))
    try:
        open_dir.chmod(0o755)
        sock = open_dir / "run" / "control.sock"
        sup = SupervisorProcess(tmp_path, WRITER_PROGRAM, settings=f'control_socket = "{sock}"')
        sup.socket = sock
        sup.start()
        sock.parent.chmod(0o755)
        sock.chmod(0o666)
        assert _status_code_as_nobody(sock) == "forbidden"
        assert sup.status()["healthy"]  # and the supervisor carries on
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)


def _status_code_as_nobody(sock: Path) -> str:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become "nobody", ask for status, report the reply's code
        try:
            os.setuid(65534)
            reply = request(sock, "status", [], 30)
            os.write(write_fd, reply.code.encode())
        except Exception as exc:  # reported to the parent, which fails the test with it
            os.write(write_fd, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as pipe:
        return pipe.read().decode()


AFTER_JOBS = """
[programs.first]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "first", "--events", "60",
           "--rate", "20"]
depends_on = ["writer"]
run_on_start = true

[programs.second]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "second", "--events", "5"]
depends_on = ["writer"]
after = ["first"]
run_on_start = true
"""


def test_a_job_due_while_the_job_it_follows_runs_waits_for_its_end(tmp_path: Path) -> None:
    # Both are due at start-up; "first" takes about 3 s (60 events at 20/s).
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + AFTER_JOBS).start(healthy=False)
    wait_until(lambda: sup.program("second")["state"] == "exited", 60, "second ran")
    assert sup.terminate() == 0
    actions = [
        (worker, action)
        for worker, action in sup.rows("select worker, action from worker_events order by seq")
        if worker in ("first", "second")
    ]
    assert actions.index(("first", "exited")) < actions.index(("second", "spawned")), actions
    firsts = sup.rows("select max(produced_ns) from trade_ticks where source = 'first'")
    seconds = sup.rows("select min(produced_ns) from trade_ticks where source = 'second'")
    assert firsts[0][0] < seconds[0][0]


ONE_AT_A_TIME = """
[programs.first]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "first", "--events", "40",
           "--rate", "20"]
depends_on = ["writer"]
run_on_start = true

[programs.second]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "second", "--events", "20",
           "--rate", "20"]
depends_on = ["writer"]
after = ["first", "third"]
run_on_start = true

[programs.third]
kind = "job"
command = ["python", "-m", "harness.loadgen", "--source", "third", "--events", "20",
           "--rate", "20"]
depends_on = ["writer"]
after = ["first", "second"]
run_on_start = true
"""


def test_two_jobs_waiting_for_the_same_one_then_run_one_after_the_other(tmp_path: Path) -> None:
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + ONE_AT_A_TIME).start(healthy=False)
    wait_until(
        lambda: all(sup.program(n)["state"] == "exited" for n in ("second", "third")),
        90,
        "second and third ran",
    )
    assert sup.terminate() == 0
    events = [
        (worker, action)
        for worker, action in sup.rows("select worker, action from worker_events order by seq")
        if worker in ("first", "second", "third") and action in ("spawned", "exited")
    ]
    # Each job's run is one spawned..exited span, and the spans never overlap.
    running: str | None = None
    for worker, action in events:
        if action == "spawned":
            assert running is None, events
            running = worker
        else:
            assert running == worker, events
            running = None
    assert events[0] == ("first", "spawned"), events
