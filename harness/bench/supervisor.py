"""``observer bench supervisor``: restart and crash-detection times, against raw baselines.

A real ``observer supervise`` runs, in a temporary folder, one loadgen worker and every program
of the configuration less its schedule, its clock at a session day's warmup (so the session
workers are in phase). It times restarts and job runs to READY against a bare interpreter's
start, and a SIGKILL's detection and respawn against a parent's own ``waitpid``
(`run_supervisor_bench`).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from observer.calendar.clock import clock_from_spec
from observer.config.load import default_config_path, load_settings
from observer.config.tree import Settings
from observer.db.engine import make_engine
from observer.runtime import poll_until
from observer.supervisor.control import request

__all__ = ["NotTimeable", "SupervisorBenchReport", "run_supervisor_bench"]

_CLOCK = "2026-11-20T08:05:00+09:00@1x"  # a Friday session, warmup: in phase, before 09:00
_SETTINGS = """
[kis]
sim_url = "http://127.0.0.1:1"   # closed: KIS calls fail at once
[master_file]
attempts = 1
[supervisor]
metrics_port = 0
kis_preflight = false              # the closed simulator is the point: time the restarts
"""
SETTLE_S = 3.0  # seconds up before a program counts as settled
_LOAD = """
[programs.load]
kind = "daemon"
command = ["python", "-m", "harness.loadgen", "--source", "load", "--events", "0",
           "--rate", "100"]
