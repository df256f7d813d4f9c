"""State files: written atomically and durably, and one that does not read is set aside.

`observer.process.private_files.write_private` proves its order here (fsync of the file, the rename,
fsync of the folder) with `os.fsync` and `os.replace` recorded; the power cut itself, on a
filesystem that drops what was not fsynced, is a test of its own. `observer.process.state_files`
keeps what does not read beside its place, for a post-mortem, and says so once.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.curve import generate_key_pair
from bus.events import Alert
from observer.db.backup_folders import Making
from observer.process.private_files import set_aside, write_private
from observer.process.state_files import STATE_FILE_UNREADABLE, read_state
from tests.support import set_aside as assert_set_aside


def _target(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Each fsync (of what path) and each rename (to what path), in order."""
    seen: list[tuple[str, str]] = []
    fsync, replace, link, rename = os.fsync, os.replace, os.link, os.rename

    def recorded_fsync(fd: int) -> None:
        seen.append(("fsync", _target(fd)))
        fsync(fd)

    def recorded_replace(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        seen.append(("rename", str(dst)))
        replace(src, dst)

    def recorded_link(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        seen.append(("link", str(dst)))
        link(src, dst)

    def recorded_rename(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        seen.append(("rename", str(dst)))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", recorded_rename)
    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    monkeypatch.setattr(os, "link", recorded_link)
    yield seen


def test_a_write_fsyncs_the_file_then_renames_it_then_fsyncs_the_folder(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    path = tmp_path / "state" / "pins.json"
    write_private(path, b"[1]")
    write_private(path, b"[2]")
    assert path.read_bytes() == b"[2]"
    temporary = calls[0][1]
    assert temporary.startswith(str(path.parent / ".pins.json.")) and temporary.endswith(".tmp")
    assert (
        calls
        == [
            ("fsync", temporary),  # the temporary file, whole, before anything names it
            ("rename", str(path)),
            ("fsync", str(path.parent)),  # the rename itself
        ]
        * 2
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["pins.json"]  # no temporary left


def test_an_exclusive_write_links_once_and_never_replaces(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    path = tmp_path / "20261120_kr_stocks.json"
    write_private(path, b"day", exclusive=True)
    assert [c[0] for c in calls] == ["fsync", "link", "fsync"]
    assert calls[1] == ("link", str(path)) and calls[2] == ("fsync", str(tmp_path))
    with pytest.raises(FileExistsError):
        write_private(path, b"another", exclusive=True)
    assert path.read_bytes() == b"day"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_files_are_owner_only_whatever_the_umask_and_a_new_folder_too(tmp_path: Path) -> None:
    before = os.umask(0)
    try:
        write_private(tmp_path / "new" / "cache.json", b"{}")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "new" / "cache.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


@pytest.mark.parametrize("failing", ["write", "fsync", "rename"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A full disk at any step: the file is as it was, and the part written is gone."""
    path = tmp_path / "holds.json"
    write_private(path, b'["track_a"]')

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: _FullFile(fd))
    else:
        monkeypatch.setattr(os, {"fsync": "fsync", "rename": "replace"}[failing], full)
    with pytest.raises(OSError, match="No space left"):
        write_private(path, b'["track_a", "backup"]')
    assert path.read_bytes() == b'["track_a"]'
    assert [p.name for p in tmp_path.iterdir()] == ["holds.json"]


class _FullFile:
    """A file whose writes fail as on a full disk (and that closes its descriptor)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_set_aside_keeps_each_bad_file_owner_only_under_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "schedule.json"
    at = 1_795_132_800 * 10**9  # 2026-11-20 00:00:00 UTC
    asides = []
    for n in range(3):  # three in one second: none overwrites another
        path.write_bytes(b"torn %d" % n)
        path.chmod(0o644)
        asides.append(set_aside(path, now_ns=at))
    assert [a.name for a in asides] == [
        "schedule.json.bad-20261120T000000Z",
        "schedule.json.bad-20261120T000000Z-2",
        "schedule.json.bad-20261120T000000Z-3",
    ]
    assert [a.read_bytes() for a in asides] == [b"torn 0", b"torn 1", b"torn 2"]
    assert all(stat.S_IMODE(a.stat().st_mode) == 0o600 for a in asides)
    assert not path.exists()
    path.write_bytes(b"kept")
    copy = set_aside(path, copy=True, now_ns=at)
    assert path.read_bytes() == copy.read_bytes() == b"kept"  # the file stays for its owner


class _Record(msgspec.Struct):
    names: list[str]


def _decode(data: bytes) -> _Record:
    return msgspec.json.decode(data, type=_Record)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "(empty)"),
        (b"\x00" * 4096, "(4096 bytes of nothing)"),  # a power cut's zeros
        (b'{"names": ["track_a", "ba', "(Input data was truncated)"),
        (b'{"names": "track_a"}', "(Expected `array`, got `str` - at `$.names`)"),
        (b"\xff\xfe garbage", "(JSON is malformed: invalid character (byte 0))"),
    ],
)
def test_a_file_that_does_not_read_is_set_aside_with_one_alert(
    tmp_path: Path, data: bytes, why: str
) -> None:
    path = tmp_path / "run" / "record.json"
    path.parent.mkdir()
    path.write_bytes(data)
    sent: list[Alert] = []
    assert read_state(path, _decode, "no program is held from before", sent.append) is None
    aside = assert_set_aside(path, data)
    assert not path.exists()
    (alert,) = sent
    assert (alert.severity, alert.code, alert.subject) == (
        "warning",
        STATE_FILE_UNREADABLE,
        str(path),
    )
    assert alert.message == (
        f"{path} does not read {why}: set aside as {aside.name}; no program is held from before"
    )
    assert alert.context == {"file": str(path), "set_aside": str(aside)}
    assert read_state(path, _decode, "", sent.append) is None and len(sent) == 1  # gone now


def test_a_state_file_that_cannot_be_read_at_all_is_set_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.mkdir()  # a folder in its place
    sent: list[Alert] = []
    assert read_state(path, _decode, "rebuilt", sent.append) is None
    (aside,) = tmp_path.glob("record.json.bad-*")
    assert aside.is_dir() and not path.exists()
    assert "does not read (Is a directory)" in sent[0].message


def test_a_missing_file_is_none_without_a_word_and_a_good_one_reads(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    sent: list[Alert] = []
    assert read_state(path, _decode, "", sent.append) is None
    write_private(path, json.dumps({"names": ["track_a"]}).encode())
    assert read_state(path, _decode, "", sent.append) == _Record(["track_a"])
    assert sent == [] and [p.name for p in tmp_path.iterdir()] == ["record.json"]


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
def test_any_bytes_read_or_are_set_aside_never_raise(tmp_path: Path, data: bytes) -> None:
    """Whatever a power cut or a person leaves in the file: a record, or one alert."""
    folder = tmp_path / os.urandom(8).hex()
    path = folder / "record.json"
    write_private(path, data)
    sent: list[Alert] = []
    found = read_state(path, _decode, "", sent.append)
    if found is None:
        assert len(sent) == 1 and not path.exists()
        assert_set_aside(path, data)
    else:
        assert sent == [] and found == _decode(data)


def test_a_backup_is_named_verified_only_once_every_part_is_on_the_disk(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    """After a power cut a verified name must not hold a dump or a copy torn short."""
    making = Making(tmp_path, datetime(2026, 11, 20, 21, tzinfo=UTC))
    parts = [making.folder / "observer.sql", making.folder / "files" / "universe" / "a.json"]
    for part in parts:
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(b"part")
    calls.clear()
    final = making.verified()
    renamed = calls.index(("rename", str(final)))
    synced = {path for kind, path in calls[:renamed] if kind == "fsync"}
    assert synced >= {str(p) for p in parts} | {str(p.parent) for p in parts}
    assert calls[renamed + 1 :] == [("fsync", str(tmp_path))]  # the rename itself


def test_a_new_key_pair_is_on_the_disk_before_it_is_handed_out(
    tmp_path: Path, calls: list[tuple[str, str]]
) -> None:
    public, secret = generate_key_pair(tmp_path / "keys", "writer")
    assert calls == [
        ("fsync", str(secret)),
        ("fsync", str(public)),
        ("fsync", str(tmp_path / "keys")),
    ]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
