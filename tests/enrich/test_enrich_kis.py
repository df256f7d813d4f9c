"""The enrich job's KIS tier against the simulator: per-symbol lookups and the cross-check."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from harness.sim.sectors import detail_name, listed_code, true_sector
from observer.db.sector_queries import Stored
from observer.errors import KisPaperRefused
from observer.kis.overseas_sectors import industry_members, price_detail
from observer.reference.sector_map import load_sector_map
from tests.etf.test_etf_sources import kis_client
from tests.krx.test_krx import MARKET, portal
from workers.enrich.kis_tier import KisLookups, cross_check, sample_codes

SECTOR_MAP = load_sector_map()
NAS = [x for x in MARKET.overseas["nas"] if x.security_type == "2"]


def stored(x: object) -> Stored:
    return Stored(x.exchange, x.symbol, x.exchange, "US", x.industry_code, "", "", 0)  # type: ignore[attr-defined]


def test_paper_accounts_never_send_the_sector_trs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal(calls_per_second=1000) as (sim, url):
            paper = kis_client(sim, url, tmp_path, "paper")
            for call in (
                price_detail(paper, "NAS", NAS[0].symbol),
                industry_members(paper, "NAS", "010"),
            ):
                try:
                    await call
                except KisPaperRefused as exc:
                    assert "real accounts only" in str(exc)
                else:
                    raise AssertionError("a paper account sent a real-only TR")
            tier = KisLookups([paper], SECTOR_MAP, detail=True, search_info=True)
            assert await tier.classify(stored(NAS[0])) == (None, "")
            assert tier.refused and not tier.failed
            assert await tier.classify(stored(NAS[1])) == (None, "")  # asks nothing more
            assert not {"HHDFS76200200", "HHDFS76370000", "CTPF1702R"} & set(sim.calls)
            await paper._http.aclose()

    asyncio.run(scenario())


def test_price_detail_names_map_to_the_hidden_truth(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal(calls_per_second=1000) as (sim, url):
            client = kis_client(sim, url, tmp_path)
            assert await price_detail(client, "NAS", "NOSUCH") is None
            broad = [x for x in NAS if SECTOR_MAP.for_code("NAS", x.industry_code) is None][:300]
            tier = KisLookups([client], SECTOR_MAP, detail=True, search_info=False)
            right = wrong = unmapped = 0
            for x in broad:
                found, name = await tier.classify(stored(x))
                assert name == (detail_name(x.exchange, x.symbol, x.industry_code) if found else "")
                if found is None:
                    unmapped += 1
                elif found.gics_sector == true_sector(x.exchange, x.symbol, x.industry_code):
                    right += 1
                    assert found.source == "kis_detail"
                else:
                    wrong += 1
            print(f"{len(broad)} broad-coded: {right} right, {wrong} wrong, {unmapped} unmapped")
            assert right / len(broad) > 0.6 and wrong == 0 and tier.calls == len(broad)
            await client._http.aclose()

    asyncio.run(scenario())


def test_the_lookups_go_round_every_account(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal(calls_per_second=1000) as (sim, url):
            # Two accounts' clients (the simulator's one key stands for both here).
            clients = [kis_client(sim, url, tmp_path / n) for n in ("a", "b")]
            tier = KisLookups(clients, SECTOR_MAP, detail=True, search_info=False)
            for x in NAS[:9]:
                await tier.classify(stored(x))
            assert [c.requests for c in clients] == [5, 4] and tier.requests == 9
            assert tier.client is clients[0]
            for client in clients:
                await client._http.aclose()

    asyncio.run(scenario())


def test_search_info_classifies_when_configured(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal(calls_per_second=1000) as (sim, url):
            client = kis_client(sim, url, tmp_path)
            tier = KisLookups([client], SECTOR_MAP, detail=False, search_info=True)
            broad = [x for x in NAS if SECTOR_MAP.for_code("NAS", x.industry_code) is None]
            found = [(x, (await tier.classify(stored(x)))[0]) for x in broad[:30]]
            hits = [(x, f) for x, f in found if f is not None]
            assert hits and all(f.source == "kis_info" for _, f in hits)
            assert all(
                f.gics_sector == true_sector(x.exchange, x.symbol, x.industry_code) for x, f in hits
            )
            assert sim.calls["CTPF1702R"] == 30 and not sim.calls["HHDFS76200200"]
            await client._http.aclose()

    asyncio.run(scenario())


def test_the_cross_check_finds_exactly_the_stocks_listed_elsewhere(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with portal(calls_per_second=1000) as (sim, url):
            client = kis_client(sim, url, tmp_path)
            rows = [stored(x) for x in NAS]
            result = await cross_check(client, rows, ("NAS",), "full", 5, 0)
            moved = {
                x.symbol
                for x in NAS
                if listed_code(x.exchange, x.symbol, x.industry_code) != x.industry_code[-3:]
            }
            # each moved stock is missing from its own code's list and present in another's
            listed = {e.split()[0].split(":")[1] for e in result.listed}
            assert listed == moved and result.disagreeing == 2 * len(moved)
            assert result.compared == len(NAS) + len(moved)
            print(f"{len(NAS)} NAS stocks, {len(moved)} listed elsewhere: {result.pct:.1f} %")
            sampled = await cross_check(client, rows, ("NAS",), "sample", 3, 0)
            assert sampled.compared < result.compared
            await client._http.aclose()

    asyncio.run(scenario())


@given(
    st.lists(st.text("0123456789", min_size=4, max_size=4), min_size=1, max_size=60, unique=True),
    st.integers(1, 10),
)
def test_sampled_codes_cover_every_code_over_the_days(codes: list[str], count: int) -> None:
    days = -(-len(codes) // count)  # ceil
    seen = set()
    for day in range(days):
        today = sample_codes(codes, "sample", count, day)
        assert len(today) == min(count, len(codes)) and set(today) <= set(codes)
        seen |= set(today)
    assert seen == set(codes)
    assert sample_codes(codes, "full", count, 7) == sorted(codes)
