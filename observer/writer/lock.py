"""One writer per database and per endpoint: flock, and the server's own lock.

A SQLite file's lock file is next to it; a server database's is in the run directory,
keyed by its URL, and the server holds a lock of its own too (`ServerLock`), which every
host and run directory sees.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.engine import URL

from bus.lock import InstanceLock, LockHeld
from observer.errors import WriterLocked
from observer.writer.server_lock import ServerLock

__all__ = ["WriterLock"]


class WriterLock:
    """Exclusive locks on every path (and ``server``'s database); freed by close or death."""

    def __init__(self, paths: list[Path], server: URL | None = None) -> None:
        self._locks: list[InstanceLock] = []
        self._server: ServerLock | None = None
        try:
            for path in paths:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    self._locks.append(InstanceLock(path))
                except LockHeld as exc:
                    raise WriterLocked(f"another writer (pid {exc.holder}) holds {path}") from exc
            if server is not None:
                self.take_server(server)
        except BaseException:
            self.close()
            raise

    def take_server(self, server: URL) -> None:
        """Take ``server``'s own lock as well (`ServerLock`), if this does not hold it yet.

        Raises `WriterLocked` if another writer holds it, `StoreError` if the server does not
        answer (the flocks are kept: the writer waits for its server holding them).
        """
        if self._server is None:
            self._server = ServerLock(server)

    def release_server(self) -> None:
        """Let go of the server's lock (its connection), keeping the flocks."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def held(self) -> bool:
        """False once another writer took the server's lock (see `ServerLock.held`)."""
        return self._server is None or self._server.held()

    @staticmethod
    def paths_for(url: URL, run_dir: Path, ingest_socket: Path | None) -> list[Path]:
        """The lock files guarding ``url`` (next to a SQLite file) and the ingest socket."""
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            database = Path(str(url.database)).resolve()
            paths = [database.with_name(database.name + ".writer.lock")]
        else:
            key = url.render_as_string(hide_password=True).encode()
            paths = [run_dir / f"writer-{hashlib.sha256(key).hexdigest()[:16]}.lock"]
        if ingest_socket is not None:
            paths.append(ingest_socket.with_name(ingest_socket.name + ".lock"))
        return paths

    def close(self) -> None:
        """Release every lock."""
        for lock in self._locks:
            lock.close()
        self._locks = []
        self.release_server()
