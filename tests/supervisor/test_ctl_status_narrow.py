"""``observer ctl status`` on a narrow terminal or a pipe: no value cut, no column blanked.

At 80 columns (a pipe's width) rich squeezed the accounts table until the account read
"ac…" and the for, regs and lag columns, and the programs' detail, had no width at all. Now
a table whose columns do not all fit whole prints its rows as lines instead.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from observer.supervisor import ctl
from observer.supervisor.control import Reply
from observer.supervisor.ctl import _print_status, ctl_app


def program(name: str, detail: str = "finished") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "job",
        "state": "exited",
        "pid": 0,
        "restarts": 0,
        "replaced": {"hung": 1, "crashed": 2},
        "cpu_percent": 0.0,
        "rss_bytes": 0,
        "uptime_s": 0.0,
        "detail": detail,
        "counters": {},
    }


def account(name: str, lag_s: float = 3.0) -> dict[str, Any]:
    return {
        "account": name,
        "stream": "up",
        "state_age_s": 540.0,
        "registered": 41,
        "wanted": 41,
        "last_tick_age_s": 1.0,
        "delivery_lag_s": lag_s,
        "reconnects_1h": 0,
        "reconnect_budget": 6,
        "token_age_s": 1080.0,
        "token_expires_in_s": 85320.0,
        "approval_key_age_s": 900.0,
        "rest_errors_5m": 0,
        "readiness": None,
        "problems": [],
    }


def status_data(programs: list[dict[str, Any]], accounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "phase": "full_operation",
        "time": "2026-11-25T10:00:00+09:00",
        "healthy": True,
        "programs": programs,
        "accounts": accounts,
        "problems": [],
        "warnings": [],
    }


def status_cli(
    monkeypatch: pytest.MonkeyPatch, columns: int, data: dict[str, Any]
) -> tuple[int, str]:
    """``observer ctl status`` against a supervisor that answers ``data``, ``columns`` wide."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(ctl, "request", lambda *_args: Reply(True, "healthy", data=data))
    result = CliRunner().invoke(ctl_app, ["--socket", "/nonexistent.sock", "status"])
    return result.exit_code, result.output


FIGURES = ["stream up", "for 9m", "regs 41/41", "last tick 1s", "lag 3s", "expires in 23.7h"]


def test_a_pipe_gets_each_account_whole_on_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    data = status_data([program("archive_verify")], [account("acct1"), account("acct2")])
    code, output = status_cli(monkeypatch, 80, data)
    assert code == 0
    assert "…" not in output
    lines = output.splitlines()
    for name in ("acct1", "acct2"):
        line = next(line for line in lines if line.startswith(f"{name}: "))
        assert all(figure in line for figure in FIGURES), line
    detail = next(line for line in lines if line.startswith("archive_verify: "))
    assert "detail finished" in detail


def test_a_wide_terminal_gets_the_tables_with_every_column(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = status_data([program("archive_verify")], [account("acct1")])
    code, output = status_cli(monkeypatch, 220, data)
    assert code == 0
    assert "…" not in output
    header = next(line for line in output.splitlines() if "account" in line and "lag" in line)
    assert all(h in header for h in ("for", "regs", "lag", "problems"))
    row = next(line for line in output.splitlines() if "acct1" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[:6] == ["acct1", "up", "9m", "41/41", "1s", "3s"]


@contextmanager
def columns(width: int) -> Iterator[io.StringIO]:
    """Rich's console at ``width`` columns, printing into the yielded buffer."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        with redirect_stdout(io.StringIO()) as out:
            yield out
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=24)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=40, max_value=260),
    accounts=st.lists(NAMES, min_size=1, max_size=4, unique=True),
    programs=st.lists(NAMES, min_size=1, max_size=4, unique=True),
    lag=st.floats(min_value=0, max_value=10**6),
)
def test_at_any_width_no_value_is_cut(
    width: int, accounts: list[str], programs: list[str], lag: float
) -> None:
    programs, accounts = [f"p_{p}" for p in programs], [f"a_{a}" for a in accounts]
    data = status_data([program(p, "done") for p in programs], [account(a, lag) for a in accounts])
    with columns(width) as out:
        _print_status([(None, Reply(True, "healthy", data=data))])
    printed = out.getvalue()
    assert "…" not in printed
    lines = printed.splitlines()
    for name in accounts:  # its row, whole: a table row or a line
        row = next(line for line in lines if line.startswith((f"│ {name} ", f"{name}: ")))
        assert "41/41" in row and ctl._duration(lag) in row and "23.7h" in row, (width, row)
    for name in programs:
        row = next(line for line in lines if line.startswith((f"│ {name} ", f"{name}: ")))
        assert "done" in row and "exited" in row and "1 hung, 2 crashed" in row, (width, row)
