"""A throw-away PostgreSQL primary and its streaming standby, on free ports in a temp folder.

Built with the server's own tools (initdb, pg_basebackup -R, pg_ctl) so the standby is a real
one: WAL streamed from the primary and replayed. The shared cluster on 5432 is never touched.
initdb refuses to run as root, so as root the servers run as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import free_port

PG_BIN = Path(os.environ.get("OBSERVER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
TOOLS = ("initdb", "pg_basebackup", "pg_ctl")


def missing_tools() -> str:
    """Why a pair cannot be made here, or ``""``."""
    absent = [t for t in TOOLS if not (PG_BIN / t).is_file()]
    if absent:
        return f"no {', '.join(absent)} in {PG_BIN} (set OBSERVER_TEST_PG_BIN)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run the servers"
    return ""


class StreamingPair:
    """``start()`` a primary and a standby of it; ``stop_standby()``; ``close()`` both."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="observer-replica-"))
        self.primary_port, self.standby_port = free_port(), free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def standby_url(self) -> str:
        return self.url(self.standby_port)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(PG_BIN / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")

    def _pg_ctl(self, name: str, action: str) -> None:
        data = str(self.dir / name)
        log = str(self.dir / f"{name}.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-m", "fast", action)

    def start(self) -> StreamingPair:
        primary = self.dir / "primary"
        self._run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "--no-sync")
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.primary_port}\n"
                f"unix_socket_directories = '{self.dir}'\nwal_level = replica\n"
                "max_wal_senders = 4\nfsync = off\nmax_connections = 40\n"
            )
        with (primary / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self._pg_ctl("primary", "start")
        standby = self.dir / "standby"
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary_port),
            "-U",
            "postgres",
            "-D",
            str(standby),
            "-R",
            "-X",
            "stream",
        )
        with (standby / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.standby_port}\n")  # the later setting wins
        self._pg_ctl("standby", "start")
        return self

    def stop_standby(self) -> None:
        self._pg_ctl("standby", "stop")

    def close(self) -> None:
        for name in ("standby", "primary"):
            if (self.dir / name / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.dir / name), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
