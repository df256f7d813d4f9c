"""Minute-bar paging: when it stops, and whether the answer holds every bar of the span."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from observer.kis.client import MinuteRows
from tests.kis.test_kis_client import envelope, make_client


def _hhmm(i: int) -> str:
    return f"{9 + i // 60:02d}{i % 60:02d}00"


def _span(
    tmp_path: Path, traded: dict[str, set[int]], since: int, until: int, day: str = ""
) -> tuple[MinuteRows, list[str]]:
    """The client against KIS's paging: the newest bars at or before the asked minute.

    ``traded``: the minutes (from 09:00) each day (YYYYMMDD) had trades; the past-day TR
    runs on into the days before, 120 rows a call, today's TR stops at today, 30 a call.
    """
    cursors: list[str] = []
    per_call = 120 if day else 30

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params["FID_INPUT_HOUR_1"]
        cursors.append(cursor)
        asked = request.url.params.get("FID_INPUT_DATE_1", "20261120")
        rows = []
        for date_ in sorted(traded, reverse=True):
            if date_ > asked:
                continue
            rows += [
                (date_, _hhmm(i))
                for i in sorted(traded[date_], reverse=True)
                if date_ < asked or _hhmm(i) <= cursor
            ]
            if not day:
                break  # today's TR answers today's bars only
        body = [
            {
                "stck_bsop_date": d,
                "stck_cntg_hour": h,
                "stck_prpr": "100",
                "stck_oprc": "100",
                "stck_hgpr": "101",
                "stck_lwpr": "99",
                "cntg_vol": "10",
                "acml_tr_pbmn": "0",
            }
            for d, h in rows[:per_call]
        ]
        return httpx.Response(200, json=envelope(output1={}, output2=body))

    client = make_client(tmp_path, handler)
    found = asyncio.run(client.minute_bars_span("005930", _hhmm(since), _hhmm(until), day))
    return found, cursors


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(0, 390), max_size=200), st.integers(0, 390), st.integers(0, 150))
def test_the_paging_stops_once_it_reaches_since_and_says_whether_it_did(
    tmp_path: Path, traded: set[int], until: int, width: int
) -> None:
    since = max(0, until - width)
    found, cursors = _span(tmp_path, {"20261120": traded}, since, until)
    inside = sorted(i for i in traded if since <= i <= until)
    assert [r.stck_cntg_hour for r in found.rows] == [_hhmm(i) for i in inside]
    # Every bar of the span answered, proven by a bar at or before since: reached.
    assert found.reached == any(i <= until for i in traded)
    # One call per 30 bars of the span, and one more only to reach a bar before since: the
    # minute since itself without a trade no longer costs a call.
    assert len(cursors) <= len(inside) // 30 + 1


def test_an_answer_without_bars_proves_nothing(tmp_path: Path) -> None:
    found, cursors = _span(tmp_path, {"20261120": {200}}, 30, 60)  # 09:30-10:00, trades later
    assert found == MinuteRows([], reached=False) and len(cursors) == 1


def test_a_past_day_reaches_since_through_the_day_before(tmp_path: Path) -> None:
    # 2026-11-19 traded only at 09:00 and 09:01 before the span; KIS runs on into 11-18.
    traded = {"20261119": {0, 1, 300}, "20261118": set(range(391))}
    found, cursors = _span(tmp_path, traded, 100, 200, day="20261119")
    assert found == MinuteRows([], reached=True) and len(cursors) == 1
