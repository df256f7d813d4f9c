"""What the enrich reports read from a database the writer filled (SQLite and PostgreSQL):
a killed run's changes, codes of odd widths, outside strings cut to their columns."""

from __future__ import annotations

from decimal import Decimal

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import EnrichmentRun, Event, ListingChanged, SectorCodes, SectorMetadata
from observer.db.sector_queries import Stored, code_counts, code_names, stocks_with_sectors
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import Profile
from observer.writer.store import Store
from tests.enrich.test_enrich_ops import HOUR_NS, RUN_NS, listing, sector
from workers.enrich.classify import sector_event
from workers.enrich.report import report_rows

MAP = load_sector_map()


def apply(store: Store, timed: list[tuple[int, Event]]) -> None:
    envelopes = [Envelope("enrich", n, at, e) for n, (at, e) in enumerate(timed, start=1)]
    store.apply([decode_parts(encode_frame(envelopes))])


def moved(symbol: str, code: str, name: str) -> SectorMetadata:
    return SectorMetadata(
        region="US",
        symbol=symbol,
        market="NAS",
        kis_sector_code="0103",
        gics_sector=name,
        gics_sector_code=code,
        source="kis_map",
    )


def test_a_killed_runs_changes_are_reported_with_the_run_that_resumed_it(store: Store) -> None:
    """Run 1 classifies; a killed run moves S0 (and stores no run); the resumed run moves S1
    in its own 10 minutes. The report of the resumed run lists both."""
    minute = 60 * 10**9
    timed: list[tuple[int, Event]] = [(RUN_NS, listing("new", f"S{n}")) for n in range(3)]
    timed += [(RUN_NS, sector(f"S{n}")) for n in range(3)]
    timed.append((RUN_NS, EnrichmentRun(region="US", mode="force", total=3, duration_ms=1000)))
    killed = RUN_NS + 24 * HOUR_NS
    timed.append((killed, moved("S0", "40", "Financials")))
    resumed_end = killed + HOUR_NS
    timed.append((resumed_end - minute, moved("S1", "60", "Real Estate")))
    timed.append(
        (
            resumed_end,
            EnrichmentRun(region="US", mode="force", total=3, changed=1, duration_ms=600_000),
        )
    )
    apply(store, timed)
    with store.engine.connect() as conn:
        (row,) = report_rows(conn, MAP, None)
    assert [(c["symbol"], c["old_code"], c["new_code"]) for c in row["changes"]] == [
        ("S0", "45", "40"),
        ("S1", "45", "60"),
    ]


def test_codes_of_any_width_count_and_are_named_as_one(store: Store) -> None:
    """A master's "330" is the catalog's "0330": one unmapped code, with KIS's name."""
    codes = ["330", "0330", " 330", "10", "0010", "010", ""]
    timed: list[tuple[int, Event]] = [
        (
            RUN_NS,
            ListingChanged(
                change="new",
                market="NAS",
                symbol=f"S{n}",
                name=f"S{n}",
                security_type="stock",
                sector_code=code,
                region="US",
                initial=True,
            ),
        )
        for n, code in enumerate(codes)
    ]
    timed.append((RUN_NS, SectorCodes(exchange="NAS", codes={"0330": "지주회사"})))
    timed.append((RUN_NS, EnrichmentRun(region="US", mode="force", total=len(codes))))
    apply(store, timed)
    with store.engine.connect() as conn:
        counts, names = code_counts(conn, ("US",)), code_names(conn)
        (row,) = report_rows(conn, MAP, None)
    assert counts == {("NAS", "0330"): 3, ("NAS", "0010"): 3, ("NAS", ""): 1}
    assert names[("NAS", "0330")] == "지주회사"
    assert MAP.for_code("NAS", "0330") is None and MAP.for_code("NAS", "0010") is not None
    assert (row["unmapped_codes"], row["unmapped_stocks"]) == (2, 4)  # 0330 and none


def test_outside_strings_are_cut_to_their_columns(store: Store) -> None:
    """A KIS name over 120 characters and Yahoo keys over 64/120 are stored, cut, not
    refused (PostgreSQL refuses a value longer than its column)."""
    stock = Stored("NAS", "LONG", "NAS", "US", "0330", "", "", 0)
    profile = Profile(sector="x", sector_key="k" * 300, industry_key="i" * 300)
    found = MAP.for_code("NAS", "0010")
    assert found is not None
    event = sector_event(stock, found, MAP, "이름" * 100, profile)
    apply(store, [(RUN_NS, listing("new", "LONG")), (RUN_NS, event)])
    with store.engine.connect() as conn:
        (stored,) = stocks_with_sectors(conn, "US")
    assert len(stored.kis_sector_name) == 120
    assert (len(stored.fallback_sector_key), len(stored.fallback_industry_key)) == (64, 120)
    assert stored.confidence == Decimal(str(found.confidence))
