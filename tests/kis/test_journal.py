"""The raw journal: what is appended reads back, across days, torn tails and damage."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import struct
import subprocess
import threading
from datetime import date, datetime
from pathlib import Path
from queue import Queue
from types import SimpleNamespace
from typing import cast

import msgspec
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bus.capture import CaptureReader
from bus.codec import decode_frame
from bus.events import Alert, AlertResolved, Event
from bus.producer import Producer
from observer.cli.main import app
from observer.config.tree import Settings
from observer.errors import JournalError
from observer.kis import journal as journal_module
from observer.kis.bars import BarLabel, GapAsk
from observer.kis.journal import (
    KST,
    Journal,
    JournalRecord,
    answering_for,
    day_files,
    frame_tr,
    journal_days,
    list_file,
    prune_journal,
    read_file,
    redact_control,
    rest_request,
    verify_file,
)
from observer.kis.journal_replay import capture_journal
from observer.kis.record_checks import Checks
from observer.kis.time_trades import TradesAsk
from observer.process.paths import PathSettings
from observer.runtime import JOURNAL_FAILED, journal_for
from tests.kis.test_kis_parse import TRADE

_NS = 1_000_000_000
# 2026-11-27 15:00 KST and two hours later (the next KST day starts at 15:00 UTC)
DAY_ONE = int(datetime(2026, 11, 27, 15, 0, tzinfo=KST).timestamp()) * _NS
SUBSCRIBED = json.dumps(
    {
        "header": {"tr_id": "H0STCNI0", "tr_key": "HTS_ID", "encrypt": "N"},
        "body": {
            "rt_cd": "0",
            "msg_cd": "OPSP0000",
            "msg1": "SUBSCRIBE SUCCESS",
            "output": {"iv": "0123456789abcdef", "key": "s3cr3tk3ys3cr3tk3ys3cr3tk3ys3cr3t"},
        },
    }
)

records = st.builds(
    JournalRecord,
    received_ns=st.integers(DAY_ONE, DAY_ONE + 3 * 86_400 * _NS),
    account=st.sampled_from(["acct1", "acct2"]),
    channel=st.sampled_from(["ws", "rest"]),
    tr=st.text(max_size=16),
    body=st.binary(max_size=2_000),
    request=st.text(max_size=40),
    status=st.integers(0, 599),
    cont=st.sampled_from(["", "F", "M", "D", "E"]),
    redacted=st.booleans(),
)


def died(journal: Journal) -> None:
    """The process ends without closing its journal (its file descriptor goes with it)."""
    assert journal._file is not None
    journal._file.close()


def frames(journal: Journal, count: int) -> Path:
    """``count`` H0STCNT0 frames of 005930 a nanosecond apart from `DAY_ONE`; the file's path."""
    for i in range(count):
        journal.frame("acct1", f"0|H0STCNT0|001|005930^{i}", DAY_ONE + i)
    assert journal.path is not None
    return journal.path


def written(root: Path) -> list[JournalRecord]:
    return [r for day in journal_days(root) for p in day_files(root, day) for r in read_file(p)]


@settings(max_examples=40, deadline=None)
@given(st.lists(records, max_size=60))
def test_what_is_appended_reads_back_by_day(
    tmp_path_factory: pytest.TempPathFactory, batch: list[JournalRecord]
) -> None:
    root = tmp_path_factory.mktemp("journal")
    ordered = sorted(batch, key=lambda r: r.received_ns)  # a clock that moves forward
    journal = Journal(root, "track_b")
    for record in ordered:
        journal.append(record)
    journal.close()
    assert written(root) == ordered
    for day in journal_days(root):
        for path in day_files(root, day):
            found = verify_file(path)
            assert found.ok and found.sealed, found
            assert all(
                datetime.fromtimestamp(r.received_ns / _NS, KST).date() == day
                for r in read_file(path)
            )


