"""A filesystem that loses, at a cut, every write not yet fsynced: power loss on demand.

``python tests/lazyfs.py STATE MOUNT [--entries strict|journaled]`` mounts at MOUNT (FUSE)
the tree kept in the folder STATE and serves it from memory. Each file keeps two contents:
what processes wrote, and what the last fsync of it flushed; each folder keeps two lists of
entries: what is there, and what survives. SIGTERM or SIGINT is the cut: the mount goes
away and STATE is replaced by what survives alone, as a disk would hold it after a power
cut: a file's data since its last fsync gone. The next mount starts from there.

Folder entries: ``strict`` (the default) keeps a file created, renamed or removed only once
its folder is fsynced, as POSIX promises; ``journaled`` keeps every such change at once, as
a journaling filesystem commits metadata ahead of data, and as LazyFS does: a file renamed
into place without an fsync of its data is then found empty after the cut.

The model of LazyFS (dsrhaslab/lazyfs), the fault injector Jepsen uses for power loss, which
is neither in Debian nor on PyPI. File locks stay the kernel's (FUSE keeps them locally when
the filesystem does not take them), and mmap works through the page cache, as SQLite's WAL
index needs.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import mfusepy as fuse

__all__ = ["LazyFS"]


class _Node:
    """A file or a folder: live state, and what its last fsync made durable."""

    def __init__(self, mode: int, data: bytes = b"") -> None:
        self.mode = mode
        now = time.time_ns()
        self.atime = self.mtime = self.ctime = now
        self.data = bytearray(data)  # files: what reads see
        self.durable = bytearray(data)  # files: what survives a cut
        self.dirty: tuple[int, int] | None = None  # byte range written since the last fsync
        self.entries: dict[str, _Node] = {}  # folders: what lookups see
        self.durable_entries: dict[str, _Node] = {}  # folders: what survives a cut
        self.durable_mode = mode

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    def wrote(self, start: int, end: int) -> None:
        if self.dirty is None:
            self.dirty = (start, end)
        else:
            self.dirty = (min(self.dirty[0], start), max(self.dirty[1], end))
        self.mtime = self.ctime = time.time_ns()

    def flush(self) -> None:
        """What an fsync does: the data (or the entries) become durable."""
        self.durable_mode = self.mode
        if self.is_dir:
            self.durable_entries = dict(self.entries)
            return
        if self.dirty is not None:
            start, end = self.dirty
            end = min(end, len(self.data))
            if len(self.durable) < end:
                self.durable.extend(bytes(end - len(self.durable)))
            self.durable[start:end] = self.data[start:end]
            self.dirty = None
        del self.durable[len(self.data) :]


class LazyFS(fuse.Operations):
    """The FUSE operations over the in-memory tree; one lock serialises them."""

    use_ns = True

    def __init__(self, state: Path, journaled: bool = False) -> None:
        self.root = _load(state)
        self.root.flush()
        self._journaled = journaled
        self._lock = threading.Lock()
        self._handles: dict[int, _Node] = {}
        self._next = itertools.count(1)

    # ------------------------------------------------------------------ helpers

    def _lookup(self, path: str) -> _Node:
        node = self.root
        for part in path.strip("/").split("/"):
            if not part:
                continue
            if not node.is_dir or part not in node.entries:
                raise fuse.FuseOSError(errno.ENOENT)
            node = node.entries[part]
        return node

    def _parent(self, path: str) -> tuple[_Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._lookup(head or "/")
        if not parent.is_dir:
            raise fuse.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _node(self, path: str | None, fh: int | None) -> _Node:
        if fh:
            return self._handles[fh]
        if path is None:
            raise fuse.FuseOSError(errno.EBADF)
        return self._lookup(path)

    def _entries_changed(self, *folders: _Node) -> None:
        """A folder's entries changed: kept at once when metadata is journaled."""
        for folder in folders:
            folder.mtime = time.time_ns()
            if self._journaled:
                folder.durable_entries = dict(folder.entries)

    def _handle(self, node: _Node) -> int:
        fh = next(self._next)
        self._handles[fh] = node
        return fh

    # ------------------------------------------------------------------ operations

    def init_with_config(self, conn_info: Any, config_3: Any) -> None:
        if config_3 is not None:
            config_3.hard_remove = 1  # a removed file stays readable through its handles

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self._lock:
            node = self._node(path, fh)
            return {
                "st_mode": node.mode,
                "st_nlink": 2 if node.is_dir else 1,
                "st_size": len(node.data),
                "st_uid": os.getuid(),
                "st_gid": os.getgid(),
                "st_atime": node.atime,
                "st_mtime": node.mtime,
                "st_ctime": node.ctime,
            }

    def readdir(self, path: str, fh: int) -> list[str]:
        with self._lock:
            return [".", "..", *self._node(path, None).entries]

    def mkdir(self, path: str, mode: int) -> int:
        with self._lock:
            parent, name = self._parent(path)
            if name in parent.entries:
                raise fuse.FuseOSError(errno.EEXIST)
            parent.entries[name] = _Node(stat.S_IFDIR | mode)
            self._entries_changed(parent)
        return 0

    def rmdir(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            node = self._lookup(path)
            if node.entries:
                raise fuse.FuseOSError(errno.ENOTEMPTY)
            del parent.entries[name]
            self._entries_changed(parent)
        return 0

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                node = parent.entries[name] = _Node(stat.S_IFREG | stat.S_IMODE(mode))
                self._entries_changed(parent)
            elif flags & os.O_EXCL:
                raise fuse.FuseOSError(errno.EEXIST)
            return self._handle(node)

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            return self._handle(self._lookup(path))

    def opendir(self, path: str) -> int:
        with self._lock:
            return self._handle(self._lookup(path))

    def release(self, path: str | None, fh: int) -> int:
        with self._lock:
            self._handles.pop(fh, None)
        return 0

    def releasedir(self, path: str | None, fh: int) -> int:
        return self.release(path, fh)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self._lock:
            node = self._node(path, fh)
            return bytes(node.data[offset : offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self._lock:
            node = self._node(path, fh)
            old = len(node.data)
            if old < offset:
                node.data.extend(bytes(offset - old))
            node.data[offset : offset + len(data)] = data
            node.wrote(min(old, offset), offset + len(data))
            return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self._lock:
            node = self._node(path, fh)
            old = len(node.data)
            if length < old:
                del node.data[length:]
            else:
                node.data.extend(bytes(length - old))
            node.wrote(min(old, length), max(old, length))
        return 0

    def unlink(self, path: str) -> int:
        with self._lock:
            parent, name = self._parent(path)
            if name not in parent.entries:
                raise fuse.FuseOSError(errno.ENOENT)
            del parent.entries[name]
            self._entries_changed(parent)
        return 0

    def rename(self, old: str, new: str) -> int:
        with self._lock:
            source, old_name = self._parent(old)
            target, new_name = self._parent(new)
            if old_name not in source.entries:
                raise fuse.FuseOSError(errno.ENOENT)
            target.entries[new_name] = source.entries.pop(old_name)
            self._entries_changed(source, target)
        return 0

    def link(self, target: str, source: str) -> int:
        """A hard link ``target`` to ``source`` (`write_private`'s exclusive create)."""
        with self._lock:
            node = self._lookup(source)
            parent, name = self._parent(target)
            if name in parent.entries:
                raise fuse.FuseOSError(errno.EEXIST)
            parent.entries[name] = node
            self._entries_changed(parent)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        with self._lock:
            self._node(path, fh).flush()
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        return self.fsync(path, datasync, fh)

    def chmod(self, path: str | None, mode: int) -> int:
        with self._lock:
            node = self._node(path, None)
            node.mode = stat.S_IFMT(node.mode) | stat.S_IMODE(mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        with self._lock:
            node = self._node(path, None)
            node.atime, node.mtime = times or (time.time_ns(),) * 2
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        total = shutil.disk_usage("/")  # the room of the disk the state is kept on
        return {
            "f_bsize": 4096,
            "f_frsize": 4096,
            "f_blocks": total.total // 4096,
            "f_bfree": total.free // 4096,
            "f_bavail": total.free // 4096,
            "f_files": 1 << 20,
            "f_ffree": 1 << 20,
            "f_favail": 1 << 20,
            "f_namemax": 255,
        }

    # ------------------------------------------------------------------ the cut

    def save_durable(self, state: Path) -> None:
        """Replace ``state`` with what survives a cut now."""
        fresh = state.with_name(state.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        _dump(self.root, fresh, self.root.durable_mode)
        shutil.rmtree(state, ignore_errors=True)
        fresh.rename(state)


def _load(folder: Path) -> _Node:
    node = _Node(stat.S_IFDIR | stat.S_IMODE(folder.stat().st_mode))
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            child = _load(path)
        else:
            child = _Node(stat.S_IFREG | stat.S_IMODE(path.stat().st_mode), path.read_bytes())
        child.flush()
        node.entries[path.name] = child
    return node


def _dump(node: _Node, folder: Path, mode: int) -> None:
    folder.mkdir(mode=stat.S_IMODE(mode))
    for name, child in node.durable_entries.items():
        if child.is_dir:
            _dump(child, folder / name, child.durable_mode)
        else:
            (folder / name).write_bytes(bytes(child.durable))
            (folder / name).chmod(stat.S_IMODE(child.durable_mode))


def main() -> None:
    parser = argparse.ArgumentParser(prog="lazyfs", description=__doc__.splitlines()[0])
    parser.add_argument("state", type=Path)
    parser.add_argument("mount")
    parser.add_argument("--entries", choices=("strict", "journaled"), default="strict")
    args = parser.parse_args()
    operations = LazyFS(args.state, args.entries == "journaled")
    state = args.state
    try:
        fuse.FUSE(operations, args.mount, foreground=True, nothreads=False)
    except RuntimeError as exc:  # libfuse's main returns 8 when a signal ended its loop
        if str(exc) != "8":
            raise
    operations.save_durable(state)


if __name__ == "__main__":
    main()
