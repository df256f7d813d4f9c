"""Holds by ``ctl stop`` that met a session worker's phase, or a program parked FATAL.

* A session worker stopped outside its phase is started again by ``ctl start`` (or
  ``restart``): the hold ends and its phase starts it. Before, both were refused
  ``out_of_phase``, the hold stayed, and the next session ran without it, status healthy.
* A worker held while it would run, and a held job, are named in ``ctl status`` (a
  warning: healthy).
* ``ctl stop`` of a program parked FATAL holds it stopped and resolves its ``program_fatal``;
  a supervisor that takes over such an alert of a held program resolves it. Before, the
  stop left it FATAL (status unhealthy until started, and failing, again) and after a
  restart of the supervisor the critical alert stayed open for ever.

Real supervisors over small fake programs, on a simulated clock where phases matter.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from observer.calendar.clock import SimulatedClock
from observer.calendar.phases import KST
from observer.process.state_files import STATE_FILE_UNREADABLE
from observer.supervisor.commands import held_warnings
from observer.supervisor.program import Program
from tests.supervisor.test_supervisor_schedule_faults import FAKE
from tests.support import WRITER_PROGRAM, SupervisorProcess, db_rows, set_aside, wait_until

pytestmark = pytest.mark.slow


def session(workdir: Path, name: str, phases: str) -> str:
    """A session worker (the fake daemon of the schedule tests) run in ``phases``."""
    script = workdir / "fake.py"
    script.write_text(FAKE)
    return (
        f'\n[programs.{name}]\nkind = "session"\nphases = [{phases}]\n'
        f'command = ["python", "{script}", "{name}", "daemon"]\n'
        f'env = {{ FAKE_RECORD = "{workdir / "runs.txt"}" }}\n'
    )


def runs(workdir: Path, name: str) -> int:
    record = workdir / "runs.txt"
    return record.read_text().splitlines().count(name) if record.exists() else 0


def test_a_session_worker_held_out_of_its_phase_is_started_by_its_phase_after_ctl_start(
    tmp_path: Path,
) -> None:
    # 07:45 on a Friday session at 20x: the warm-up (07:50) comes 15 s later.
    clock = SimulatedClock(int(datetime(2026, 11, 20, 7, 45, tzinfo=KST).timestamp() * 1e9), 20)
    programs = session(tmp_path, "sess", '"warmup"') + session(tmp_path, "late", '"shutdown"')
    # No writer: nothing would acknowledge the supervisor's events, so its stop waits none.
    sup = SupervisorProcess(
        tmp_path, programs, clock=clock.spec, settings="stop_ack_wait_s = 0"
    ).start(healthy=False)
    holds = tmp_path / "data" / "run" / "holds.json"
    assert sup.status()["phase"] == "idle", "the machine was too slow for the simulated clock"

    assert sup.ctl("stop", "sess").ok
    assert json.loads(holds.read_text()) == ["sess"]
    started = sup.ctl("start", "sess")
    assert started.ok and started.code == "ok", started
    assert started.reason == "sess is held no more: it starts when its phase comes (warmup)"
    assert json.loads(holds.read_text()) == []
    assert sup.program("sess")["state"] == "stopped" and runs(tmp_path, "sess") == 0

    # `restart` of a held one too; not held, there is nothing to start before its phase.
    assert sup.ctl("stop", "late").ok
    restarted = sup.ctl("restart", "late")
    assert restarted.ok and "late is held no more" in restarted.reason
    assert json.loads(holds.read_text()) == []
    refused = sup.ctl("start", "late")
    assert (refused.ok, refused.code) == (False, "out_of_phase")

    wait_until(lambda: sup.program("sess")["state"] == "running", 60, "sess started at warmup")
    assert sup.status()["phase"] == "warmup" and runs(tmp_path, "sess") == 1

    # Held during its phase: the operator's choice (healthy), and said so.
    assert sup.ctl("stop", "sess").ok
    report = sup.status()
    assert report["healthy"] and report["problems"] == []
    assert report["warnings"] == [
        "sess is held by a command during its phase: `observer ctl start sess` runs it"
    ]
    assert sup.ctl("start", "sess").ok
    assert sup.status()["warnings"] == [] and runs(tmp_path, "sess") == 2
    assert sup.terminate() == 0


CRASHING = """
[programs.crashing]
kind = "daemon"
command = ["python", "-c", "raise SystemExit(3)"]
depends_on = ["writer"]
max_failures = 2
backoff_initial_s = 0.05
"""
FATAL_SQL = "select count(*) from alerts where code = 'program_fatal' and subject = 'crashing'"
RESOLVED_SQL = (
    "select message from alert_resolutions where code = 'program_fatal' and subject = 'crashing'"
)


def stored(sup: SupervisorProcess, sql: str) -> list[object]:
    """The rows of ``sql``; none before the writer made the schema."""
    return db_rows(sup.url, sql, until_schema=True)


def test_stopping_a_fatal_program_holds_it_and_resolves_its_alert(tmp_path: Path) -> None:
    programs = WRITER_PROGRAM + CRASHING
    sup = SupervisorProcess(tmp_path, programs, settings="data_age_s = 0.5").start(healthy=False)
    wait_until(lambda: sup.program("crashing")["state"] == "fatal", 60, "crashing parked")
    wait_until(lambda: stored(sup, FATAL_SQL) == [(1,)], 30, "its program_fatal stored")

    stopped = sup.ctl("stop", "crashing")
    assert (stopped.ok, stopped.reason) == (True, "crashing stopped")
    report = sup.status()
    assert report["healthy"], report["problems"]
    assert report["warnings"] == [
        "crashing is held by a command (stopped): `observer ctl start crashing` runs it"
    ]
    assert wait_until(lambda: stored(sup, RESOLVED_SQL), 30, "resolved") == [("held by a command",)]

    # Started again: max_failures tries anew, then parked and alerted again.
    assert not sup.ctl("start", "crashing").ok
    parked = wait_until(
        lambda: (p := sup.program("crashing"))["state"] == "fatal" and p, 30, "parked again"
    )
    assert parked["failures"] == 2
    wait_until(lambda: stored(sup, FATAL_SQL) == [(2,)], 30, "alerted again")
    assert sup.terminate() == 0  # its program_fatal open, left to the next supervisor


def test_a_supervisor_resolves_the_open_alert_of_a_program_held_since(tmp_path: Path) -> None:
    # A hold recorded by a supervisor before this fix, whose stop left the alert open.
    programs = WRITER_PROGRAM + CRASHING
    sup = SupervisorProcess(tmp_path, programs, settings="data_age_s = 0.5").start(healthy=False)
    wait_until(lambda: stored(sup, FATAL_SQL) == [(1,)], 60, "its program_fatal stored")
    assert sup.terminate() == 0
    (tmp_path / "data" / "run" / "holds.json").write_text('["crashing"]')

    again = SupervisorProcess(tmp_path, programs, settings="data_age_s = 0.5").start()
    assert wait_until(lambda: stored(again, RESOLVED_SQL), 30, "resolved") == [
        ("held by a command",)
    ]
    assert again.program("crashing")["state"] == "stopped" and again.status()["healthy"]
    assert again.terminate() == 0


def test_a_held_job_is_a_warning_of_ctl_status_whenever_it_is_held() -> None:
    """A held job's scheduled runs are skipped (a backup, the archive): it was left out of
    the warnings, so a job stopped and forgotten was never run again, without a word."""

    def program(name: str, kind: str, held: bool) -> Program:
        return cast(Program, SimpleNamespace(name=name, kind=kind, held=held))

    programs = [
        program("backup", "job", True),
        program("archive", "job", False),
        program("track_a", "daemon", True),  # held, but not due now: nothing to say
        program("track_b", "session", True),
    ]
    assert held_warnings(programs, lambda p: p.name == "track_b") == [
        "backup is held by a command: its scheduled runs are skipped until "
        "`observer ctl run backup`",
        "track_b is held by a command during its phase: `observer ctl start track_b` runs it",
    ]


def test_the_supervisors_records_a_power_cut_tore_are_set_aside_and_alerted(
    tmp_path: Path,
) -> None:
    """Its holds, its jobs' runs and its children's groups, torn: each is kept aside, one
    alert each goes to the writer, and the supervisor runs as after a first start."""
    run = tmp_path / "data" / "run"
    run.mkdir(parents=True, mode=0o700)
    torn = {
        "holds.json": b'["crash',
        "schedule.json": b"",
        "supervisor-children.json": b"\x00" * 64,
    }
    for name, data in torn.items():
        (run / name).write_bytes(data)
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + CRASHING).start(healthy=False)
    sql = "select code, severity, subject, message from alerts where code = 'state_file_unreadable'"
    alerts = wait_until(lambda: len(rows := stored(sup, sql)) == 3 and rows, 60, "three alerts")
    assert sorted((a[0], a[1], a[2]) for a in alerts) == sorted(
        (STATE_FILE_UNREADABLE, "warning", str(run / name)) for name in torn
    )
    for name, data in torn.items():
        aside = set_aside(run / name, data)
        (message,) = [a[3] for a in alerts if a[2] == str(run / name)]
        assert f"set aside as {aside.name}" in message
    assert json.loads((run / "holds.json").read_text()) == []  # written again, none held
    assert sup.program("crashing")["state"] != "stopped"  # the hold it named is lost: said
    assert sup.terminate() == 0