def test_an_unsealed_file_reads_to_its_last_record_and_a_torn_one_loses_only_that(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path, "track_b")
    path = frames(journal, 100)
    # Not closed: the process died. Every record flushed is there.
    found = verify_file(path)
    assert (found.records, found.sealed, found.torn, found.ok) == (100, False, False, True)
    # The power went mid-append: a whole block of a record written partly. Append one more
    # record whose block we cut in two.
    size = path.stat().st_size
    journal.frame("acct1", "0|H0STCNT0|001|" + "x" * 5_000, DAY_ONE + 101)
    with open(path, "r+b") as f:
        f.truncate(size + (path.stat().st_size - size) // 2)
    died(journal)
    bodies = [r.body for r in read_file(path)]
    assert len(bodies) == 100 and bodies[-1] == b"0|H0STCNT0|001|005930^99"


def test_a_record_cut_inside_its_bytes_is_torn(tmp_path: Path) -> None:
    """The file ends inside a record's bytes: the records before it read, and it is reported."""
    path = tmp_path / "cut.kisj.zst"
    whole = Journal(tmp_path / "j", "p")
    whole.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE)
    assert whole.path is not None
    died(whole)
    first = zstandard.ZstdDecompressor().decompressobj().decompress(whole.path.read_bytes())
    path.write_bytes(zstandard.ZstdCompressor().compress(first + b"\x00\x00\x00\x50" + b"x" * 10))
    found = verify_file(path)
    assert (found.records, found.torn, found.ok) == (1, True, False)
    assert len(list(read_file(path))) == 1


def test_a_reader_left_early_ends_its_decompressing_thread_and_one_that_fails_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread decompressing ahead (`_decompressed`) goes with its reader, however it ends.

    A day's file is millions of records: a reader stopped after one must not leave a thread
    blocked on a full queue, holding the file. A file that stops decompressing midway raises
    the thread's error in the reader, after the records before it.
    """
    full = threading.Event()  # the thread found the queue full: it blocks until it is read

    class Watched(Queue[object]):
        def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
            if self.full():
                full.set()
            super().put(item, block, timeout)

    monkeypatch.setattr(journal_module, "Queue", Watched)
    journal = Journal(tmp_path, "track_b", level=1)
    for i in range(50_000):  # 11 MB: more of the reader's chunks than its queue holds
        journal.frame("acct1", f"0|H0STCNT0|001|005930^{i}^" + "x" * 200, DAY_ONE + i)
    path = journal.path
    assert path is not None
    journal.close()

    def decompressing() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == f"journal {path.name}"]

    reader = read_file(path)
    assert next(reader).body == b"0|H0STCNT0|001|005930^0^" + b"x" * 200
    assert full.wait(timeout=60) and len(decompressing()) == 1  # blocked ahead of the reader
    reader.close()
    assert decompressing() == []

    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + bytes(64) + data[len(data) // 2 :])
    read: list[JournalRecord] = []
    with pytest.raises(JournalError, match="does not decompress"):
        read.extend(read_file(path))
    assert 0 < len(read) < 50_000
    assert [r.received_ns for r in read] == [DAY_ONE + i for i in range(len(read))]
    assert decompressing() == []


def torn(root: Path, sizes: list[int], cut: float) -> tuple[Path, list[JournalRecord]]:
    """A file of records of ``sizes`` (random bytes) whose process died, cut at ``cut`` of its
    bytes; its path and the records sent."""
    journal = Journal(root, "track_b", level=1)
    sent = [
        JournalRecord(DAY_ONE + i, "acct1", "ws", "H0STCNT0", os.urandom(size))
        for i, size in enumerate(sizes)
    ]
    for record in sent:
        journal.append(record)
    path = journal.path
    assert path is not None
    died(journal)
    whole = path.read_bytes()
    path.write_bytes(whole[: int(len(whole) * cut)])
    return path, sent


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300_000), min_size=1, max_size=12),
    cut=st.floats(0.0, 1.0),
)
def test_a_file_torn_anywhere_reads_back_a_prefix_whole_and_in_order(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], cut: float
) -> None:
    """Records of any size (across the reader's 1 MiB reads), the file cut at any byte."""
    path, sent = torn(tmp_path_factory.mktemp("journal"), sizes, cut)
    back = list(read_file(path))
    assert back == sent[: len(back)]
    found = verify_file(path)
    assert found.records == len(back) and not found.problem


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3_000), min_size=1, max_size=20),
    chunk=st.integers(1, 700),
    cut=st.floats(0.0, 1.0),
)
def test_records_cut_by_the_reader_s_chunks_anywhere_read_back_whole(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], chunk: int, cut: float
) -> None:
    """The reader's chunks made small: a length prefix cut inside its four bytes, a record
    spanning many chunks, each completed from the chunks after it; the file torn anywhere."""
    path, sent = torn(tmp_path_factory.mktemp("journal"), sizes, cut)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_module, "_CHUNK", chunk)
        back = list(read_file(path))
        found = verify_file(path)
    assert back == sent[: len(back)] and found.records == len(back) and not found.problem
    if cut == 1.0:
        assert back == sent


