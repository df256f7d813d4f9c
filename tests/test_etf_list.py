"""The etf_list job's core against the simulator's KRX portal: first load, a day, each fault."""

from __future__ import annotations

import asyncio
from datetime import date

from bus.events import Alert, EtfListing, EtfRun, Event
from tests.test_krx import ETFS, krx_client, portal
from workers.etf.listing import ListOutcome, collect_list, refusal

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
