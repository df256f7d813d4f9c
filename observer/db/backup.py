"""Backups that restore: the database and the files beside it, proven by restoring them.

A backup is an owner-only folder ``<dir>/observer-<UTC time>/``: the database's dump (`_dump`),
``files/`` (``[backup] files`` and the configuration, `_make`) and ``MANIFEST.json`` (each part's
size and sha256, the database's kind and schema revision). It counts only once verified
(`verify_backup`). Names and rotation: `observer.db.backup_folders`; room and cleanup:
`observer.db.backup_space`; SQLite restores: `observer.db.sqlite_restore`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from observer.config.files import config_files
from observer.config.tree import Settings
from observer.db import migrate
from observer.db.audit_queries import audit_sources
from observer.db.backup_folders import (
    FAILED,
    KEEP_FAILED,
    MANIFEST,
    WHY,
    Making,
    clear_leftovers,
    refuse_unverified,
    rotate,
    scratch_folder,
)
from observer.db.backup_space import (
    admin_url,
    drop_dead_scratch_databases,
    out_of_space,
    require_room,
    scratch_prefix,
    sigterm_ends_it,
)
from observer.db.engine import (
    display_url,
    libpq_params,
    make_engine,
    normalize_url,
    require_database,
    sqlite_file,
)
from observer.db.scratch import scratch_postgres
from observer.db.sqlite_restore import restore_sqlite_file
from observer.errors import BackupError, ConfigError, StoreError
from observer.process.private_files import write_private

__all__ = ["MANIFEST", "Backup", "Part", "make_backup", "restore_backup", "verify_backup"]

_DUMPS = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
_CHUNK = 1 << 20
_LINE = 300  # an error's characters at most: one line, whatever failed


@dataclass(frozen=True, slots=True)
class Part:
    """One file of a backup."""

    name: str  # its path inside the backup folder
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Backup:
    """A verified backup."""

    path: Path
    database: str  # "sqlite" or "postgresql"
    revision: str
    created: str  # ISO UTC
    parts: tuple[Part, ...]
    seconds: float = 0.0

    @property
    def size(self) -> int:
        """Bytes of every part together."""
        return sum(part.size for part in self.parts)

    def summary(self) -> dict[str, object]:
        """What ``observer db backup --json`` prints."""
        return {
            "path": str(self.path),
            "database": self.database,
            "revision": self.revision,
            "created": self.created,
            "parts": len(self.parts),
            "bytes": self.size,
            "seconds": round(self.seconds, 2),
        }


def make_backup(
    settings: Settings, config_path: Path | None, dest: Path | None = None, keep: int | None = None
) -> Backup:
    """Back up the configured database and files into ``dest``, verify, keep the newest.

    Made as ``*.partial`` and renamed into place once verified, so the newest ``keep`` verified
    backups are always restorable. SIGTERM (the supervisor's stop) ends it through its
    cleanup; what a killed backup left (a ``.partial``, a scratch copy or database) is removed
    first, once its maker is dead.

    Raises
    ------
    BackupError
        The database is in memory, ``dest`` is inside a folder the backup copies or has not
        the room for it (nothing is written), or the dump, a copy or the verification failed
        (the folder is left as ``*.failed``, its parts only if whole; the newest
        `KEEP_FAILED` failed ones are kept).
    """
    started = time.monotonic()
    url = normalize_url(settings.database.url)
    kind = url.get_backend_name()
    if kind not in _DUMPS:
        raise BackupError(f"cannot back up a {kind} database")
    if kind == "sqlite" and sqlite_file(url) is None:
        raise BackupError("cannot back up a SQLite database in memory: it has no file to copy")
    try:
        require_database(url)
    except StoreError as exc:
        raise BackupError(str(exc)) from exc
    data_dir = Path(settings.paths.data_dir)
    dest = dest or Path(settings.backup.dir or data_dir / "backups")
    _refuse_copied_dest(dest, data_dir, settings.backup.files)
    with sigterm_ends_it():
        try:
            dest.mkdir(mode=0o700, parents=True, exist_ok=True)
            clear_leftovers(dest)
        except OSError as exc:
            raise BackupError(f"cannot make a backup folder in {dest}: {exc}") from exc
        if kind == "postgresql":
            drop_dead_scratch_databases(admin_url(url))
        require_room(settings, url, dest)
        backup, final = _make(settings, config_path, url, dest, keep)
    return Backup(
        final,
        backup.database,
        backup.revision,
        backup.created,
        backup.parts,
        time.monotonic() - started,
    )


def _make(
    settings: Settings, config_path: Path | None, url: URL, dest: Path, keep: int | None
) -> tuple[Backup, Path]:
    """Dump, copy, list and verify into a new folder in ``dest``; the backup and its path.

    ``files/`` holds each folder of ``[backup] files`` under ``data_dir``, the configuration as
    ``config.toml`` and the files it extends as ``config.extends-N.toml`` (N = 1 its base, 2
    that one's, ...); the manifest's ``config`` lists their original paths.
    """
    kind = url.get_backend_name()
    data_dir = Path(settings.paths.data_dir)
    now = datetime.now(UTC)
    try:
        making = Making(dest, now)
    except OSError as exc:
        raise BackupError(f"cannot make a backup folder in {dest}: {exc}") from exc
    folder = making.folder
    try:
        _dump(url, folder / _DUMPS[kind])
        for name in settings.backup.files:
            source = data_dir / name
            if source.is_dir():
                shutil.copytree(source, folder / "files" / name, symlinks=True)
        chain = config_files(config_path) if config_path and config_path.is_file() else []
        for n, path in enumerate(chain):  # a file that extends another is not whole alone
            (folder / "files").mkdir(mode=0o700, exist_ok=True)
            name = f"config.extends-{n}.toml" if n else "config.toml"
            shutil.copy2(path, folder / "files" / name)
        parts = tuple(_part(folder, path) for path in sorted(folder.rglob("*")) if path.is_file())
        manifest = {
            "database": kind,
            "revision": migrate.current(url.render_as_string(hide_password=False)) or "",
            "created": now.isoformat(timespec="seconds"),
            "config": [str(path) for path in chain],
            "parts": [asdict(part) for part in parts],
        }
        write_private(folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        backup = verify_backup(folder, url)
        final = making.verified()  # counted from now on
    except (
        BackupError,
        ConfigError,  # the configuration's files changed since it was loaded
        OSError,
        SQLAlchemyError,
        StoreError,  # the schema revision or the restored copy's check could not be read
        sqlite3.Error,
        subprocess.SubprocessError,
    ) as exc:
        full = out_of_space(exc)
        # Whole: listed and checksummed, what `restore --force` takes; else of no use.
        whole = (folder / MANIFEST).is_file() and not full
        why = str(exc) if isinstance(exc, BackupError) else _reason(exc)
        failed = making.failed(why, whole=whole)
        gone = [n for n in rotate(dest, keep or settings.backup.keep) if n.endswith(FAILED)]
        kept = f"kept as {failed}" if whole else f"{failed} keeps only its {WHY}"
        if full:
            kept = f"no room left: {kept}"
        if gone:
            kept += f"; {len(gone)} older failed removed, the newest {KEEP_FAILED} kept"
        if isinstance(exc, BackupError):
            raise BackupError(f"{exc} ({kept})") from exc
        raise BackupError(f"backup failed ({kept}): {_reason(exc)}") from exc
    rotate(dest, keep or settings.backup.keep, made=final)
    return backup, final


def verify_backup(folder: Path, server: URL | str | None = None) -> Backup:
    """Check every part's checksum, then restore the database part and audit it.

    A SQLite dump is copied into a scratch folder beside ``folder`` (the backups' volume,
    not ``$TMPDIR``, often a small tmpfs); a PostgreSQL dump is restored into a throw-away
    database on ``server``, any URL of a server where its user may create databases (the
    backup job passes the live one), named after this host and process
    (`observer.db.backup_space.drop_dead_scratch_databases`).

    Raises
    ------
    BackupError
        A part is missing or damaged, or the restored database is incomplete or differs
        from the models.
    """
    backup = _read_manifest(folder)
    dump = _check_parts(backup)
    if backup.database == "sqlite":
        with scratch_folder(folder.absolute().parent) as scratch:
            copy = scratch / "restored.sqlite"
            shutil.copyfile(dump, copy)
            _check_database(f"sqlite:///{copy}")
    else:
        if server is None:
            raise BackupError("verifying a PostgreSQL backup needs a server to restore it on")
        with scratch_postgres(admin_url(server), scratch_prefix()) as url:
            _pg_restore(dump, normalize_url(url))
            _check_database(url)
    return backup


def restore_backup(folder: Path, target: str, *, force: bool = False) -> Backup:
    """Restore a verified backup's database into ``target``, which must be empty.

    A backup kept as ``*.failed`` (its verification failed), or left ``*.partial`` by a
    backup that was killed, is restored only with ``force``. Without ``force`` the restored
    database is brought to this release's schema (a backup of an earlier release), then
    checked against the models and audited; a SQLite file that fails is removed, a
    PostgreSQL database is left as restored (with ``force``: as it is, unchecked).

    Raises
    ------
    BackupError
        The backup failed its verification or was never verified (without ``force``), is
        being made, is missing a part, is damaged or names an unknown database kind;
        ``target`` is a SQLite database in memory, or served by a writer, or holds tables
        already (a live database is never overwritten), or the restored file failed its
        check (nothing is left in its place).
    """
    refuse_unverified(folder, force)
    backup = _read_manifest(folder)
    url = normalize_url(target)
    if url.get_backend_name() != backup.database:
        raise BackupError(f"{folder} holds a {backup.database} database, not {display_url(url)}")
    path = sqlite_file(url)
    if backup.database == "sqlite" and path is None:
        raise BackupError(
            f"cannot restore into a SQLite database in memory ({target}): it would end with "
            "this command; give --db sqlite:///PATH of a new file"
        )
    dump = _check_parts(backup)
    if path is not None:
        check = None if force else _check_database  # a failed backup is restored as it is
        restore_sqlite_file(dump, path.resolve(), check)  # SQLite follows links: the file's
    else:
        engine = make_engine(url)
        try:
            tables = inspect(engine).get_table_names()
        except SQLAlchemyError as exc:
            raise BackupError(f"cannot reach {display_url(url)}: {exc}") from exc
        finally:
            engine.dispose()
        if tables:
            raise BackupError(
                f"{display_url(url)} holds {len(tables)} tables: restore into an empty database"
            )
        _pg_restore(dump, url)
        if not force:  # a failed backup is restored as it is
            try:
                _check_database(url.render_as_string(hide_password=False))
            except BackupError as exc:
                raise BackupError(
                    f"{exc} (restored into {display_url(url)}, left as restored: drop its "
                    "tables, or restore with --force to take it as it is)"
                ) from exc
    return backup


# --------------------------------------------------------------------------- internals


def _refuse_copied_dest(dest: Path, data_dir: Path, names: Iterable[str]) -> None:
    """Refuse ``dest`` inside a folder the backup copies: each copy would hold the last.

    Every configured folder counts, present or not: making ``dest`` would create it.
    """
    target = dest.resolve()
    for name in names:
        source = (data_dir / name).resolve()
        if target.is_relative_to(source):
            where = "" if target == source else "inside "
            raise BackupError(
                f"cannot back up into {target}: it is {where}{source}, a folder the backup "
                "copies ([backup] files); choose a folder outside it"
            )


def _reason(exc: BaseException) -> str:
    """One short line for a failure: a copy's first error and how many more, never all."""
    errors = exc.args[0] if isinstance(exc, shutil.Error) and exc.args else None
    if isinstance(errors, list) and errors:
        first = errors[0]
        why = f"{first[0]}: {first[-1]}" if isinstance(first, tuple) and first else str(first)
        line = f"{why} (and {len(errors) - 1} more copy errors)" if len(errors) > 1 else why
    else:
        line = " ".join(str(exc).split()) or type(exc).__name__
    return line if len(line) <= _LINE else f"{line[: _LINE - 3]}..."


def _dump(url: URL, target: Path) -> None:
    """``database.sqlite`` (SQLite's online backup) or ``database.pgdump`` (``pg_dump -Fc``).

    Each is one consistent snapshot taken while the writer commits (WAL readers never block
    SQLite's; PostgreSQL's is one transaction).
    """
    if url.get_backend_name() == "sqlite":
        # One step (pages=-1): a step-wise copy restarts whenever the writer commits.
        # A URI's path is percent-encoded: a "?", "#" or "%" in the file's name is its own.
        path = quote(str(Path(str(url.database)).absolute()))
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            with sqlite3.connect(target) as copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        os.chmod(target, 0o600)
        return
    _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}"], url)


def _pg_restore(dump: Path, url: URL) -> None:
    _run(["pg_restore", "--no-owner", "--exit-on-error", str(dump)], url)


def _run(command: list[str], url: URL) -> None:
    """Run a PostgreSQL client on ``url``'s database, connected as the writer's engine is.

    The URL's query options reach the client (a socket folder, ``sslmode``...); the password
    goes in the environment, never on its command line.
    """
    # deferred: psycopg (about 0.17 s) for a PostgreSQL database's clients only
    from psycopg.conninfo import make_conninfo

    params = libpq_params(url)
    password = params.pop("password", None)
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    target = ["--no-password", f"--dbname={make_conninfo(**params)}"]
    try:
        done = subprocess.run(
            [*command, *target],
            env=env,
            capture_output=True,
            text=True,
            timeout=6 * 3600,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BackupError(f"{command[0]} is not installed (Debian: postgresql-client)") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise BackupError(f"{command[0]} on {display_url(url)} failed: {last}")


def _check_database(url: str) -> None:
    """Refuse a restored database that does not match this release's models or is incomplete.

    A backup from an earlier release is first brought to this release's schema (a scratch
    copy when verifying, the restored database when restoring): restoring last week's backup
    after an upgrade is when it is needed most.
    """
    try:
        migrate.upgrade(url)
    except StoreError as exc:
        raise BackupError(
            f"the restored database cannot be brought to this release's schema: {exc}"
        ) from exc
    diffs = migrate.check(url)
    if diffs:
        raise BackupError(f"the restored database differs from the models: {diffs[0]}")
    engine = make_engine(url, read_only=True)
    try:
        with engine.connect() as conn:
            incomplete = [a.source for a in audit_sources(conn) if not a.complete]
    finally:
        engine.dispose()
    if incomplete:
        raise BackupError(f"the restored database is incomplete for {incomplete[:5]}")


def _read_manifest(folder: Path) -> Backup:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        parts = tuple(Part(**part) for part in manifest["parts"])
        backup = Backup(
            folder, manifest["database"], manifest["revision"], manifest["created"], parts
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{folder} is not a backup (no readable {MANIFEST}): {exc}") from exc
    kind = backup.database
    if not isinstance(kind, str) or kind not in _DUMPS:
        raise BackupError(
            f"{folder / MANIFEST} names an unknown database kind {kind!r} "
            f"(expected {' or '.join(_DUMPS)})"
        )
    if _DUMPS[kind] not in {part.name for part in parts}:
        raise BackupError(f"{folder / MANIFEST} lists no {_DUMPS[kind]}: not a whole backup")
    return backup


def _check_parts(backup: Backup) -> Path:
    """Every part present with its checksum; the database part's path."""
    for part in backup.parts:
        path = backup.path / part.name
        if not path.is_file():
            raise BackupError(f"{path} is missing: the backup is not whole")
        try:
            digest = _sha256(path)
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {_reason(exc)}") from exc
        if digest != part.sha256:
            raise BackupError(f"{path} is damaged: its sha256 is not the one in {MANIFEST}")
    return backup.path / _DUMPS[backup.database]


def _part(folder: Path, path: Path) -> Part:
    return Part(str(path.relative_to(folder)), path.stat().st_size, _sha256(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