def test_an_unsealed_file_reads_every_record_zstd_holds_past_the_reader_s_last_chunk(
    tmp_path: Path,
) -> None:
    """A process that died leaves a frame without its end: what zstd decompressed of its last
    blocks beyond the reader's chunk is read too (zstandard's stream reader ended without it:
    199 of these 200 records, 20 MB from 3 kB)."""
    journal = Journal(tmp_path, "track_b")
    sent = [
        JournalRecord(DAY_ONE + i, "acct1", "ws", "H0STCNT0", bytes(100_000)) for i in range(200)
    ]
    for record in sent:
        journal.append(record)
    path = journal.path
    assert path is not None
    died(journal)
    assert list(read_file(path)) == sent
    found = verify_file(path)
    assert found.records == 200 and found.ok and not found.sealed, found


def test_a_sealed_file_is_listed_from_its_seal_and_the_seal_checks_with_sha256sum(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path, "track_b")
    path = frames(journal, 50)
    journal.close()
    read, listed = verify_file(path), list_file(path)
    assert (listed.records, listed.raw_bytes, listed.sealed) == (50, read.raw_bytes, True)
    sidecar = path.with_name(path.name + ".sha256")
    checked = subprocess.run(
        ["sha256sum", "--strict", "-c", sidecar.name], cwd=path.parent, capture_output=True
    )
    assert checked.returncode == 0, checked.stderr
    # Listing reads the seal alone: the same counts from a file whose bytes are gone.
    path.write_bytes(b"")
    assert list_file(path).records == 50 and verify_file(path).problem
    # An unsealed file (its process died) is read whole.
    unsealed = Journal(tmp_path / "other", "track_b")
    unsealed.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE)
    assert unsealed.path is not None
    died(unsealed)
    assert (list_file(unsealed.path).records, list_file(unsealed.path).sealed) == (1, False)


def test_a_sealed_file_that_changed_is_a_problem(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "track_a")
    journal.answer("acct1", "FHKST01010100", "/q?x=1", 200, b'{"rt_cd":"0"}', DAY_ONE)
    path = journal.path
    journal.close()
    assert path is not None and verify_file(path).sealed
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    found = verify_file(path)
    assert not found.ok and found.problem, found


@pytest.mark.parametrize(
    "tail", [b"\x00" * 9, b"\x28\xb5\x2f\xfd" * (1 << 19)], ids=["bytes", "2 MB"]
)
def test_bytes_after_a_sealed_file_s_frame_are_damage(tmp_path: Path, tail: bytes) -> None:
    """Whatever follows a sealed file's frame is damage: zstd stops at the frame's end, and
    the sha256 of the whole file, taken as it is read, differs from its seal's."""
    journal = Journal(tmp_path, "track_a")
    journal.answer("acct1", "FHKST01010100", "/q?x=1", 200, b'{"rt_cd":"0"}', DAY_ONE)
    path = journal.path
    journal.close()
    assert path is not None and verify_file(path).sealed
    with open(path, "ab") as f:
        f.write(tail)
    found = verify_file(path)
    assert found.records == 1 and not found.sealed and not found.ok, found
    assert "its sha256 differs" in found.problem, found


def test_a_record_that_does_not_decode_is_damage_and_the_records_before_it_are_read(
    tmp_path: Path,
) -> None:
    """The whole records of the stream before a damaged one are read and counted, however
    they fall in the reader's chunks; the damage is the file's problem."""
    good = [JournalRecord(DAY_ONE + i, "acct1", "ws", "H0STCNT0", b"x" * 50) for i in range(3)]
    bodies = [msgspec.msgpack.encode(r) for r in good] + [b"\xc1" * 20]  # 0xc1: never msgpack
    stream = b"".join(struct.pack(">I", len(b)) + b for b in bodies)
    path = tmp_path / "track_b.kisj.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(stream))
    with pytest.raises(JournalError, match="a record does not decode"):
        list(read_file(path))
    found = verify_file(path)
    assert found.records == 3 and "a record does not decode" in found.problem, found


