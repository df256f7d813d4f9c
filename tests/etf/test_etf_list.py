"""The etf_list job's core against the simulator's KRX portal: first load, a day, each fault."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Any

import msgspec

from bus.events import Alert, EtfListing, EtfRun, Event
from harness.sim.krx import ETF_DAILY_BLD, ETF_LIST_BLD, etf_list_rows
from observer.db.models.etf import RUN_REASON_CHARS, EtfRunRow
from observer.errors import KrxError
from observer.krx.schemas import KrxEtfRow
from tests.krx.test_krx import ETFS, MARKET, answering, krx_client, portal, renamed
from workers.etf.listing import ListOutcome, cleaned, collect_list, listing_of, refusal

DAY = date(2026, 11, 20)


def run_list(
    previous: dict[str, EtfListing], **faults: object
) -> tuple[ListOutcome, list[Event], int]:
    async def scenario() -> tuple[ListOutcome, list[Event], int]:
        sent: list[Event] = []
        async with portal() as (sim, url):
            for name, value in faults.items():
                if name == "delisted":
                    sim.faults.delisted |= set(value)  # type: ignore[arg-type]
                else:
                    setattr(sim.faults, name, value)
            krx = krx_client(sim, url)
            outcome = await collect_list(krx, previous, DAY, sent.append)
            await krx.aclose()
            return outcome, sent, sim.krx.data_calls

    return asyncio.run(scenario())


def first_load() -> dict[str, EtfListing]:
    outcome, sent, _ = run_list({})
    listings = [e for e in sent if isinstance(e, EtfListing)]
    assert outcome.run.applied and outcome.new == len(ETFS) == len(listings)
    assert all(e.initial and e.change == "new" for e in listings)
    assert isinstance(sent[-1], EtfRun) and sent[-1].listed == len(ETFS)
    return {e.symbol: e for e in listings}


def test_first_load_then_a_quiet_day_then_a_delisting() -> None:
    held = first_load()
    outcome, sent, _ = run_list(held)
    assert (outcome.new, outcome.changed, outcome.removed) == (0, 0, 0)  # units moved: no change
    assert [type(e) for e in sent] == [EtfRun]
    gone = sorted(ETFS)[3]
    outcome, sent, _ = run_list(held, delisted={gone})
    removed = [e for e in sent if isinstance(e, EtfListing)]
    assert [(e.symbol, e.change) for e in removed] == [(gone, "removed")]


def test_refused_answers_keep_the_held_list_and_alert() -> None:
    held = first_load()
    cases = {
        "empty": ({"krx_empty": 1}, "etf_list_refused"),
        "logout": ({"krx_logout": 2}, "krx_login_failed"),
        "password": ({"krx_password_change": True}, "krx_login_failed"),
        "storm": ({"krx_5xx": 50}, "etf_list_refused"),
        "shrunk": ({"delisted": set(sorted(ETFS)[: len(ETFS) // 5])}, "etf_list_refused"),
    }
    for name, (faults, code) in cases.items():
        outcome, sent, _ = run_list(held, **faults)
        alerts = [e for e in sent if isinstance(e, Alert)]
        assert not outcome.run.applied, name
        assert not any(isinstance(e, EtfListing) for e in sent), name  # nothing removed
        assert [a.code for a in alerts] == [code], name
        assert outcome.run.listed == len(held), name


def test_refusal_rule() -> None:
    assert refusal(0, 0, 0.9) == "the KRX list is empty"
    assert refusal(899, 1000, 0.9) is not None and refusal(900, 1000, 0.9) is None
    assert refusal(5, 0, 0.9) is None  # the first load has nothing to compare with


# ------------------------------------------------- answers of the portal's own making


class Answer:
    """A KRX client answering the list with ``rows`` (what the client decoded)."""

    def __init__(self, rows: Sequence[dict[str, str]]) -> None:
        self.rows = msgspec.convert(list(rows), list[KrxEtfRow])
        self.requests = 0

    async def etf_list(self) -> list[KrxEtfRow]:
        self.requests += 1
        return self.rows


def listed() -> list[dict[str, str]]:
    return etf_list_rows(MARKET, DAY)


def held() -> dict[str, EtfListing]:
    rows = msgspec.convert(listed(), list[KrxEtfRow])
    return {r.ISU_SRT_CD: listing_of(r) for r in rows}


def judge(previous: dict[str, EtfListing], krx: Any) -> tuple[ListOutcome, list[Event]]:
    sent: list[Event] = []
    return asyncio.run(collect_list(krx, previous, DAY, sent.append)), sent


def test_rows_without_a_code_are_dropped_before_the_guard() -> None:
    """Every code blank (ISINs there): refused, never one ETF "" with all held removed."""
    rows = [dict(r, ISU_SRT_CD="") for r in listed()]
    outcome, sent = judge(held(), Answer(rows))
    alerts = [e for e in sent if isinstance(e, Alert)]
    assert not outcome.run.applied and outcome.dropped == len(rows)
    assert not any(isinstance(e, EtfListing) for e in sent)  # nothing new, nothing removed
    assert [a.code for a in alerts] == ["etf_list_refused"]
    assert f"{len(rows)} with a blank or invalid code" in alerts[0].message
    assert outcome.run.listed == len(ETFS)


def test_a_few_bad_rows_are_dropped_counted_and_alerted() -> None:
    rows = listed()
    first, fifth = rows[0]["ISU_SRT_CD"], rows[5]["ISU_SRT_CD"]
    rows[0] = dict(rows[0], ISU_SRT_CD=" ")  # a held ETF's code blanked: not removed
    bad = [dict(rows[1], ISU_SRT_CD=c, ISU_CD="") for c in ("12345", "0691a0", "069 500")]
    again = dict(rows[5], ISU_ABBRV="a repeat")  # the first row of a code is kept
    outcome, sent = judge(held(), Answer([*rows, *bad, again]))
    assert outcome.run.applied and outcome.dropped == 5 == outcome.run.failures
    assert (outcome.new, outcome.changed, outcome.removed) == (0, 0, 0)
    assert outcome.run.listed == len(ETFS) - 1
    [alert] = [e for e in sent if isinstance(e, Alert)]
    assert alert.code == "etf_list_rows_dropped" and alert.severity == "warning"
    assert "4 with a blank or invalid code, 1 repeating a code" in alert.message
    assert first not in {e.symbol for e in sent if isinstance(e, EtfListing)}
    assert (
        cleaned(msgspec.convert([*rows, again], list[KrxEtfRow])).listings[fifth].name
        == (rows[5]["ISU_ABBRV"])
    )


def test_a_renamed_column_is_refused_and_the_held_list_kept() -> None:
    names = {"ETF_TOT_FEE": "ETF_TOT_FEE_RT", "COM_ABBRV": "COM_ABBRV_NM"}
    rows = renamed(listed(), names)
    outcome, sent = judge(held(), Answer(rows))  # rows decoded with "" for the lost keys
    alerts = [e for e in sent if isinstance(e, Alert)]
    assert not outcome.run.applied and not any(isinstance(e, EtfListing) for e in sent)
    assert [a.code for a in alerts] == ["etf_list_refused"]
    assert "manager (60 of 60), fee_pct (60 of 60)" in alerts[0].message
    portal_ = answering({ETF_LIST_BLD: rows, ETF_DAILY_BLD: []})  # the client sees the keys
    outcome, sent = judge(held(), portal_)
    asyncio.run(portal_.aclose())
    alerts = [e for e in sent if isinstance(e, Alert)]
    assert not outcome.run.applied and not any(isinstance(e, EtfListing) for e in sent)
    assert [a.code for a in alerts] == ["etf_list_refused"]
    assert "lacks COM_ABBRV (60 of 60 rows)" in alerts[0].message


def test_a_few_emptied_fields_are_changes_not_drift() -> None:
    rows = listed()
    for row in rows[:20]:  # a third of the ETFs lose their fee: real changes, applied
        row["ETF_TOT_FEE"] = ""
    outcome, sent = judge(held(), Answer(rows))
    assert outcome.run.applied and outcome.changed == 20
    changes = [e for e in sent if isinstance(e, EtfListing)]
    assert {e.changed_fields for e in changes} == {("fee_pct",)}
    assert {e.fee_pct for e in changes} == {None}


class Failing:
    """A KRX client whose list call fails with a long message (a page of HTML, say)."""

    requests = 0

    async def etf_list(self) -> list[KrxEtfRow]:
        self.requests += 1
        raise KrxError("<html>" + "x" * 3000 + "</html>")


def test_a_long_reason_is_cut_to_what_etf_runs_holds() -> None:
    """The run's reason fits ``etf_runs.reason``; the alert carries the longer message."""
    outcome, sent = judge(held(), Failing())
    holds = EtfRunRow.__table__.c.reason.type.length  # type: ignore[attr-defined]
    assert not outcome.run.applied and outcome.run.reason.startswith("KRX list failed: <html>")
    assert len(outcome.run.reason) == holds == RUN_REASON_CHARS
    [alert] = [e for e in sent if isinstance(e, Alert)]
    assert len(alert.message) > holds
