"""``observer ctl status`` prints the programs' own words as they are, and the warnings.

A detail or problem holds what a program said (a job's last line of output); rich read it as
markup, so a ``[/...`` in it made ``ctl status`` fail with a MarkupError instead of printing.
"""

from __future__ import annotations

from typing import Any

import pytest

from observer.supervisor.control import Reply
from observer.supervisor.ctl import _print_status

ODD = "exit code 2 before READY, not retried: Error: [/etc/x] [bold]not bold[/bold]"


def program(detail: str) -> dict[str, Any]:
    return {
        "name": "universe",
        "kind": "job",
        "state": "fatal",
        "pid": 0,
        "restarts": 0,
        "cpu_percent": 0.0,
        "rss_bytes": 0,
        "uptime_s": 0.0,
        "detail": detail,
        "counters": {},
    }


def test_details_problems_and_warnings_are_printed_as_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # each row on one line
    data = {
        "phase": "idle",
        "time": "2026-11-20T21:00:00+09:00",
        "programs": [program(ODD)],
        "problems": [f"universe is fatal: {ODD}"],
        "warnings": ["track_b is held by a command during its phase: [/x]"],
    }
    _print_status([(None, Reply(True, "unhealthy", data=data))])
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if "universe" in line and "fatal" in line)
    assert ODD in row
    assert f"unhealthy: universe is fatal: {ODD}" in lines
    assert "warning: track_b is held by a command during its phase: [/x]" in lines