def test_subscription_answers_lose_their_key_and_iv(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "track_b")
    journal.frame("acct1", SUBSCRIBED, DAY_ONE)
    journal.frame("acct1", SUBSCRIBED.encode(), DAY_ONE + 1)
    path = journal.path
    journal.close()
    assert path is not None
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    assert b"s3cr3tk3y" not in raw and b"0123456789abcdef" not in raw
    got = list(read_file(path))
    assert all(r.redacted and r.tr == "H0STCNI0" for r in got)
    output = json.loads(got[0].body)["body"]["output"]
    assert output == {"iv": "<redacted>", "key": "<redacted>"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_each_task_s_answers_carry_its_own_context_and_older_records_read_without_one(
    tmp_path: Path,
) -> None:
    """Two asyncio tasks asking at once, each in its own `answering_for`; a record written
    before the context existed (nine fields) reads with none."""
    journal = Journal(tmp_path, "gap_recovery")

    async def ask(context: str, at: int) -> None:
        with answering_for(context):
            await asyncio.sleep(0)  # the other task runs in between
            journal.answer("acct1", "FHKST03010200", "/p?a=1", 200, b"{}", DAY_ONE + at)

    async def both() -> None:
        await asyncio.gather(ask("gap one", 1), ask("gap two", 2))
        journal.answer("acct1", "FHKST03010200", "/p?a=1", 200, b"{}", DAY_ONE + 3)

    asyncio.run(both())
    path = journal.path
    journal.close()
    assert path is not None
    assert [r.context for r in read_file(path)] == ["gap one", "gap two", ""]
    older = msgspec.msgpack.encode([DAY_ONE, "acct1", "rest", "FHKST03010200", b"{}", "", 200])
    assert msgspec.msgpack.decode(older, type=JournalRecord).context == ""


@given(
    st.text(max_size=64),
    st.integers(0, 2**62),
    st.integers(0, 600),
    st.sampled_from(["start", "end"]),
    st.integers(1, 2**62),
)
def test_a_gap_s_asks_read_back_from_their_contexts_and_no_other_context_reads_as_one(
    gap_id: str, first_ns: int, minutes: int, label: BarLabel, ask: int
) -> None:
    made = GapAsk(gap_id, first_ns, first_ns + minutes * 60 * _NS, label, ask)
    assert GapAsk.of(made.context()) == made
    assert len(made.minutes) == minutes + 1
    assert GapAsk.of(gap_id) is None and GapAsk.of(made.context()[:-1]) is None
    trades = TradesAsk(gap_id, first_ns, made.last_ns, ask, ask + minutes, 10, ask)
    assert TradesAsk.of(trades.context()) == trades
    assert TradesAsk.of(made.context()) is None and GapAsk.of(trades.context()) is None


@given(st.text(max_size=200))
def test_redaction_never_raises_and_leaves_other_text_alone(text: str) -> None:
    redacted = redact_control(text)
    assert redacted is None or "<redacted>" in redacted


def test_frames_name_their_tr() -> None:
    assert frame_tr("0|H0STCNT0|001|005930^1") == "H0STCNT0"
    assert frame_tr(SUBSCRIBED) == "H0STCNI0"
    assert frame_tr('{"header":{"tr_id":"PINGPONG","datetime":"20261127"}}') == "PINGPONG"
    assert frame_tr("garbage") == ""
    assert rest_request("/p", {"b": "2", "a": "1"}) == "/p?a=1&b=2"


def test_a_folder_that_cannot_be_made_is_said_once_and_the_process_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "journal").write_text("a file where the folder should be")
    heard: list[str] = []
    journal = Journal(tmp_path / "journal", "track_b", on_failure=heard.append)
    for i in range(3):
        journal.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE + i)
    assert len(heard) == 1 and "cannot create" in heard[0], heard
    assert journal.records == 0 and journal.failed


