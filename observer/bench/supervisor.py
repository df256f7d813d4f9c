"""``observer bench supervisor``: restart and crash-detection times, against raw baselines.

A real ``observer supervise`` runs the writer and one loadgen worker in a temporary folder.

* **restart**: ``restart load`` through the control socket, command to READY, against the
  raw cost of starting the same worker module (``python -c "import observer.loadgen"``).
* **kill**: SIGKILL of the worker; detection is the supervisor's ``exited`` lifecycle event
  time minus the kill time, respawn the ``ready`` event; the baseline is a parent's own
  ``waitpid`` on a child killed the same way.
"""

from __future__ import annotations

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

from observer.db.engine import make_engine
from observer.runtime import poll_until
from observer.supervisor.control import request

__all__ = ["SupervisorBenchReport", "run_supervisor_bench"]

_PROGRAMS = """
[programs.writer]
kind = "daemon"
command = ["observer", "writer"]
[programs.load]
kind = "daemon"
command = ["python", "-m", "observer.loadgen", "--source", "load", "--events", "0",
           "--rate", "100"]
depends_on = ["writer"]
"""


@dataclass
class SupervisorBenchReport:
    """Numbers of one run (seconds)."""

    restart_s: list[float] = field(default_factory=list)
    restart_writer_s: list[float] = field(default_factory=list)
    start_baseline_s: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)
    respawn_s: list[float] = field(default_factory=list)
    detect_baseline_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """One JSON-able object (medians and maxima)."""
        med = statistics.median
        return {
            "restart_to_ready_s": round(med(self.restart_s), 4),
            "restart_to_ready_max_s": round(max(self.restart_s), 4),
            "writer_restart_to_ready_s": round(med(self.restart_writer_s), 4),
            "start_baseline_s": round(med(self.start_baseline_s), 4),
            "restart_ratio": round(med(self.restart_s) / med(self.start_baseline_s), 2),
            "kill_detect_s": round(med(self.detect_s), 4),
            "kill_detect_max_s": round(max(self.detect_s), 4),
            "kill_to_ready_s": round(med(self.respawn_s), 4),
            "detect_baseline_s": round(med(self.detect_baseline_s), 6),
        }

    def lines(self) -> list[str]:
        """Readable lines."""
        s = self.summary()
        return [
            f"restart worker -> READY  median {s['restart_to_ready_s']:.3f}s "
            f"max {s['restart_to_ready_max_s']:.3f}s "
            f"(raw start of its module {s['start_baseline_s']:.3f}s, x{s['restart_ratio']})",
            f"restart writer -> READY  median {s['writer_restart_to_ready_s']:.3f}s",
            f"SIGKILL -> detected      median {s['kill_detect_s']:.4f}s "
            f"max {s['kill_detect_max_s']:.4f}s (raw waitpid {s['detect_baseline_s']:.6f}s)",
            f"SIGKILL -> READY again   median {s['kill_to_ready_s']:.3f}s",
        ]


def _start_baseline() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import observer.loadgen"], check=True)
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


def run_supervisor_bench(rounds: int = 5) -> SupervisorBenchReport:
    """Measure ``rounds`` restarts and kills against a real supervisor."""
    report = SupervisorBenchReport()
    for _ in range(rounds):
        report.start_baseline_s.append(_start_baseline())
        report.detect_baseline_s.append(_detect_baseline())
    with tempfile.TemporaryDirectory(prefix="observer-bench-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'data' / 'observer.db'}"
        config = work / "observer.toml"
        config.write_text(
            f'[paths]\ndata_dir = "{work / "data"}"\n[database]\nurl = "{url}"\n'
            f"[supervisor]\nmetrics_port = 0\n{_PROGRAMS}"
        )
        sock = work / "data" / "run" / "control.sock"
        with (work / "supervisor.log").open("wb") as log:
            sup = subprocess.Popen(
                [sys.executable, "-m", "observer", "supervise", "--config", str(config)],
                stdout=log,
                stderr=log,
                cwd=work,
            )
        try:
            poll_until(lambda: sock.exists() and _pid(sock, "load"), "supervisor", child=sup)
            for _ in range(rounds):
                reply = request(sock, "restart", ["load"], 60)
                report.restart_s.append(float(reply.data["ready_s"]))
            for _ in range(max(1, rounds // 2)):
                reply = request(sock, "restart", ["writer"], 60)
                report.restart_writer_s.append(float(reply.data["ready_s"]))
            poll_until(lambda: _pid(sock, "load"), "load after writer restarts")
            for _ in range(rounds):
                pid = _pid(sock, "load")

                def respawned(pid: int = pid) -> bool:
                    return _pid(sock, "load") not in (0, pid)

                killed_ns = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                poll_until(respawned, "respawn")
                exited, ready = _events_after(url, killed_ns)
                report.detect_s.append((exited - killed_ns) / 1e9)
                report.respawn_s.append((ready - killed_ns) / 1e9)
        finally:
            sup.send_signal(signal.SIGTERM)
            sup.wait(90)
    return report


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
