"""Sector enrichment in the operator's view: the supervisor's readings, Prometheus families,
the stale and low-coverage rules, and the demo summary's section, on a database the writer
filled (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Literal

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import EnrichmentRun, Event, ListingChanged, SectorMetadata
from harness.demo import _enrichment
from harness.demo_view import _enrichment_line
from observer.alerts.book import AlertBook
from observer.calendar.phases import KST
from observer.config.workers import EnrichSettings
from observer.db.sector_queries import coverage, coverage_at, region_coverage
from observer.supervisor.families import enrichment_families
from observer.supervisor.readings import read_once
from observer.supervisor.rules import Rules, enrichment_rules, metrics_of
from observer.writer.store import Store

DAY = date(2026, 11, 20)
RUN_NS = int(datetime.combine(DAY, time(6, 30), KST).timestamp()) * 10**9
HOUR_NS = 3600 * 10**9


def events() -> list[Event]:
    """Ten US stocks and an ETP; seven stocks classified, one unresolved; one run."""
    found: list[Event] = [
        ListingChanged(
            change="new",
            market="NAS",
            symbol=f"S{n}",
            name=f"S{n}",
            security_type="etp" if n == 10 else "stock",
            region="US",
            initial=True,
        )
        for n in range(11)
    ]
    found += [
        SectorMetadata(
            region="US",
            symbol=f"S{n}",
            market="NAS",
            kis_sector_code="0103",
            gics_sector="Information Technology" if n < 7 else "",
            gics_sector_code="45" if n < 7 else "",
            source="kis_map" if n < 7 else "unresolved",
        )
        for n in range(8)
    ]
    found.append(
        EnrichmentRun(
            region="US",
            mode="incremental",
            total=10,
            kis_mapped=7,
            unresolved=1,
            deferred=2,
            fallback_failed=1,
            calls=3,
            kis_calls=4,
            duration_ms=1500,
        )
    )
    return found


def fill(store: Store) -> None:
    envelopes = [Envelope("enrich", n, RUN_NS, e) for n, e in enumerate(events(), start=1)]
    store.apply([decode_parts(encode_frame(envelopes))])


def test_coverage_metrics_and_rules_follow_the_stored_runs(store: Store) -> None:
    fill(store)
    with store.engine.connect() as conn:
        cover = region_coverage(conn)
    with store.engine.connect() as conn:  # a read takes a snapshot: a connection of its own
        reading = read_once(conn, RUN_NS + HOUR_NS)
    with store.engine.connect() as conn:
        later = read_once(conn, RUN_NS + 50 * HOUR_NS)
    assert cover == {
        "US": {
            "stocks": 10,  # the ETP has no sector
            "classified": 7,
            "coverage_pct": 70.0,
            "by_origin": {"kis_map": 7, "unresolved": 1},
        }
    }
    assert reading.ages_h["enrichment"] == 1.0
    assert reading.enrichment == {
        "US": {
            "calls": 3.0,
            "kis_calls": 4.0,
            "duration_ms": 1500.0,
            "deferred": 2.0,
            "fallback_failed": 1.0,
            "age_h": 1.0,
            "coverage_pct": 70.0,
        }
    }
    samples = {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in enrichment_families(reading.enrichment)
    }
    assert samples["observer_enrichment_coverage_percent"] == [({"region": "US"}, 70.0)]
    assert samples["observer_enrichment_last_run_age_seconds"] == [({"region": "US"}, 3600.0)]
    assert samples["observer_enrichment_last_run_duration_seconds"] == [({"region": "US"}, 1.5)]
    assert samples["observer_enrichment_last_run_fallback_calls"] == [({"region": "US"}, 3.0)]
    assert samples["observer_enrichment_last_run_kis_calls"] == [({"region": "US"}, 4.0)]
    assert samples["observer_enrichment_last_run_deferred"] == [({"region": "US"}, 2.0)]
    assert samples["observer_enrichment_last_run_failed"] == [({"region": "US"}, 1.0)]

    settings = EnrichSettings(stale_after_h=48.0, min_coverage_pct=80.0)
    rules = Rules(enrichment_rules(settings), AlertBook(lambda event: None))
    changes = rules.judge(metrics_of([], reading.ages_h, reading.enrichment))
    assert [(c.rule.code, c.breached) for c in changes] == [("enrichment_coverage_low_us", True)]
    assert changes[0].message == "enrichment.coverage_pct.us is below 80: 70"
    changes = rules.judge(metrics_of([], later.ages_h, later.enrichment))
    assert [(c.rule.code, c.breached) for c in changes] == [("enrichment_stale", True)]  # once
    fixed = {"US": {**later.enrichment["US"], "coverage_pct": 90.0}}
    changes = rules.judge(metrics_of([], reading.ages_h, fixed))
    assert [(c.rule.code, c.breached) for c in changes] == [
        ("enrichment_stale", False),
        ("enrichment_coverage_low_us", False),
    ]
    assert rules.judge(metrics_of([], {}, {})) == []  # nothing read: every rule stays


def test_nothing_enriched_reads_no_figures_and_raises_nothing(store: Store) -> None:
    with store.engine.connect() as conn:
        reading = read_once(conn, RUN_NS)
    assert "enrichment" not in reading.ages_h and reading.enrichment == {}
    assert all(not family.samples for family in enrichment_families(reading.enrichment))
    rules = Rules(enrichment_rules(EnrichSettings()), AlertBook(lambda event: None))
    assert rules.judge(metrics_of([], reading.ages_h, reading.enrichment)) == []


def test_the_demo_summary_shows_coverage_and_the_days_runs(store: Store) -> None:
    fill(store)
    with store.engine.connect() as conn:
        section = _enrichment(conn, DAY)
        next_day = _enrichment(conn, date(2026, 11, 21))
    assert section["regions"]["US"]["coverage_pct"] == 70.0
    assert section["regions"]["US"]["by_origin"] == {"kis_map": 7, "unresolved": 1}
    assert section["runs"] == [
        {
            "mode": "incremental",
            "calls": 3,
            "kis_calls": 4,
            "duration_ms": 1500,
            "regions": ["US"],
            "deferred": 2,
            "failed": 1,
        }
    ]
    assert next_day["runs"] == [] and next_day["regions"]["US"]["stocks"] == 10
    assert _enrichment_line(section) == (
        "sectors: US 70.0% of 10; incremental run: 3 fallback + 4 KIS calls, 2 s, "
        "2 deferred, 1 failed"
    )


def listing(
    change: Literal["new", "removed"], symbol: str, security_type: str = "stock"
) -> ListingChanged:
    return ListingChanged(
        change=change,
        market="NAS",
        symbol=symbol,
        name=symbol,
        security_type=security_type,
        region="US",
        initial=change == "new",
    )


def sector(symbol: str, origin: str = "kis_map") -> SectorMetadata:
    classified = origin != "unresolved"
    return SectorMetadata(
        region="US",
        symbol=symbol,
        market="NAS",
        kis_sector_code="0103",
        gics_sector="Information Technology" if classified else "",
        gics_sector_code="45" if classified else "",
        source=origin,
    )


def test_coverage_counts_only_the_stocks_listed(store: Store) -> None:
    """Ten stocks classified; four delist and four new ones stay unresolved: 60 %, not 100.
    An ETP's stray sector counts neither (funds are not in the denominator)."""
    before: list[Event] = [listing("new", f"S{n}") for n in range(10)]
    before += [listing("new", "E1", "etp"), sector("E1")]
    before += [sector(f"S{n}") for n in range(10)]
    after: list[Event] = [listing("removed", f"S{n}") for n in range(4)]
    after += [listing("new", f"N{n}") for n in range(4)]
    after += [sector(f"N{n}", "unresolved") for n in range(4)]
    envelopes = [Envelope("enrich", n, RUN_NS, e) for n, e in enumerate(before, start=1)]
    envelopes += [
        Envelope("enrich", n, RUN_NS + HOUR_NS, e)
        for n, e in enumerate(after, start=len(before) + 1)
    ]
    store.apply([decode_parts(encode_frame(envelopes))])
    with store.engine.connect() as conn:
        now, cover = coverage(conn), region_coverage(conn)["US"]
        then, later = coverage_at(conn, RUN_NS), coverage_at(conn, RUN_NS + HOUR_NS)
    assert now == later == {"US": {"kis_map": 6, "unresolved": 4}}
    assert (cover["stocks"], cover["classified"], cover["coverage_pct"]) == (10, 6, 60.0)
    assert then == {"US": {"kis_map": 10}}  # before the delistings: all ten listed then