def test_a_full_disk_mid_day_is_said_once_and_a_new_file_opens_after_the_retry(
    tmp_path: Path,
) -> None:
    """A write that fails (here: the file closed under the journal) stops the file.

    The first record ``retry_s`` later opens a new one, and so does the next day's.
    """
    heard: list[str] = []
    opened: list[Path] = []
    journal = Journal(tmp_path, "track_b", on_failure=heard.append, on_open=opened.append)
    journal.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE)
    assert journal._file is not None and len(opened) == 1
    os.close(journal._file.fileno())  # every later write fails with EBADF
    for i in range(3):
        journal.frame("acct1", "0|H0STCNT0|001|b", DAY_ONE + 1 + i)
    assert len(heard) == 1 and "cannot append" in heard[0], heard
    assert journal.records == 1 and len(opened) == 1
    retry = int(journal.retry_s * _NS)
    journal.frame("acct1", "0|H0STCNT0|001|c", DAY_ONE + 1 + retry - 1)
    assert journal.records == 1 and journal.failed  # not yet
    journal.frame("acct1", "0|H0STCNT0|001|d", DAY_ONE + 1 + retry)
    assert journal.records == 2 and not journal.failed and len(opened) == 2
    assert opened[1] != opened[0]
    os.close(journal._file.fileno())
    journal.frame("acct1", "0|H0STCNT0|001|e", DAY_ONE + 2 * retry)
    assert len(heard) == 2 and journal.failed
    # The next day's file starts afresh, whatever the retry.
    journal.frame("acct1", "0|H0STCNT0|001|f", DAY_ONE + 86_400 * _NS)
    assert journal.records == 3 and not journal.failed and len(opened) == 3
    journal.close()
    found = written(tmp_path)
    assert [r.body[-1:] for r in found] == [b"a", b"d", b"f"]


def test_days_past_the_keep_are_pruned(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "track_b")
    for day in range(5):
        journal.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE + day * 86_400 * _NS)
    journal.close()
    days = journal_days(tmp_path)
    assert len(days) == 5
    removed = prune_journal(tmp_path, 2, days[-1])
    assert removed == days[:2] and journal_days(tmp_path) == days[2:]
    assert prune_journal(tmp_path, 0, date(2100, 1, 1)) == []


def test_a_processs_journal_alert_is_resolved_by_the_next_file_that_opens(
    tmp_path: Path,
) -> None:
    """`journal_for`: the failure is a warning of the process's; the next file ends it."""
    settings = msgspec.structs.replace(Settings(), paths=PathSettings(data_dir=str(tmp_path)))
    sent: list[Event] = []
    producer = SimpleNamespace(source="track_b", send=sent.append)
    journal = journal_for(settings, cast(Producer, producer))
    assert journal is not None and journal.folder == tmp_path / "journal"
    journal.folder.write_text("a file where the folder should be")
    journal.frame("acct1", "0|H0STCNT0|001|a", DAY_ONE)
    journal.frame("acct1", "0|H0STCNT0|001|b", DAY_ONE + 1)
    assert [(type(e), e.code, e.subject) for e in sent] == [(Alert, JOURNAL_FAILED, "track_b")]
    journal.folder.unlink()  # room again
    journal.frame("acct1", "0|H0STCNT0|001|c", DAY_ONE + int(journal.retry_s * _NS))
    journal.close()
    assert [(type(e), e.code, e.subject) for e in sent[1:]] == [
        (AlertResolved, JOURNAL_FAILED, "track_b")
    ]
    assert [r.body[-1:] for r in written(journal.folder)] == [b"c"]


def test_a_replay_gives_back_every_record_kind_not_trades_and_books_alone(
    tmp_path: Path,
) -> None:
    """Market status, program trading and expected matches are replayed as the live run
    stored them, each under its TR."""
    status = "005930^N^(null)^^311^^^55^N^N^1"
    program = "005930^092237^70000^5117000000^60000^4386000000^-10000^-731000000^1000^900^-100"
    expected = "^".join(["005930", "084945", "77600", *["0"] * 41, "B", ""])
    journal = Journal(tmp_path / "journal", "track_b")
    for n, (tr, record) in enumerate(
        (("H0STMKO0", status), ("H0STPGM0", program), ("H0STANC0", expected))
    ):
        journal.frame("acct1", f"0|{tr}|001|{record}", DAY_ONE + n)
    journal.close()
    day = datetime.fromtimestamp(DAY_ONE / _NS, KST).date()
    result = capture_journal(tmp_path / "journal", day, tmp_path / "replayed.cap")
    assert (result.frames, result.events, result.refused_records) == (3, 3, 0)
    assert result.by_tr == {"H0STMKO0": 1, "H0STPGM0": 1, "H0STANC0": 1}
    with CaptureReader(tmp_path / "replayed.cap") as reader:
        kinds = [type(env.event).__name__ for raw in reader for env in decode_frame(raw)]
    assert kinds == ["MarketStatus", "ProgramTrade", "AuctionExpected"]


