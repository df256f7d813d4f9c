"""A domestic master record one character too long: held back, never applied with its fields
shifted (005930 삼성전자 read as kind 't', group 'T', its name carrying the tail's start).

The parser against the simulator's own master writer (Hypothesis); the master-file worker
against the real simulator and a real writer process, as
``tests/master_file/test_master_file.py`` does.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sim.masters import domestic_master, zipped
from observer.alerts.states import alert_states
from observer.db.queries import open_alert_records
from observer.kis.master import MAX_MALFORMED_SHARE, parse_domestic
from observer.reference.instruments import tickers
from tests.master_file.conftest import MARKET, Harness

SAMSUNG = "005930"
PRICES = {s: 70_000 for s in MARKET.listings}


def lengthened(body: bytes, symbols: dict[str, str]) -> bytes:
    """``body`` with each record of ``symbols`` one character longer (that character last)."""
    lines = body.split(b"\n")
    return b"\n".join(
        line + symbols[line[:6].decode()].encode() if line[:6].decode() in symbols else line
        for line in lines
    )


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["KOSPI", "KOSDAQ"]), st.data())
def test_records_one_character_too_long_are_held_back_never_listed(
    market: str, data: st.DataObject
) -> None:
    listed = sorted(
        (x for x in MARKET.listings.values() if x.market == market), key=lambda x: x.symbol
    )
    body = domestic_master(listed, PRICES)
    most = int(MAX_MALFORMED_SHARE * len(listed))
    damaged = data.draw(
        st.dictionaries(
            st.sampled_from([x.symbol for x in listed]),
            st.characters(min_codepoint=0x20, max_codepoint=0x7E),
            min_size=1,
            max_size=most,
        )
    )
    clean = parse_domestic(body, market)  # type: ignore[arg-type]
    parsed = parse_domestic(lengthened(body, damaged), market)  # type: ignore[arg-type]
    assert list(parsed) == [x for x in clean if x.symbol not in damaged]  # the rest as written
    lines = {x.symbol: n for n, x in enumerate(listed, start=1)}
    assert sorted((m.symbol, m.line) for m in parsed.malformed) == sorted(
        (s, lines[s]) for s in damaged
    )
    assert all(m.problems and m.market == market for m in parsed.malformed)


def serving_samsung_long(h: Harness, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The KOSPI archive served with 005930's record one character too long; the undo."""
    host = h.sim.masters
    real = host._master_files

    def files() -> dict[str, tuple[bytes, str]]:
        served = dict(real())
        archive, stamp = served["kospi_code.mst.zip"]
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            body = zf.read("kospi_code.mst")
        served["kospi_code.mst.zip"] = (
            zipped("kospi_code.mst", lengthened(body, {SAMSUNG: " "})),
            stamp,
        )
        return served

    monkeypatch.setattr(host, "_master_files", files)
    return lambda: monkeypatch.setattr(host, "_master_files", real)


def open_codes(h: Harness) -> set[tuple[str, str]]:
    with h.engine.connect() as conn:
        states = alert_states(open_alert_records(conn, deliveries=False))
    return {(s.notice.code, s.notice.subject) for s in states if s.state == "open"}


def test_a_malformed_record_is_left_as_stored_named_and_counted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.config.write_text(h.config.read_text() + "quality_alert_pct = 100\n")
    h.run("update", "--exchange", "KOSPI")
    stored = "select name, security_type, active from instruments where symbol = :s"
    assert h.rows(stored, s=SAMSUNG) == [("삼성전자", "stock", 1)]
    other = sorted(s for s, x in MARKET.listings.items() if x.market == "KOSPI")[-1]
    h.sim.faults.renamed[other] = "새이름"  # news in the same file: still applied
    undo = serving_samsung_long(h, monkeypatch)

    out = h.run("update", "--exchange", "KOSPI")
    assert "1 malformed records left as stored" in out
    assert h.rows(stored, s=SAMSUNG) == [("삼성전자", "stock", 1)]  # neither changed nor removed
    assert h.rows("select name from instruments where symbol = :s", s=other) == [("새이름",)]
    with h.engine.connect() as conn:
        assert SAMSUNG in {x.symbol for x in tickers(conn, "KR")}
    changes = "select change, symbol from listing_changes where not initial order by seq"
    assert h.rows(changes) == [("changed", other)]
    alerts = "select severity, code, subject, message from alerts order by seq"
    by_code = {
        code: (severity, subject, message) for severity, code, subject, message in h.rows(alerts)
    }
    severity, subject, message = by_code["master_records_malformed"]
    assert (severity, subject) == ("warning", "KOSPI")
    assert f"{SAMSUNG} (line " in message and "scrt_grp_cls_code 'T'" in message
    assert by_code["master_quality_low"][:2] == ("warning", "KOSPI")  # counted against quality
    records = sum(x.market == "KOSPI" for x in MARKET.listings.values())
    ((pct,),) = h.rows("select complete_pct from master_file_checks order by seq desc limit 1")
    assert float(pct) == pytest.approx(100 * (records - 1) / records, abs=0.01)
    verified = h.run("verify", "--region", "KR", code=1)  # KOSDAQ and KONEX never loaded
    assert "PROBLEM KOSPI" not in verified and "Malformed:    1/" in verified

    # The file in use still holds the record: an unchanged check ends neither warning.
    h.run("update", "--exchange", "KOSPI")
    assert {("master_records_malformed", "KOSPI"), ("master_quality_low", "KOSPI")} <= open_codes(h)

    undo()  # the next file is whole again (with the day's news): both conditions are over
    h.sim.faults.renamed[other] = "또새이름"
    h.run("update", "--exchange", "KOSPI")
    assert h.rows(stored, s=SAMSUNG) == [("삼성전자", "stock", 1)]
    resolved = "select code, severity, subject from alert_resolutions order by seq"
    assert set(h.rows(resolved)) == {
        ("master_records_malformed", "warning", "KOSPI"),
        ("master_quality_low", "warning", "KOSPI"),
    }
    assert not {c for c, _ in open_codes(h)} & {"master_records_malformed", "master_quality_low"}
