"""The universe job reading a KOSPI master whose 005930 record is one character too long.

The record counts as a candidate that failed, named in the file's ``failed_symbols`` and in
``universe_members_failed``, never read with its fields shifted (group 'T', kind 't') nor
dropped from the day's universe without a word. Against the real simulator and a real
writer process, as ``tests/universe/test_universe.py`` does.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, datetime

import httpx

from harness.sim.masters import zipped
from observer.reference.instruments import current_archive, master_file
from tests.universe.conftest import START, Harness, expected
from workers.master_file.files import Current, FileState, LocalFiles

SAMSUNG = "005930"
DAY = date(2026, 11, 20)


def install_masters_with_samsung_long(h: Harness) -> None:
    """The KR masters in use as the day's master check leaves them, 005930 a character long."""
    files = LocalFiles(h.data)
    for market in ("KOSPI", "KOSDAQ"):
        file = master_file(market)
        archive = httpx.get(h.master_url + file.name).content
        if market == "KOSPI":
            with zipfile.ZipFile(io.BytesIO(archive)) as zf:
                lines = zf.read(file.member).split(b"\n")
            lines = [x + b" " if x.startswith(SAMSUNG.encode()) else x for x in lines]
            archive = zipped(file.member, b"\n".join(lines))
        current_archive(h.data, file).parent.mkdir(parents=True, exist_ok=True)
        current_archive(h.data, file).write_bytes(archive)
        installed = int(datetime(2026, 11, 20, 6, 0, tzinfo=START.tzinfo).timestamp()) * 10**9
        files.save_state(
            file, FileState(Current(len(archive), "a", "b", 1, installed_ns=installed))
        )


def test_a_malformed_master_record_is_a_named_failure_not_a_silent_drop(
    harness: Harness,
) -> None:
    h = harness
    members = expected(DAY)
    assert SAMSUNG in members  # a member on a whole master
    install_masters_with_samsung_long(h)
    summary = h.build("2026-11-20")
    assert summary["outcome"] == "built"
    file = json.loads((h.data / "universe" / "20261120_kr_stocks.json").read_text())
    assert [s["code"] for s in file["symbols"]] == [s for s in members if s != SAMSUNG]
    failed = file["metadata"]["failed_symbols"]
    assert list(failed) == [SAMSUNG]
    assert "malformed KOSPI master record" in failed[SAMSUNG]
    assert "scrt_grp_cls_code 'T'" in failed[SAMSUNG]
    assert summary["excluded"]["failed"] == 1
    assert summary["candidates"] == len(file["symbols"]) + sum(summary["excluded"].values())
    ((severity, code, message),) = h.rows("select severity, code, message from alerts")
    assert (severity, code) == ("warning", "universe_members_failed")
    assert "leaves out 1 candidates whose master record is malformed" in message
    assert SAMSUNG in message