def test_the_journal_commands_list_from_seals_and_verify_every_file(tmp_path: Path) -> None:
    """`observer journal list` and `verify` on a day of two processes: a sealed file listed
    from its seal, one whose process died read whole; a changed sealed file is damage (exit
    1), which list, reading seals, does not judge."""
    data = tmp_path / "data"
    config = tmp_path / "observer.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\n')
    sealed = Journal(data / "journal", "track_b")
    path = frames(sealed, 30)
    sealed.close()
    died_one = Journal(data / "journal", "track_a")
    died_one.answer("acct1", "FHKST01010100", "/q?x=1", 200, b'{"rt_cd":"0"}', DAY_ONE)
    died(died_one)
    runner = CliRunner()
    listed = runner.invoke(app, ["journal", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "2 files, 31 records" in listed.output
    assert (
        "track_b." in listed.output and "30 records" in listed.output and "sealed" in listed.output
    )
    assert "unsealed (its process ended without closing it)" in listed.output
    verified = runner.invoke(app, ["journal", "verify", "--config", str(config)])
    assert verified.exit_code == 0 and "2 journal files read whole, 0 damaged" in verified.output
    data_bytes = bytearray(path.read_bytes())
    data_bytes[-3] ^= 0xFF
    path.write_bytes(bytes(data_bytes))
    damaged = runner.invoke(app, ["journal", "verify", "--config", str(config)])
    assert damaged.exit_code == 1 and "1 damaged" in damaged.output
    assert runner.invoke(app, ["journal", "list", "--config", str(config)]).exit_code == 0


def test_a_replay_runs_track_b_s_checks_as_the_live_run_ran_them(tmp_path: Path) -> None:
    """Registered by KIS's answer, held to 10 s after its release; limits as Track A's
    snapshots gave them by each arrival: the refusals come out as the live run's, counted
    and not stored; ``checks`` None stores every record."""
    noon = int(datetime(2026, 11, 20, 12, 40, tzinfo=KST).timestamp()) * _NS  # TRADE's day
    journal = Journal(tmp_path / "journal", "track_b")

    def answer(code: str, at: int, key: str = "005930") -> None:
        header = {"tr_id": "H0STCNT0", "tr_key": key, "encrypt": "N"}
        body = {"rt_cd": "0", "msg_cd": code, "msg1": "SUBSCRIBE SUCCESS"}
        journal.frame("acct1", json.dumps({"header": header, "body": body}), noon + at * _NS)

    def trade(symbol: str, price: int, at: int) -> None:
        fields = TRADE.split("^")
        fields[0], fields[2] = symbol, str(price)
        journal.frame("acct1", "0|H0STCNT0|001|" + "^".join(fields), noon + at * _NS)

    trade("005930", 73_100, 0)  # before its registration's answer: not asked for
    answer("OPSP0000", 1)
    trade("005930", 73_100, 2)  # stored
    trade("000660", 73_100, 3)  # another symbol: not asked for
    trade("005930", 99_000, 4)  # above the limits known by then
    trade("005930", 90_000, 5)  # within them (narrower ones come later)
    answer("OPSP0001", 10)  # released
    trade("005930", 73_100, 15)  # within 10 s of the release: stored
    trade("005930", 73_100, 21)  # later: not asked for
    answer("OPSP0000", 30, key="000660")
    trade("000660", 73_100, 31)  # stored
    journal.close()
    limits = {"005930": [(noon - 600 * _NS, (51_200, 95_000)), (noon + 60 * _NS, (60_000, 80_000))]}
    day = date(2026, 11, 20)
    checked = capture_journal(
        tmp_path / "journal", day, tmp_path / "checked.cap", checks=Checks(), limits=limits
    )
    assert checked.rejected == {"unregistered": 3, "outside_limits": 1}
    assert (checked.frames, checked.events) == (8, 4)
    assert "rejected by Track B's checks: outside_limits 1, unregistered 3" in checked.summary()
    with CaptureReader(tmp_path / "checked.cap") as reader:
        kept = [env.event for raw in reader for env in decode_frame(raw)]
    assert [(e.symbol, e.price) for e in kept] == [  # type: ignore[attr-defined]
        ("005930", 73_100),
        ("005930", 90_000),
        ("005930", 73_100),
        ("000660", 73_100),
    ]
    every = capture_journal(tmp_path / "journal", day, tmp_path / "every.cap")
    assert (every.events, every.rejected) == (8, {})
