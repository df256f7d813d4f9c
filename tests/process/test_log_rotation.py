"""A supervised program's log file rotates by size and keeps N files, and no line is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from observer.process.log_files import LOG_FILE_ENV, LOG_KEEP_ENV, LOG_MAX_BYTES_ENV, rotated_names
from tests.support import WRITER_PROGRAM, SupervisorProcess, wait_until

# Three threads log numbered lines while the main thread prints to stdout, which is the same
# file: rotation must neither lose nor split a line of either. Each printed line is one write:
# unbuffered (the supervisor sets PYTHONUNBUFFERED), print() writes its text and its newline
# apart, and another thread's line may come between them, rotation or not.
CHATTER = """
import logging, sys, threading
from observer.process.logs import setup_logging
setup_logging()
log = logging.getLogger("chatter")
def talk(t):
    for n in range({lines}):
        log.info("line %d-%d %s", t, n, "x" * 40)
threads = [threading.Thread(target=talk, args=(t,)) for t in range(3)]
for th in threads: th.start()
for n in range(50): sys.stdout.write(f"printed {{n}}\\n")  # one write a line
for th in threads: th.join()
"""


def _lines(path: Path, keep: int) -> list[str]:
    """Every line of the log and its rotated files, oldest first."""
    lines: list[str] = []
    for name in reversed(rotated_names(path, keep)):
        if name.exists():
            lines += name.read_text().splitlines()
    return lines


def _logged(lines: list[str]) -> list[str]:
    return [json.loads(line)["msg"].split()[1] for line in lines if line.startswith("{")]


def test_a_supervised_program_rotates_its_log_and_loses_no_line(tmp_path: Path) -> None:
    lines_per_thread, max_bytes, keep = 1000, 20_000, 100
    job = f"""
[programs.chatter]
kind = "job"
command = ["python", "-c", '''{CHATTER.format(lines=lines_per_thread)}''']
run_on_start = true
"""
    settings = f"log_max_bytes = {max_bytes}\nlog_keep = {keep}\n"
    sup = SupervisorProcess(tmp_path, WRITER_PROGRAM + job, settings=settings).start()
    wait_until(lambda: sup.program("chatter")["state"] == "exited", 60, "the job done")
    log = sup.data_dir / "log" / "chatter.log"
    files = [p for p in rotated_names(log, keep) if p.exists()]
    assert len(files) > 5  # ~3000 lines of ~170 bytes in 20 kB files
    lines = _lines(log, keep)
    logged = _logged(lines)
    expected = {f"{t}-{n}" for t in range(3) for n in range(lines_per_thread)}
    assert len(logged) == len(set(logged)) and set(logged) == expected
    printed = [line for line in lines if line.startswith("printed ")]
    assert printed == [f"printed {n}" for n in range(50)]  # whole lines, in order
    # A file passes max_bytes only by what was printed around the logging (not checked).
    assert all(p.stat().st_size <= max_bytes + 50 * 12 for p in files)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)


def _run_child(log: Path, *, lines: int, max_bytes: int, keep: int, code: str = "") -> None:
    env = {
        **os.environ,
        LOG_FILE_ENV: str(log),
        LOG_MAX_BYTES_ENV: str(max_bytes),
        LOG_KEEP_ENV: str(keep),
        "OBSERVER_LOG_FORMAT": "json",
    }
    program = code or CHATTER.format(lines=lines)
    with log.open("ab") as out:
        subprocess.run(
            [sys.executable, "-c", program],
            stdout=out,
            stderr=out,
            env=env,
            check=True,
            timeout=120,
        )


def test_only_keep_rotated_files_remain_and_they_hold_the_newest_lines(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    code = """
import logging
from observer.process.logs import setup_logging
setup_logging()
for n in range(2000):
    logging.getLogger("p").info("line %d", n)
"""
    _run_child(log, lines=0, max_bytes=8192, keep=2, code=code)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["p.log", "p.log.1", "p.log.2"]
    numbers = [int(n) for n in _logged(_lines(log, 2))]
    # The oldest files were dropped whole: what is left is a contiguous run up to the last.
    assert numbers == list(range(numbers[0], 2000)) and numbers[0] > 0


def test_a_log_moved_away_by_another_tool_is_reopened(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    moved = tmp_path / "p.log.moved"
    code = f"""
import logging, os
from observer.process.logs import setup_logging
setup_logging()
log = logging.getLogger("p")
for n in range(100):
    log.info("line %d", n)
os.replace({str(log)!r}, {str(moved)!r})  # as logrotate does (without copytruncate)
for n in range(100, 200):
    log.info("line %d", n)
"""
    _run_child(log, lines=0, max_bytes=10_000_000, keep=3, code=code)
    before = [int(n) for n in _logged(moved.read_text().splitlines())]
    after = [int(n) for n in _logged(log.read_text().splitlines())]
    assert before == list(range(100)) and after == list(range(100, 200))


def test_a_rotation_never_cuts_a_print_that_is_half_written(tmp_path: Path) -> None:
    """A print whose text is buffered and whose newline is not yet: rotating must not flush
    it from the logging thread (the two halves would land in different files)."""
    log = tmp_path / "p.log"
    code = """
import logging, sys
from observer.process.logs import setup_logging
setup_logging()
sys.stdout.reconfigure(write_through=False)  # buffered, whatever PYTHONUNBUFFERED says
sys.stdout.write("half a print")  # buffered, no newline yet
for n in range(300):
    logging.getLogger("p").info("line %d", n)  # several rotations meanwhile
sys.stdout.write(" and its end\\n")
sys.stdout.flush()
"""
    _run_child(log, lines=0, max_bytes=8192, keep=50, code=code)
    lines = _lines(log, 50)
    assert "half a print and its end" in lines
    assert [int(n) for n in _logged(lines)] == list(range(300))


def test_the_supervisor_outside_supervisord_rotates_its_own_log(tmp_path: Path) -> None:
    """``observer supervise --log-file``: its own lines go to the file, rotated, none lost."""
    keep = 50
    job = """
[programs.blink]
kind = "job"
command = ["python", "-c", "pass"]
"""
    settings = f"log_max_bytes = 4096\nlog_keep = {keep}\n"
    own = tmp_path / "own" / "supervisor.log"
    sup = SupervisorProcess(
        tmp_path, WRITER_PROGRAM + job, settings=settings, args=["--log-file", str(own)]
    ).start()

    def ended() -> int:
        return sum(" blink pid " in line and " ended: " in line for line in _lines(own, keep))

    runs = 30
    for n in range(runs):
        assert sup.ctl("run", "blink").ok
        wait_until(lambda n=n: ended() > n, 30, f"run {n + 1}")
    assert sup.terminate() == 0
    files = [p for p in rotated_names(own, keep) if p.exists()]
    assert len(files) >= 2  # 60 spawn and end lines and the start-up's: past 4 kB
    lines = _lines(own, keep)
    assert sum(" blink spawned pid " in line for line in lines) == runs
    assert ended() == runs
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    assert all(p.stat().st_size <= 4096 for p in files)
    assert " spawned pid " not in sup.log.read_text()  # stderr carried none of them
