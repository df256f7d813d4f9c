"""The check's pure readings: a frame's record width, a minute bar's label, the trades'
session codes against the venues' hours."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.calendar.phases import KST
from observer.kis_check.layouts import generation, record_width
from observer.kis_check.minute_label import LiveTrade, read_label
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report
from observer.kis_check.run import Configured
from observer.kis_check.session_codes import ITEM, session_code_finding

NINE = int(datetime(2026, 11, 20, 9, 0, tzinfo=KST).timestamp()) * 1_000_000_000
MINUTE = 60 * 1_000_000_000


@given(st.sampled_from(["H0STCNT0", "H0STASP0"]), st.integers(1, 80), st.integers(1, 12))
def test_the_width_is_fields_per_record(tr_id: str, width: int, count: int) -> None:
    frame = f"0|{tr_id}|{count:03d}|" + "^".join(["1"] * width * count)
    assert record_width(frame) == (tr_id, width)
    known = {"H0STCNT0": {46, 47}, "H0STASP0": {59, 63}}[tr_id]  # the two workbook exports
    assert (generation(tr_id, width) is not None) == (width in known)


def test_a_count_that_does_not_divide_has_no_width() -> None:
    assert record_width("0|H0STCNT0|002|" + "^".join(["1"] * 93)) == ("H0STCNT0", -1)
    assert record_width('{"header": {"tr_id": "PINGPONG"}}') is None


def _trades(volumes: list[int], split: int) -> list[LiveTrade]:
    """Each minute's volume as ``split`` trades spread over it (the last takes the rest)."""
    trades = []
    for i, volume in enumerate(volumes):
        parts = [volume // split] * (split - 1)
        parts.append(volume - sum(parts))
        for j, qty in enumerate(parts):
            trades.append(LiveTrade(NINE + i * MINUTE + j * MINUTE // split, qty))
    return trades


def _label(i: int) -> str:
    return f"{9 + i // 60:02d}{i % 60:02d}00"


@settings(max_examples=50)
@given(
    st.lists(st.integers(1, 10**6), min_size=3, max_size=12, unique=True),
    st.integers(1, 5),
    st.sampled_from(["start", "end"]),
)
def test_bars_are_read_by_the_label_they_carry(volumes: list[int], split: int, label: str) -> None:
    shift = 0 if label == "start" else 1
    bars = {_label(i + shift): v for i, v in enumerate(volumes)}
    reading = read_label(_trades(volumes, split), bars)
    assert reading.label == label and reading.minutes == len(volumes) - 2  # the edges: partial


def test_bars_that_agree_with_neither_label_are_told() -> None:
    volumes = [10, 20, 30, 40]
    bars = {_label(i): v + 1 for i, v in enumerate(volumes)}
    reading = read_label(_trades(volumes, 2), bars)
    assert reading.label is None and reading.minutes == 2 and "0 agree" in reading.detail


def test_too_short_a_session_is_not_measured() -> None:
    reading = read_label(_trades([5, 6], 3), {_label(0): 5, _label(1): 6})
    assert reading.label is None and reading.minutes == 0


def _at(hhmmss: str) -> int:
    at = datetime.strptime(f"2026-11-20 {hhmmss}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=KST)
    return int(at.timestamp()) * 1_000_000_000


def _codes(*heard: tuple[str, str, str]) -> Report:
    report = Report(account="a", environment="sim", symbol="005930", seconds=1)
    coded = [(venue, _at(hhmmss), code) for venue, hhmmss, code in heard]
    session_code_finding(coded, Configured().venues, report)
    (finding,) = report.findings
    assert finding.item == ITEM
    return report


def test_codes_as_the_hours_say_and_the_closing_price_market_beside_them_agree() -> None:
    found = _codes(
        ("KRX", "10:00:00", "2"),
        ("KRX", "17:00:00", "3"),
        ("NXT", "15:45:00", "5"),  # 종가매매, beside the after-market
        ("NXT", "15:45:01", "3"),
    ).findings[0]
    assert found.outcome == OK
    assert "H0NXCNT0: '3' after_market x1, '5' off_hours_close x1" in found.finding


def test_a_code_naming_another_session_is_a_mismatch_naming_the_first() -> None:
    found = _codes(
        ("KRX", "10:00:00", "2"),
        ("KRX", "17:00:00", "2"),  # KRX's after-market coded regular
        ("NXT", "16:30:00", "5"),  # after 종가매매's half hour
    ).findings[0]
    assert found.outcome == MISMATCH
    assert found.finding.startswith("2 of 3 trades' codes name another session")
    assert "first: H0STCNT0 at 17:00:00 coded '2' where [venues] says after_market" in (
        found.finding
    )


def test_no_code_heard_is_not_measured() -> None:
    report = Report(account="a", environment="sim", symbol="005930", seconds=1)
    session_code_finding([], Configured().venues, report)
    assert [f.outcome for f in report.findings] == [NOT_MEASURED]