depends_on = ["writer"]
"""


class NotTimeable(ValueError):
    """``--program`` names a program the configuration does not run, or only jobs."""


@dataclass
class SupervisorBenchReport:
    """Numbers of one run (seconds)."""

    restart_s: list[float] = field(default_factory=list)
    start_baseline_s: list[float] = field(default_factory=list)
    programs: dict[str, list[float]] = field(default_factory=dict)  # restart (or run) to READY
    bare_start_s: list[float] = field(default_factory=list)
    ctl_restart_s: list[float] = field(default_factory=list)
    ctl_program: str = ""  # the worker `observer ctl restart` restarts
    detect_s: list[float] = field(default_factory=list)
    respawn_s: list[float] = field(default_factory=list)
    detect_baseline_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """One JSON-able object (medians and maxima)."""
        med = statistics.median
        bare = med(self.bare_start_s)
        return {
            "restart_to_ready_s": round(med(self.restart_s), 4),
            "restart_to_ready_max_s": round(max(self.restart_s), 4),
            "writer_restart_to_ready_s": round(med(self.programs["writer"]), 4),
            "start_baseline_s": round(med(self.start_baseline_s), 4),
            "restart_ratio": round(med(self.restart_s) / med(self.start_baseline_s), 2),
            "programs": {
                name: {
                    "ready_s": round(med(times), 4),
                    "ready_max_s": round(max(times), 4),
                    "ratio": round(med(times) / bare, 1),
                }
                for name, times in self.programs.items()
            },
            "bare_start_s": round(bare, 4),
            "ctl_restart_s": round(med(self.ctl_restart_s), 4),
            "ctl_program": self.ctl_program,
            "kill_detect_s": round(med(self.detect_s), 4),
            "kill_detect_max_s": round(max(self.detect_s), 4),
            "kill_to_ready_s": round(med(self.respawn_s), 4),
            "detect_baseline_s": round(med(self.detect_baseline_s), 6),
        }

    def lines(self) -> list[str]:
        """Readable lines."""
        s = self.summary()
        return [
            f"loadgen -> READY         median {s['restart_to_ready_s']:.3f}s "
            f"max {s['restart_to_ready_max_s']:.3f}s "
            f"(raw start of its module {s['start_baseline_s']:.3f}s, x{s['restart_ratio']})",
            *(
                f"{name + ' -> READY':24} median {p['ready_s']:.3f}s max {p['ready_max_s']:.3f}s "
                f"(x{p['ratio']} a bare interpreter start, {s['bare_start_s']:.3f}s)"
                for name, p in s["programs"].items()
            ),
            f"{'observer ctl restart ' + s['ctl_program']:24} median {s['ctl_restart_s']:.3f}s "
            "(the command, end to end: stop, start, READY)",
            f"SIGKILL -> detected      median {s['kill_detect_s']:.4f}s "
            f"max {s['kill_detect_max_s']:.4f}s (raw waitpid {s['detect_baseline_s']:.6f}s)",
            f"SIGKILL -> READY again   median {s['kill_to_ready_s']:.3f}s",
        ]


def _start_baseline(code: str = "import harness.loadgen") -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - began


def _detect_baseline() -> float:
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    began = time.perf_counter()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return time.perf_counter() - began


def _status(sock: Path) -> dict[str, Any]:
    return request(sock, "status", [], 30).data


def _pid(sock: Path, name: str) -> int:
    program = next(p for p in _status(sock)["programs"] if p["name"] == name)
    return int(program["pid"]) if program["state"] == "running" else 0


def _settled(sock: Path, settle_s: float) -> bool:
    """Every daemon and session worker running for ``settle_s``: past what follows its READY.

    A program loads its work code after READY; timing the next restart while the others
    still do would time the machine's load, not the restart.
    """
    return all(
        p["state"] == "running" and p["uptime_s"] >= settle_s
        for p in _status(sock)["programs"]
        if p["kind"] != "job"
    )


def _programs_toml(settings: Settings) -> str:
    """The configured programs as they are, without their schedules (jobs run on request)."""
    lines = []
    for name, program in settings.programs.items():
        if not program.enabled:
            continue
        lines += [
            f"[programs.{name}]",
            f'kind = "{program.kind}"',
            f"command = {json.dumps(list(program.command))}",
            f"depends_on = {json.dumps(list(program.depends_on))}",
            f"phases = {json.dumps(list(program.phases))}",
        ]
    return "\n".join(lines) + "\n"


def _ready_s(sock: Path, command: str, name: str) -> float:
    reply = request(sock, command, [name], 90)
    if not reply.ok:
        raise RuntimeError(f"{command} {name}: {reply.reason} ({reply.code})")
    return float(reply.data["ready_s"])


def _time_programs(
    sock: Path,
    settings: Settings,
    timed: frozenset[str],
    rounds: int,
    settle_s: float,
    report: SupervisorBenchReport,
) -> None:
    """Restart (or run) each program in ``timed``, then ``observer ctl restart`` a worker."""
    for name, program in settings.programs.items():
        if not program.enabled or name not in timed:
            continue
        times = report.programs.setdefault(name, [])
        for _ in range(rounds):
            if program.kind == "job":
                times.append(_ready_s(sock, "run", name))
                request(sock, "stop", [name], 90)  # done or not: the next run starts afresh
            else:
                times.append(_ready_s(sock, "restart", name))
        poll_until(lambda: _settled(sock, settle_s), f"every program settled after {name}")
    worker = next(
        n for n, p in settings.programs.items() if p.kind != "job" and n != "writer" and n in timed
    )
    report.ctl_program = worker
    for _ in range(rounds):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "observer", "ctl", "--socket", str(sock), "restart", worker],
            check=True,
            capture_output=True,
        )
        report.ctl_restart_s.append(time.perf_counter() - began)


def run_supervisor_bench(
    rounds: int = 5, settle_s: float = SETTLE_S, only: tuple[str, ...] = ()
) -> SupervisorBenchReport:
    """Measure ``rounds`` restarts and kills against a real supervisor.

    Each restart is timed once every program has been up ``settle_s`` seconds. Every
    configured program runs (``config/observer.toml``, or ``$OBSERVER_CONFIG``); with
    ``only``, the writer and those programs are timed.

    * **restart**: ``restart load`` through the control socket, command to READY, against
      the raw cost of starting the same worker module (``python -c "import harness.loadgen"``).
    * **programs**: ``restart NAME`` of each daemon and session worker, and ``run NAME`` of
      each job (then ``stop NAME``), command to READY, against a bare interpreter start
      (``python -c pass``); and ``observer ctl restart`` of a worker, end to end, as a user
      runs it. KIS points at a closed port: what a program does after READY fails, quickly.
    * **kill**: SIGKILL of the worker; detection is the supervisor's ``exited`` lifecycle
      event time minus the kill time, respawn the ``ready`` event; the baseline is a
      parent's own ``waitpid`` on a child killed the same way.
    """
    configured = load_settings(default_config_path())
    timed = _timed(configured, only)
    report = SupervisorBenchReport()
    for _ in range(rounds):
        report.start_baseline_s.append(_start_baseline())
        report.bare_start_s.append(_start_baseline("pass"))
        report.detect_baseline_s.append(_detect_baseline())
    clock = clock_from_spec(_CLOCK)  # anchored now; event times are read on it
    with tempfile.TemporaryDirectory(prefix="observer-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'data' / 'observer.db'}"
        config = work / "observer.toml"
        config.write_text(
            f'[paths]\ndata_dir = "{work / "data"}"\n[database]\nurl = "{url}"\n'
            f"{_SETTINGS}{_programs_toml(configured)}{_LOAD}"
        )
        sock = work / "data" / "run" / "control.sock"
        with (work / "supervisor.log").open("wb") as log:
            sup = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "observer",
                    "supervise",
                    "--config",
                    str(config),
                    "--clock",
                    clock.spec,
                ],
                stdout=log,
                stderr=log,
                cwd=work,
            )
        try:
            poll_until(lambda: sock.exists() and _settled(sock, settle_s), "supervisor", child=sup)
            for _ in range(rounds):
                reply = request(sock, "restart", ["load"], 60)
                report.restart_s.append(float(reply.data["ready_s"]))
            _time_programs(sock, configured, timed, max(1, rounds // 2), settle_s, report)
            poll_until(lambda: _settled(sock, settle_s), "every program settled after restarts")
            for _ in range(rounds):
                pid = _pid(sock, "load")

                def respawned(pid: int = pid) -> bool:
                    return _pid(sock, "load") not in (0, pid)

                killed_ns = clock.now_ns()
                os.kill(pid, signal.SIGKILL)
                poll_until(respawned, "respawn")
                exited, ready = _events_after(url, killed_ns)
                report.detect_s.append((exited - killed_ns) / 1e9)
                report.respawn_s.append((ready - killed_ns) / 1e9)
        finally:
            sup.send_signal(signal.SIGTERM)
            sup.wait(90)
    return report


def _timed(settings: Settings, only: tuple[str, ...]) -> frozenset[str]:
    """The enabled programs to time: all, or the writer and ``only`` (each must be enabled)."""
    enabled = {name for name, program in settings.programs.items() if program.enabled}
    if not only:
        return frozenset(enabled)
    unknown = sorted(set(only) - enabled)
    if unknown:
        raise NotTimeable(f"not an enabled program of the configuration: {', '.join(unknown)}")
    if not any(settings.programs[n].kind != "job" and n != "writer" for n in only):
        raise NotTimeable("name at least one program that is not a job (ctl restart times it)")
    return frozenset({"writer", *only})


def _events_after(url: str, after_ns: int) -> tuple[int, int]:
    """produced_ns of load's first ``exited`` and ``ready`` events after ``after_ns``."""

    def query() -> tuple[int, int] | None:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                result = conn.execute(
                    text(
                        "select action, min(produced_ns) from worker_events where "
                        "worker = 'load' and produced_ns > :after group by action"
                    ),
                    {"after": after_ns},
                )
                rows = {str(action): int(ns) for action, ns in result}
        finally:
            engine.dispose()
        if "exited" in rows and "ready" in rows:
            return int(rows["exited"]), int(rows["ready"])
        return None

    events = poll_until(query, "lifecycle events committed")
    assert events is not None
    return events
