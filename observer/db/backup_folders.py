"""A backup folder's life: made under a temporary name, renamed once verified, rotated.

In ``[backup] dir``: ``observer-<UTC time>.partial/`` (being made; its maker holds the flock of
the ``.partial.lock`` beside it), ``observer-<UTC time>/`` (verified: only these count),
``observer-<UTC time>.failed/`` (its ``FAILED.txt`` says why) and ``observer-verify-<pid>-<hex>/``
(a verification's scratch copy, locked likewise). Only names a backup gives are touched:
``[backup] dir = "~"`` must not take a checkout called ``observer-main`` for a backup.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from bus.lock import InstanceLock, LockHeld, holder
from observer.errors import BackupError
from observer.process.private_files import fsync_path, fsync_tree, write_private

__all__ = [
    "FAILED",
    "KEEP_FAILED",
    "Making",
    "clear_leftovers",
    "refuse_unverified",
    "rotate",
    "scratch_folder",
]

log = logging.getLogger(__name__)

_NAME = re.compile(r"observer-(?P<time>\d{8}T\d{6}Z)(?:-(?P<n>\d+))?(?:\.|$)")
# The whole of every name a backup gives; rotation touches nothing else in the folder.
_OURS = re.compile(r"observer-\d{8}T\d{6}Z(?:-\d+)?(?:\.failed|\.partial(?:\.lock)?)?")
_SCRATCH_LOCK = re.compile(r"observer-verify-\d+-[0-9a-f]{6}\.lock")

MANIFEST = "MANIFEST.json"
PREFIX = "observer-"
FAILED = ".failed"
PARTIAL = ".partial"
LOCK = ".lock"
SCRATCH = "observer-verify-"
WHY = "FAILED.txt"  # in a failed backup: why it failed
KEEP_FAILED = 2  # the newest failed backups kept for a person to look at
STALE_S = 86_400.0  # a folder without a manifest this old was left by a killed backup


class Making:
    """A backup folder being made: ``folder`` (``*.partial``), locked until it is settled.

    The lock is taken before the folder is made, so a ``.partial`` whose lock is free was
    left by a process that died.
    """

    def __init__(self, dest: Path, now: datetime) -> None:
        base = f"{PREFIX}{now.strftime('%Y%m%dT%H%M%SZ')}"
        # After every name of this second (even one rotated away since): names keep the
        # order the backups were made in.
        first = max((_order(path)[1] + 1 for path in dest.glob(f"{base}*")), default=0)
        for n in range(first, first + 1000):
            name = f"{base}-{n}" if n else base
            taken = (name, name + FAILED, name + PARTIAL, name + PARTIAL + LOCK)
            if any((dest / other).exists() for other in taken):
                continue
            try:
                lock = InstanceLock(dest / (name + PARTIAL + LOCK))
            except LockHeld:  # another backup took this name a moment ago
                continue
            try:
                (dest / (name + PARTIAL)).mkdir(mode=0o700)
            except FileExistsError:
                lock.close()
                continue
            except BaseException:
                _release(lock)
                raise
            self._lock: InstanceLock | None = lock
            self.folder = dest / (name + PARTIAL)
            self.final = dest / name
            return
        raise BackupError(f"no free backup folder name in {dest} for {base}")

    def verified(self) -> Path:
        """Rename the folder into place: a verified backup, counted from now on.

        Every file and folder in it is fsynced first: after a power cut a backup's name
        says verified only of parts that are on the disk whole.
        """
        fsync_tree(self.folder)
        return self._settle(self.final)

    def failed(self, why: str = "", *, whole: bool = True) -> Path:
        """Rename the folder ``*.failed`` with ``why`` in it: kept for a person, never counted.

        ``whole`` (every part written and listed in the manifest: its verification failed)
        keeps the parts, for ``restore --force``. Otherwise (a dump or a copy failed, or the
        volume filled) all but the manifest is removed first: no restore can use it, and the
        room it takes is the room a live database on that volume needs.
        """
        if not whole:
            for path in self.folder.iterdir():
                if path.name == MANIFEST:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        with suppress(OSError):  # the reason is in the error raised as well
            if why:
                write_private(self.folder / WHY, (why + "\n").encode())
        return self._settle(self.final.with_name(self.final.name + FAILED))

    def _settle(self, target: Path) -> Path:
        try:
            self.folder.rename(target)
            try:
                fsync_path(target.parent)
            except OSError as exc:  # a power cut may leave it .partial: never counted
                log.warning("cannot make the rename of %s durable: %s", target, exc)
        finally:
            if self._lock is not None:
                _release(self._lock)
                self._lock = None
        return target


def rotate(dest: Path, keep: int, made: Path | None = None) -> list[str]:
    """Rotate ``dest`` after a backup, made or failed; the names removed, logged.

    Kept: the newest ``keep`` verified backups and the newest `KEEP_FAILED` failed ones (the
    last failure and the one before, to compare: a database that stays incomplete would add
    a full copy every night). Removed: every ``.partial`` whose maker is dead (its lock is
    free) and every ``observer-<time>`` folder without a manifest older than `STALE_S` (a
    backup killed during its dump). ``made``, the backup just made, is never removed.
    Verified backups named later than now (made while the clock was ahead, or copied from a
    host whose clock was) count as older than every other: a new backup would otherwise be
    the oldest and go at once.
    """
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    verified, failed, legacy = [], [], []
    for path in dest.glob(f"{PREFIX}*"):
        if not _OURS.fullmatch(path.name):
            continue  # not a name a backup gives (a checkout called observer-main): not ours
        if path.name.endswith(PARTIAL + LOCK) and path.is_file():
            _remove_dead_partial(path.with_name(path.name.removesuffix(LOCK)), path)
        elif not path.is_dir() or path.name.endswith(PARTIAL):
            continue  # a partial goes with its lock file; one without had its maker die
        elif path.name.endswith(FAILED):
            failed.append(path)
        elif (path / MANIFEST).is_file():
            verified.append(path)
        else:
            legacy.append(path)
    for path in dest.glob(f"{PREFIX}*{PARTIAL}"):
        if not _OURS.fullmatch(path.name) or not path.is_dir():
            continue
        if not path.with_name(path.name + LOCK).exists() and _older_than(path, STALE_S):
            legacy.append(path)  # its lock file gone (copied here?): a day old is dead
    ahead = sorted(p.name for p in verified if _order(p)[0] > now)
    if ahead:
        log.warning(
            "backups in %s are named later than now (%s): counted as the oldest (was the "
            "clock ahead?)",
            dest,
            ", ".join(ahead),
        )
    others = [path for path in verified if path != made]
    doomed = _oldest(others, max(keep, 1) - (made is not None), ahead=now)
    doomed += _oldest(failed, KEEP_FAILED)
    doomed += [path for path in legacy if _older_than(path, STALE_S)]
    removed = []
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path.name)
    if removed:
        log.info(
            "backups rotated in %s: removed %s (kept: the newest %d verified, the newest %d "
            "failed)",
            dest,
            ", ".join(sorted(removed)),
            keep,
            KEEP_FAILED,
        )
    return sorted(removed)


def clear_leftovers(dest: Path) -> None:
    """Remove the ``.partial`` and scratch folders in ``dest`` whose maker is dead.

    A backup killed during its verification left a whole dump and a whole copy of the
    database; they go before the next backup measures its room.
    """
    for lock_path in dest.glob(f"{PREFIX}*{LOCK}"):
        ours = lock_path.name.endswith(PARTIAL + LOCK) and _OURS.fullmatch(lock_path.name)
        if (ours or _SCRATCH_LOCK.fullmatch(lock_path.name)) and lock_path.is_file():
            _remove_dead_partial(lock_path.with_name(lock_path.name.removesuffix(LOCK)), lock_path)


@contextmanager
def scratch_folder(parent: Path) -> Iterator[Path]:
    """An owner-only folder in ``parent`` for a verification's copy, removed at the end.

    Its lock file beside it is held meanwhile: a folder whose lock is free was left by a
    process that died (`clear_leftovers`). The name carries the maker's pid, for a person.
    """
    name = f"{SCRATCH}{os.getpid()}-{secrets.token_hex(3)}"
    lock = InstanceLock(parent / (name + LOCK))
    folder = parent / name
    try:
        folder.mkdir(mode=0o700)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _release(lock)


def refuse_unverified(folder: Path, force: bool) -> None:
    """Refuse to restore a failed backup (without ``force``) or a partial one.

    Raises
    ------
    BackupError
        ``folder`` is ``*.failed`` and ``force`` is not given, or ``*.partial``: being made
        (always refused), or left by a backup that was killed (without ``force``).
    """
    name = folder.resolve().name
    if name.endswith(FAILED) and (folder / WHY).is_file() and _emptied(folder):
        why = " ".join((folder / WHY).read_text(errors="replace").split())[:200]
        raise BackupError(f"{folder} holds no database: its backup failed ({why})")
    if name.endswith(FAILED) and not force:
        raise BackupError(
            f"{folder} failed its verification when it was made (kept as *{FAILED} to be "
            "looked at, never counted): restore a verified backup, or this one with --force"
        )
    if not name.endswith(PARTIAL):
        return
    holder = _maker(folder.resolve())
    if holder is not None:
        raise BackupError(f"{folder} is being made (pid {holder}), not verified yet: wait")
    if not force:
        raise BackupError(
            f"{folder} was never verified (its backup was killed before it ended, kept as "
            f"*{PARTIAL} and never counted): restore a verified backup, or this one with --force"
        )


# --------------------------------------------------------------------------- internals


def _maker(partial: Path) -> str | None:
    """The pid of the process making ``partial``, or None if it is dead."""
    return holder(partial.with_name(partial.name + LOCK))


def _emptied(folder: Path) -> bool:
    """True if a failed backup keeps nothing but its manifest and reason (`Making.failed`)."""
    return all(path.name in (MANIFEST, WHY) for path in folder.iterdir())


def _remove_dead_partial(partial: Path, lock_path: Path) -> None:
    """Remove ``partial`` and its lock file if its maker is dead; leave a live one alone."""
    try:
        lock = InstanceLock(lock_path)
    except LockHeld:
        return
    except OSError:
        return  # gone meanwhile, or not ours to open: the next rotation sees it again
    try:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            log.info("backups rotated: removed %s, left by a backup that was killed", partial)
    finally:
        _release(lock)


def _release(lock: InstanceLock) -> None:
    """Remove the lock file, then let it go.

    In that order: a new maker never takes a name whose lock file is still there.
    """
    try:
        lock.path.unlink(missing_ok=True)
    finally:
        lock.close()


def _oldest(folders: list[Path], keep: int, ahead: str = "") -> list[Path]:
    """All but the newest ``keep`` (in the order they were made: `_order`).

    Those named after ``ahead`` (a UTC time as in the names), if given, come first.
    """
    ordered = sorted(folders, key=lambda p: (not (ahead and _order(p)[0] > ahead), _order(p)))
    return ordered[: max(len(ordered) - keep, 0)]


def _order(path: Path) -> tuple[str, int]:
    """When a folder was made, from its name: its UTC time, then its number in that second.

    ``observer-<time>``, ``-1``, ``-2``, ... ``-10`` (as text, ``-10`` would come before
    ``-9``); any suffix (``.failed``, ``.partial``, ``.partial.lock``) aside.
    """
    found = _NAME.match(path.name)
    if found is None:
        return (path.name, 0)
    return (found["time"], int(found["n"] or 0))


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime > seconds
    except OSError:
        return False
