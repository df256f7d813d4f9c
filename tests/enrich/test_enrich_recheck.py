"""Which stocks a run asks again, and what it keeps (`workers.enrich.run`, `classify`).

In process, the fallback source faked: "no answer" for a stock with a sector records the
check (it waits for its window, not asked again on every run); a map edit or an override is
applied by the next incremental run, once; a KIS lookup that failed never hands a stock to
the worse fallback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.events import Event, SectorMetadata
from observer.config.tree import Settings
from observer.db.sector_queries import Stored
from observer.reference.sector_map import (
    SectorMap,
    default_map_path,
    load_sector_map,
    parse_sector_map,
)
from observer.sector_sources import GuardedSource, GuardSettings, Profile
from tests.enrich.test_enrich_kis import NAS
from tests.etf.test_etf_sources import kis_client
from tests.krx.test_krx import portal
from tests.sector_sources.test_fallback import VirtualClock
from workers.enrich import checkpoint as cp
from workers.enrich.classify import DAY_NS, Tally, curation_due, due
from workers.enrich.kis_tier import KisLookups
from workers.enrich.run import EnrichRun, run_regions

HOSTS = itertools.count()
MAP = load_sector_map()
BROAD = "0330"  # 지주회사: a broad code, mapped on no exchange
NAME = "석유·가스"  # a KIS sector name the map's names table maps (10 / 1010)
TECH = Profile(sector="Technology", sector_key="technology")
FINANCE = Profile(sector="Financial Services", sector_key="financial-services")
UNMAPPED = Profile(sector="Whatever", sector_key="no-such-key")
START_DAY = 20_000  # days since the epoch


class Answers:
    """A fallback source answering from a table (None: no profile); it counts the asks."""

    def __init__(self, answers: dict[str, Profile | None], default: Profile | None = None):
        self.answers = answers
        self.default = default
        self.asked: list[str] = []

    async def profile(self, symbol: str) -> Profile | None:
        self.asked.append(symbol)
        return self.answers.get(symbol, self.default)


def make_job(
    source: Answers,
    now_ns: int,
    tmp_path: Path,
    *,
    sector_map: SectorMap = MAP,
    force: bool = False,
    max_age_days: int = 30,
) -> tuple[EnrichRun, list[Event]]:
    base = Settings()
    enrich = msgspec.structs.replace(
        base.enrich,
        fallback_url="http://fallback.test",
        kis_detail=False,
        max_age_days=max_age_days,
    )
    clock = VirtualClock()
    clock.now = now_ns
    sent: list[Event] = []
    host = f"recheck-{next(HOSTS)}.test"  # a limiter of its own: one per event loop
    mode = "force" if force else "incremental"
    return EnrichRun(
        settings=msgspec.structs.replace(base, enrich=enrich),
        clock=clock,
        sector_map=sector_map,
        send=sent.append,
        flush=lambda: None,
        beat=lambda: None,
        source=GuardedSource(source, clock, host, GuardSettings(rate_per_s=1e6)),
        names={},
        force=force,
        checkpoint_path=tmp_path / "checkpoint.json",
        checkpoint=cp.Checkpoint(mode=mode, started_ns=now_ns, regions=("US", "VN", "KR")),
    ), sent


def written(stored: Stored, event: SectorMetadata, at_ns: int) -> Stored:
    """``stored`` once the writer has stored ``event`` (``instrument_sectors``)."""
    return dataclasses.replace(
        stored,
        origin=event.source,
        gics_sector_code=event.gics_sector_code,
        gics_ig_code=event.gics_ig_code,
        confidence=event.confidence,
        kis_sector_name=event.kis_sector_name,
        fallback_sector_key=event.fallback_sector_key,
        fallback_industry_key=event.fallback_industry_key,
        mapping_version=event.mapping_version,
        enriched_ns=at_ns,
    )


def run_once(
    stocks: list[Stored], source: Answers, now_ns: int, tmp_path: Path, **kw: object
) -> tuple[list[Stored], Tally]:
    """One run over ``stocks`` (their own regions) and what the database holds after it."""
    job, sent = make_job(source, now_ns, tmp_path, **kw)  # type: ignore[arg-type]
    regions: dict[str, list[Stored]] = {}
    for s in stocks:
        regions.setdefault(s.region, []).append(s)
    tallies = asyncio.run(run_regions(job, regions))
    events = {(e.market, e.symbol): e for e in sent if isinstance(e, SectorMetadata)}
    after = [
        written(s, events[(s.market, s.symbol)], now_ns) if (s.market, s.symbol) in events else s
        for s in stocks
    ]
    total = Tally()
    for t in tallies.values():
        for f in dataclasses.fields(Tally):
            setattr(total, f.name, getattr(total, f.name) + getattr(t, f.name))
    return after, total


def classified(
    market: str,
    symbol: str,
    region: str,
    origin: str,
    sector: str,
    *,
    code: str = BROAD,
    enriched_ns: int = 0,
    ig: str = "",
    key: str = "",
) -> Stored:
    """A stock stored as classified by the shipped map."""
    return Stored(
        market,
        symbol,
        market,
        region,
        code,
        origin,
        sector,
        enriched_ns,
        gics_ig_code=ig,
        confidence=Decimal("0.8"),
        fallback_sector_key=key,
        mapping_version=MAP.version,
    )


# Ways a stock that has a sector gets no answer now: the source has no profile for it, an
# unmapped key, no Yahoo suffix (HNX), a KR stock whose codes the map does not cover.
NO_ANSWER = {
    "no profile": (classified("NAS", "XYZ", "US", "fallback", "45"), None),
    "unmapped key": (classified("NAS", "XYZ", "US", "fallback", "45"), UNMAPPED),
    "no suffix": (classified("HNX", "ABC", "VN", "fallback", "45"), None),
    "kr unmapped": (classified("KOSPI", "000001", "KR", "kis_map", "20", code=""), None),
}


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(NO_ANSWER)), st.integers(2, 12), st.integers(0, DAY_NS - 1))
def test_a_stock_no_longer_answered_keeps_its_sector_and_waits_for_its_window(
    tmp_path_factory: pytest.TempPathFactory, case: str, age: int, hour: int
) -> None:
    """Once in every ``max_age_days`` days, not on every run; counted kept, not unresolved."""
    tmp_path = tmp_path_factory.mktemp("recheck")
    stored, answer = NO_ANSWER[case]
    stock = dataclasses.replace(stored, enriched_ns=(START_DAY - 3 * age) * DAY_NS)
    checked: list[int] = []
    for day in range(START_DAY, START_DAY + 3 * age):
        source = Answers({}, default=answer)
        (after,), tally = run_once([stock], source, day * DAY_NS + hour, tmp_path, max_age_days=age)
        assert tally.unresolved == 0 and tally.changed == 0
        if after.enriched_ns != stock.enriched_ns:  # the check was recorded
            checked.append(day)
            assert tally.kept == 1
            assert (after.origin, after.gics_sector_code) == (
                stored.origin,
                stored.gics_sector_code,
            )
        else:
            assert tally.kept == 0 and tally.fresh_skipped == 1 and not source.asked
        stock = after
    assert checked[0] == START_DAY  # it was past its window
    # then exactly once in every max_age_days days in a row
    for start in range(START_DAY + 1, START_DAY + 2 * age + 1):
        assert sum(start <= d < start + age for d in checked) == 1, (case, checked)


# Map edits for the property below: a bumped version, an override, a curated broad code.
OVERRIDE = '  { symbol = "NAS:AAA", gics_sector = "%s", note = "review" },\n'
CURATED = '  { exchange = "*", icod = "0330", gics_sector = "%s", confidence = 0.7 },\n'


def edited_map(version: str, override: str | None, curated: str | None) -> SectorMap:
    text = default_map_path().read_text().replace('"2026.11-1"', f'"{version}"')
    if override:
        text = text.replace("overrides = [\n", "overrides = [\n" + OVERRIDE % override)
    if curated:
        text = text.replace("codes = [\n", "codes = [\n" + CURATED % curated, 1)
    return parse_sector_map(text.encode())


SECTOR = st.sampled_from(["10", "40", "45", "60"])
ORIGINS = ["", "manual", "kis_map", "kis_detail", "fallback", "unresolved"]
UNCLASSIFIED = ("", "unresolved")


@st.composite
def stored_states(draw: st.DrawFn) -> Stored:
    origin = draw(st.sampled_from(ORIGINS))
    sector = "" if origin in UNCLASSIFIED else draw(SECTOR)
    return Stored(
        "NAS",
        "AAA",
        "NAS",
        "US",
        draw(st.sampled_from([BROAD, "0010"])),
        origin,
        sector,
        0 if not origin else draw(st.integers(START_DAY - 40, START_DAY)) * DAY_NS,
        gics_ig_code=draw(st.sampled_from(["", "1010"])) if sector == "10" else "",
        confidence=Decimal("0.8"),
        kis_sector_name=draw(st.sampled_from(["", NAME, "아무개"])),
        fallback_sector_key=draw(st.sampled_from(["", "technology", "no-such-key"])),
        mapping_version="" if not origin else draw(st.sampled_from(["2026.11-1", "2026.11-2"])),
    )


@settings(max_examples=150, deadline=None)
@given(
    stored_states(),
    st.sampled_from(["2026.11-1", "2026.11-2"]),
    st.none() | SECTOR,
    st.none() | SECTOR,
    st.sampled_from([None, TECH, UNMAPPED]),
)
def test_a_run_leaves_nothing_due_behind_it(
    tmp_path_factory: pytest.TempPathFactory,
    stored: Stored,
    version: str,
    override: str | None,
    curated: str | None,
    answer: Profile | None,
) -> None:
    """Whatever was stored and however the map was edited: once a run got through, the next
    one (an hour later, the same map) asks nothing. A curation makes a stock due once, and a
    stock that gets no answer is not asked again on every run."""
    tmp_path = tmp_path_factory.mktemp("nothing-due")
    sector_map = edited_map(version, override, curated)
    now = START_DAY * DAY_NS + 6 * 3600 * 10**9
    (after,), first = run_once(
        [stored], Answers({}, default=answer), now, tmp_path, sector_map=sector_map
    )
    source = Answers({}, default=answer)
    _, second = run_once([after], source, now + 3600 * 10**9, tmp_path, sector_map=sector_map)
    assert second.fresh_skipped == 1 and not source.asked, (first, after)
    if override is not None:  # an override is applied by the first run, whatever the window
        assert (after.origin, after.gics_sector_code) == ("manual", override)
    elif curated is not None and stored.sector_code == BROAD and stored.origin in UNCLASSIFIED:
        assert (after.origin, after.gics_sector_code) == ("kis_map", curated)
    if stored.gics_sector_code:
        assert after.gics_sector_code  # never lost


def test_map_edits_and_overrides_are_applied_by_the_next_incremental_run(
    tmp_path: Path,
) -> None:
    """Stocks classified yesterday, far from their windows; then the map is edited."""
    yesterday = (START_DAY - 1) * DAY_NS
    now = START_DAY * DAY_NS + 6 * 3600 * 10**9
    stocks = [
        classified("NAS", "AAA", "US", "kis_map", "10", code="0010", ig="1010"),  # overridden
        classified("NAS", "BBB", "US", "unresolved", ""),  # its code now curated
        classified("NAS", "CCC", "US", "kis_map", "10", code="0010", ig="1010"),
        classified("NAS", "DDD", "US", "fallback", "45", code="9999", key="technology"),
    ]
    stocks = [dataclasses.replace(s, enriched_ns=yesterday) for s in stocks]
    assert not any(due(s, now, 30, False, sector_map=MAP) for s in stocks)  # the old map
    new_map = edited_map("2026.11-2", "60", "40")  # AAA overridden to 60, 0330 curated to 40
    assert [curation_due(s, new_map) for s in stocks] == [True, True, False, False]
    source = Answers({}, default=TECH)
    after, tally = run_once(stocks, source, now, tmp_path, sector_map=new_map)
    assert (tally.manual, tally.kis_mapped, tally.fresh_skipped) == (1, 1, 2)
    assert [(s.origin, s.gics_sector_code, s.mapping_version) for s in after[:2]] == [
        ("manual", "60", "2026.11-2"),
        ("kis_map", "40", "2026.11-2"),
    ]
    assert after[2:] == stocks[2:] and not source.asked  # the new map answers them the same
    # each edit makes a stock due once: the next run asks nothing
    _, again = run_once(after, source, now + 3600 * 10**9, tmp_path, sector_map=new_map)
    assert again.fresh_skipped == len(stocks)


def test_a_failed_kis_lookup_keeps_kis_s_answer_rather_than_the_fallback_s(
    tmp_path: Path,
) -> None:
    """KIS's own answer (kis_detail, 0.85) is not replaced by the fallback's (0.8) because
    KIS could not be asked this time (every call a 500); the stock stays due. A stock the
    fallback classified still goes on to it."""
    broad = [x for x in NAS if MAP.for_code("NAS", x.industry_code) is None][:2]
    old = (START_DAY - 40) * DAY_NS
    kis_best = classified("NAS", broad[0].symbol, "US", "kis_detail", "45", enriched_ns=old)
    by_fallback = classified("NAS", broad[1].symbol, "US", "fallback", "45", enriched_ns=old)

    async def scenario() -> tuple[dict[str, Tally], list[Event], list[str]]:
        async with portal(calls_per_second=1000) as (sim, url):
            client = kis_client(sim, url, tmp_path)
            sim.faults.http_5xx = 10**6
            source = Answers({}, default=FINANCE)
            job, sent = make_job(source, START_DAY * DAY_NS, tmp_path, force=True)
            job.kis = KisLookups([client], MAP, detail=True, search_info=False)
            try:
                tallies = await run_regions(job, {"US": [kis_best, by_fallback]})
            finally:
                sim.faults.http_5xx = 0
                await client._http.aclose()  # type: ignore[attr-defined]
            assert job.kis.failed == 2
            return tallies, sent, source.asked

    tallies, sent, asked = asyncio.run(scenario())
    us = tallies["US"]
    published = {e.symbol: e for e in sent if isinstance(e, SectorMetadata)}
    assert set(published) == {by_fallback.symbol}  # kis_best: nothing written
    assert published[by_fallback.symbol].gics_sector_code == "40"  # the fallback's answer
    assert asked == [by_fallback.symbol]  # the fallback was not even asked about kis_best
    assert (us.deferred, us.fallback_ok, us.changed) == (1, 1, 1)
    assert due(kis_best, START_DAY * DAY_NS + DAY_NS, 30, False, sector_map=MAP)  # next run
