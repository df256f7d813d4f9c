"""The worker's folder ``<data_dir>/masters/`` (0700): archives, state, backups, reviews.

``LOCK`` (one update, review or restore at a time), ``current/<archive>``,
``state/<MARKET>.json`` (`FileState`), ``backups/`` and ``rejected/`` (newest ``keep``),
``reviews/<id>.zip, .json``, ``tmp/``. Every file is written owner-only and made durable
(fsynced, its folder too) before it is renamed into place. An unreadable state file is set
aside with a ``state_file_unreadable`` alert and read as empty: the next check downloads
the file and compares it with the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec

from bus.events import Alert
from bus.lock import InstanceLock, LockHeld
from observer.errors import MasterFileError, ObserverError
from observer.process.private_files import fsync_path, write_private
from observer.process.state_files import read_state
from observer.reference.instruments import MasterFile, current_archive, master_state_path

__all__ = ["REMEMBERED", "Current", "FileState", "LocalFiles", "MasterFilesLocked", "Review"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class MasterFilesLocked(ObserverError):
    """Another master-file run holds the folder."""


class Current(msgspec.Struct, frozen=True):
    """The archive in use."""

    size: int
    sha256: str  # of the archive
    content_sha256: str  # of the member inside: what a forced refresh compares
    records: int
    etag: str = ""
    last_modified: str = ""
    installed_ns: int = 0


REMEMBERED = 7  # contents remembered per file: a stale mirror re-serving one is refused


class FileState(msgspec.Struct, frozen=True):
    """What the worker remembers of one master file between runs."""

    current: Current | None = None
    failures: int = 0  # consecutive failed runs
    pending_review: str = ""  # id of a held change awaiting an operator
    rejected_sha256: str = ""  # content an operator rejected: never held again
    checked_ns: int = 0
    # content_sha256 of the last `REMEMBERED` files applied, newest (the one in use) first
    applied: tuple[str, ...] = ()
    # findings beyond the documented layout already reported (`Parsed.findings`): each once
    reported: tuple[str, ...] = ()

    def installing(self, fresh: Current) -> tuple[str, ...]:
        """`applied` once ``fresh`` is in use (the one it replaces kept, if it was not)."""
        before = (self.current.content_sha256,) if self.current else ()
        ordered = dict.fromkeys((fresh.content_sha256, *before, *self.applied))
        return tuple(ordered)[:REMEMBERED]

    def superseded(self, content_sha256: str) -> bool:
        """True if ``content_sha256`` was applied before and a later file replaced it."""
        current = self.current.content_sha256 if self.current else ""
        return content_sha256 != current and content_sha256 in self.applied


class Review(msgspec.Struct, frozen=True):
    """A change held for an operator: its reasons and a sample of what it would do."""

    review_id: str
    market: str
    file_name: str
    held_ns: int
    reasons: tuple[str, ...]
    records: int
    sha256: str
    content_sha256: str
    added: int
    modified: int
    removed: int
    sample_new: tuple[str, ...] = ()
    sample_changed: tuple[str, ...] = ()
    sample_removed: tuple[str, ...] = ()
    etag: str = ""
    last_modified: str = ""


def _stamp(now_ns: int) -> str:
    return datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def _decode_state(data: bytes) -> FileState:
    return msgspec.json.decode(data, type=FileState)


def _decode_review(data: bytes) -> Review:
    return msgspec.json.decode(data, type=Review)


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalFiles:
    """The master-file folder under ``data_dir``; ``keep`` backups per file.

    ``on_unreadable`` sends the alert of a state file set aside; without it (a dry run,
    which changes nothing) such a file is left in place and read as empty, logged.
    """

    def __init__(
        self,
        data_dir: Path,
        keep: int = 7,
        on_unreadable: Callable[[Alert], object] | None = None,
    ) -> None:
        self.root = data_dir / "masters"
        self.keep = keep
        self.on_unreadable = on_unreadable
        for sub in ("current", "state", "backups", "rejected", "reviews", "tmp"):
            (self.root / sub).mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock, or raise `MasterFilesLocked` at once."""
        try:
            lock = InstanceLock(self.root / "LOCK")
        except LockHeld as exc:
            raise MasterFilesLocked(
                f"another master-file run (pid {exc.holder}) holds {self.root / 'LOCK'}"
            ) from None
        with contextlib.closing(lock):
            yield

    # ------------------------------------------------------------------ state

    def current_path(self, file: MasterFile) -> Path:
        """Where the archive in use lives (where other workers read it)."""
        return current_archive(self.root.parent, file)

    def state(self, file: MasterFile) -> FileState:
        """The remembered state (empty before the first run, or if it does not read)."""
        path = master_state_path(self.root.parent, file)
        lost = (
            "what was known of the file in use is lost (the contents applied and rejected "
            "before, a pending review): the next check downloads the file and compares it "
            "with the database"
        )
        return self._read(path, _decode_state, lost) or FileState()

    def _read(self, path: Path, decode: Callable[[bytes], T], lost: str) -> T | None:
        """`observer.process.state_files.read_state`; without `on_unreadable`, moving nothing.

        There a file that does not read is None, logged, and left in place.
        """
        if self.on_unreadable is not None:
            return read_state(path, decode, lost, self.on_unreadable)
        try:
            return decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s does not read (%s): left in place", path, exc)
            return None

    def save_state(self, file: MasterFile, state: FileState) -> None:
        """Replace the state atomically and durably."""
        write_private(master_state_path(self.root.parent, file), msgspec.json.encode(state))

    def temp_path(self, file: MasterFile) -> Path:
        """A fresh download target."""
        return self.root / "tmp" / f"{file.name}.{os.getpid()}.part"

    # ------------------------------------------------------------------ install

    def install(self, file: MasterFile, download: Path, sha256: str, now_ns: int) -> None:
        """Make ``download`` the archive in use.

        The old one is backed up first; the replace is atomic; the result is verified, and
        the old one put back if it does not.
        """
        current = self.current_path(file)
        backup: Path | None = None
        if current.exists():
            backup = self.root / "backups" / f"{file.name}.{_stamp(now_ns)}"
            shutil.copy2(current, backup)
            os.chmod(backup, 0o600)
            fsync_path(backup)
            fsync_path(backup.parent)
        fsync_path(download)  # whole on the disk before it is the file in use
        os.replace(download, current)
        fsync_path(current.parent)
        if sha256_of(current) != sha256:
            if backup is not None:
                shutil.copy2(backup, current)
            else:
                current.unlink()
            raise MasterFileError(f"{current} did not verify after the replace; restored")
        self._prune(self.root / "backups", file.name)

    def quarantine(self, file: MasterFile, download: Path, now_ns: int) -> Path:
        """Keep a download that failed verification for inspection."""
        target = self.root / "rejected" / f"{file.name}.{_stamp(now_ns)}"
        os.replace(download, target)
        fsync_path(target.parent)
        self._prune(self.root / "rejected", file.name)
        return target

    def backups(self, file: MasterFile) -> list[Path]:
        """Backups of ``file``, newest first."""
        return sorted((self.root / "backups").glob(f"{file.name}.*"), reverse=True)

    def _prune(self, folder: Path, name: str) -> None:
        for old in sorted(folder.glob(f"{name}.*"), reverse=True)[self.keep :]:
            old.unlink()

    # ------------------------------------------------------------------ reviews

    def hold(self, review: Review, download: Path) -> None:
        """Keep ``download`` and its review until an operator decides."""
        fsync_path(download)
        os.replace(download, self.root / "reviews" / f"{review.review_id}.zip")
        write_private(
            self.root / "reviews" / f"{review.review_id}.json", msgspec.json.encode(review)
        )

    def reviews(self) -> list[Review]:
        """Reviews awaiting a decision, oldest first."""
        lost = "the change it held is not listed; its archive stays beside it"
        found = [
            self._read(p, _decode_review, lost) for p in (self.root / "reviews").glob("*.json")
        ]
        return sorted((r for r in found if r is not None), key=lambda r: r.held_ns)

    def review(self, review_id: str) -> tuple[Review, Path]:
        """A pending review and its archive."""
        meta = self.root / "reviews" / f"{review_id}.json"
        lost = "the change it held cannot be approved; its archive stays beside it"
        found = None if "/" in review_id else self._read(meta, _decode_review, lost)
        if found is None:
            raise MasterFileError(f"no pending review {review_id!r}")
        return found, meta.with_suffix(".zip")

    def close_review(self, review_id: str) -> None:
        """Forget a decided review (its archive was installed or is dropped)."""
        for suffix in (".json", ".zip"):
            (self.root / "reviews" / f"{review_id}{suffix}").unlink(missing_ok=True)
