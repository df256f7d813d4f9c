"""Paper accounts against the simulator's paper host: what KIS does not offer them.

FHKST03010230 (an earlier day's minute bars) is "모의투자 미지원": the client refuses it before
sending anything, and reads the paper host's own refusal the same way. Gap recovery keeps an
earlier day's gap as a marker with the reason, and the reconciliation of an earlier day stops,
each warning once per account; today's gaps (FHKST03010200, offered) are recovered as always.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from bus.events import Alert, Event, GapStateChanged, MinuteBars
from harness.sim.config import SimConfig
from harness.sim.market import Market
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.errors import KisPaperRefused
from observer.kis.endpoints import ENDPOINTS
from observer.kis.settings import KisSettings
from observer.process.heartbeat import Heartbeat
from tests.support import SimThread, sim_client
from workers.gap_recovery.outcomes import NOT_OFFERED_ALERT, NOT_ON_PAPER_ALERT
from workers.gap_recovery.plan import Pending
from workers.gap_recovery.verify import Verifier
from workers.gap_recovery.worker import GapRecovery

S = 1_000_000_000
MARKET = Market(47, TradingCalendar(), stocks=12, etfs=0)
SYMBOL = sorted(s for s, x in MARKET.listings.items() if x.group == "ST" and not x.suspended)[0]
MONDAY_1030 = datetime(2026, 11, 23, 10, 30, tzinfo=KST)
FRIDAY = date(2026, 11, 20)


def _ns(day: date, hh: int, mm: int, ss: int = 0) -> int:
    return int(datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=KST).timestamp()) * S


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    # A paper key's 1 call a second is not this test's matter: the client here paces at 200.
    config = SimConfig(paper=True, paper_calls_per_second=200, token_min_interval_s=0)
    with SimThread(MARKET, MONDAY_1030, config) as thread:
        yield thread


def test_the_sims_paper_accounts_are_paper_ones_to_the_client() -> None:
    assert KisSettings(environment="sim", sim_accounts="paper").paper
    assert not KisSettings(environment="sim").paper
    assert KisSettings(environment="paper").paper


def test_a_tr_paper_lacks_is_refused_before_sending_and_the_hosts_refusal_reads_the_same(
    sim: SimThread, tmp_path: Path
) -> None:
    async def scenario() -> None:
        client = sim_client(sim, tmp_path, "paper1", "paper")
        try:
            with pytest.raises(KisPaperRefused, match="real accounts only"):
                await client.minute_bars_on(SYMBOL, "20261120")
            assert client.requests == 0
            # A table that said otherwise: the paper host's own answer is the same error,
            # by its msg_cd, and by its text when the code is one the client does not know.
            offered = msgspec.structs.replace(ENDPOINTS["minute_bars_past"], paper=True)
            params = {"FID_INPUT_ISCD": SYMBOL, "FID_INPUT_DATE_1": "20261120"}
            with pytest.raises(KisPaperRefused, match="MCA00124"):
                await client.get(offered, params)
            sim.sim.config.paper_refusal_code = "OPSQ9999"
            try:
                with pytest.raises(KisPaperRefused, match="OPSQ9999 모의투자 미지원"):
                    await client.get(offered, params)
            finally:
                sim.sim.config.paper_refusal_code = "MCA00124"
            assert client.requests == 2 and client.retries == 0  # refused: never retried
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    refused = sim.sim.gateway.paper_refused["FHKST03010230"]
    asyncio.run(scenario())
    assert sim.sim.gateway.paper_refused["FHKST03010230"] - refused == 2


def test_an_earlier_days_gap_is_a_marker_todays_is_recovered_each_warned_once(
    sim: SimThread, tmp_path: Path
) -> None:
    """A Friday gap on Monday: a marker with the reason, not retried; Monday's gap is
    recovered; FHKST03010230 never reaches the simulator; one warning of each kind."""
    clock = sim.sim.clock
    sent: list[Event] = []
    producer = SimpleNamespace(send=sent.append, source="gap_recovery")
    settings = Settings()
    worker = GapRecovery(
        settings,
        clock,
        producer,  # type: ignore[arg-type]
        Heartbeat(None),
        asyncio.Event(),
    )
    before = dict(sim.sim.calls)
    refused = sim.sim.gateway.paper_refused["FHKST03010230"]
    now = clock.now_ns()
    for gap_id, day, hour in (
        ("friday-1", FRIDAY, 10),
        ("friday-2", FRIDAY, 11),
        ("monday", MONDAY_1030.date(), 10),
    ):
        start = _ns(day, hour, 0, 10)
        worker.admit(Pending(gap_id, SYMBOL, start, start + 30 * S, "silence", now))

    async def scenario() -> None:
        client = sim_client(sim, tmp_path, "paper1", "paper")
        account = SimpleNamespace(client=client, alias="paper1")
        try:
            while worker.jobs:
                job = worker._next()
                assert job is not None, worker.jobs
                await worker._recover(job, account)  # type: ignore[arg-type]
            verifier = Verifier(settings, clock, sent.append, None, [client, client], None)  # type: ignore[arg-type]
            verifier.watched = lambda day, until: {(SYMBOL, "KRX"): [_ns(FRIDAY, 10, 0)]}  # type: ignore[method-assign]
            for _ in range(2):  # the day again (a restart's catch-up): no second warning
                result = await verifier.verify_day(FRIDAY)
                assert result.not_offered == {SYMBOL} and not result.failed
        finally:
            await client._http.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
    final = {e.gap_id: (e.state, e.detail) for e in sent if isinstance(e, GapStateChanged)}
    assert final["friday-1"][0] == final["friday-2"][0] == "marker_only"
    assert "not offered on paper accounts" in final["friday-1"][1]
    assert final["monday"][0] == "recovered"
    assert [b.gap_id for b in sent if isinstance(b, MinuteBars)] == ["monday"]
    alerts: list[Any] = [(a.code, a.subject, a.severity) for a in sent if isinstance(a, Alert)]
    assert alerts == [
        (NOT_ON_PAPER_ALERT, "paper1", "warning"),
        (NOT_OFFERED_ALERT, "paper1", "warning"),
    ]
    calls = {tr: n - before.get(tr, 0) for tr, n in sim.sim.calls.items()}
    assert calls.get("FHKST03010230", 0) == 0 and calls["FHKST03010200"] >= 1
    assert sim.sim.gateway.paper_refused["FHKST03010230"] == refused  # not even refused
    assert worker.tally.unrecoverable == 0 and worker.tally.marker_only == 2
