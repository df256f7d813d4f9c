"""What the enrich job decides for one stock: pure functions, no I/O.

Precedence: a manual override, the KIS industry code's mapping, the fallback source's
profile. A stock is due (`due`) when it has no classification, the run is forced, or once in
every ``max_age_days``-day window of its own (phase ``crc32(market:symbol) % max_age_days``),
so re-checks spread evenly: a thirtieth of the stocks a day at 30. Curation does not wait
for the window (`curation_due`).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from bus.events import EnrichmentRun, SectorMetadata
from observer.db.sector_queries import Stored
from observer.reference.gics import INDUSTRY_GROUPS, SECTORS
from observer.reference.sector_map import Classification, SectorMap, normalise_icod
from observer.sector_sources import Profile

__all__ = [
    "EXCHANGES_OF",
    "ORIGIN_RANK",
    "Tally",
    "curation_due",
    "due",
    "kept_event",
    "sector_event",
]

DAY_NS = 86_400 * 10**9

# HHDFS76370100's EXCD values of each region (the instruments' market codes).
EXCHANGES_OF: dict[str, tuple[str, ...]] = {
    "US": ("NYS", "NAS", "AMS"), "CN": ("SHS", "SZS"), "HK": ("HKS",), "JP": ("TSE",),
    "VN": ("HSX", "HNX"), "KR": (),  # KR: the domestic masters' codes, no KIS call
}  # fmt: skip

# How much an origin is trusted, best first: a stored classification of a higher rank is not
# given up for the fallback's answer when KIS could not be asked (`workers.enrich.run`).
ORIGIN_RANK = {
    "manual": 5, "kis_map": 4, "kis_detail": 3, "kis_info": 2, "fallback": 1, "unresolved": 0,
}  # fmt: skip

# Columns of ``instrument_sectors`` an outside string is cut to (`observer.db.models`).
KIS_NAME_LENGTH = 120
SECTOR_KEY_LENGTH = 64
INDUSTRY_KEY_LENGTH = 120


def due(
    stored: Stored,
    now_ns: int,
    max_age_days: int,
    force: bool,
    since_ns: int = 0,
    sector_map: SectorMap | None = None,
) -> bool:
    """Whether ``stored`` is to be classified in this run.

    Unclassified: always. Forced: always, but for ``since_ns``: classifications from then
    on count as fresh (a killed run's start, from its checkpoint). Otherwise when the
    curation of ``sector_map`` says so (`curation_due`), or when ``now_ns`` falls in a later
    ``max_age_days`` window than the stored classification (or its last check), the windows
    shifted by the symbol's phase (the module docstring).

    A stock's windows are counted from its phase, and it is due when today is in a later window
    than the day it was last classified: each is re-checked exactly once every ``max_age_days``.
    """
    if not stored.origin:
        return True
    if since_ns and stored.enriched_ns >= since_ns:
        return False
    if force:
        return True
    if sector_map is not None and curation_due(stored, sector_map):
        return True
    age = max_age_days  # at least 1 (the settings check it)
    phase = zlib.crc32(f"{stored.market}:{stored.symbol}".encode()) % age
    return (now_ns // DAY_NS + phase) // age > (stored.enriched_ns // DAY_NS + phase) // age


def curation_due(stored: Stored, sector_map: SectorMap) -> bool:
    """Whether the loaded map would classify ``stored`` otherwise than it is stored.

    An override differing from what is stored, and an unresolved stock whose code the map
    now maps, whatever the map's version. Once the version differs from the stored one
    (the map was edited), also what the map alone answers from what is stored (its code, the
    KIS sector name, the fallback's keys) when that differs in sector, group or origin, and an
    unresolved stock whose stored fallback keys it now maps; what only asking again could
    tell (a ``kis_info`` answer) waits for its window. A stock checked with the loaded map is
    stamped with its version, so each edit makes a stock due once.
    """
    found = sector_map.override(stored.market, stored.symbol)
    if found is not None:
        return _differs(found, stored)
    mapped = (
        sector_map.for_kr(stored.kospi200_sector, stored.industry_code, stored.sector_code)
        if stored.region == "KR"
        else sector_map.for_code(stored.exchange, stored.sector_code)
    )
    if stored.origin == "unresolved":
        if mapped is not None:
            return True
        edited = stored.mapping_version != sector_map.version
        keys = (stored.fallback_sector_key, stored.fallback_industry_key)
        return edited and bool(keys[0]) and sector_map.for_fallback(*keys) is not None
    if stored.mapping_version == sector_map.version:
        return False
    if mapped is None and stored.origin == "kis_detail":
        mapped = sector_map.for_name(stored.kis_sector_name)
    elif mapped is None and stored.origin == "fallback":
        mapped = sector_map.for_fallback(stored.fallback_sector_key, stored.fallback_industry_key)
    elif mapped is None and stored.origin == "kis_info":
        return False  # mapped through CTPF1702R's code, which is not stored: only asking tells
    return mapped is None or _differs(mapped, stored)


def _differs(found: Classification, stored: Stored) -> bool:
    return (found.gics_sector, found.gics_ig, found.source) != (
        stored.gics_sector_code,
        stored.gics_ig_code,
        stored.origin,
    )


def kept_event(stored: Stored, sector_map: SectorMap) -> SectorMetadata:
    """The stored classification of ``stored`` again: nothing better was found.

    Publishing it records the check (its time becomes the stock's ``enriched_ns``, so the
    stock waits for its next window), stamped with the map that checked it.
    """
    kept = Classification(
        gics_sector=stored.gics_sector_code,
        gics_ig=stored.gics_ig_code,
        confidence=float(stored.confidence),
        source=stored.origin,
    )
    profile = Profile(
        sector_key=stored.fallback_sector_key, industry_key=stored.fallback_industry_key
    )
    return sector_event(stored, kept, sector_map, stored.kis_sector_name, profile)


def sector_event(
    stored: Stored,
    found: Classification | None,
    sector_map: SectorMap,
    kis_name: str,
    profile: Profile | None = None,
) -> SectorMetadata:
    """The event recording ``found`` (None: unresolved) for ``stored``."""
    if stored.region == "KR":
        icod = stored.kospi200_sector or stored.industry_code or stored.sector_code
    else:
        try:
            icod = normalise_icod(stored.sector_code)
        except ValueError:
            icod = stored.sector_code
    common = {
        "region": stored.region,
        "symbol": stored.symbol,
        "market": stored.market,
        "exchange": stored.exchange,
        "kis_sector_code": icod,
        # outside strings, cut to their columns here rather than refused by the writer
        "kis_sector_name": kis_name[:KIS_NAME_LENGTH],
        "mapping_version": sector_map.version,
        "fallback_sector_key": profile.sector_key[:SECTOR_KEY_LENGTH] if profile else "",
        "fallback_industry_key": profile.industry_key[:INDUSTRY_KEY_LENGTH] if profile else "",
    }
    if found is None:
        return SectorMetadata(gics_sector="", source="unresolved", confidence=Decimal(0), **common)
    return SectorMetadata(
        gics_sector=SECTORS[found.gics_sector],
        gics_sector_code=found.gics_sector,
        gics_ig_code=found.gics_ig,
        gics_ig=INDUSTRY_GROUPS.get(found.gics_ig, ""),
        gics_industry=INDUSTRY_GROUPS.get(found.gics_ig, ""),
        source=found.source,
        confidence=Decimal(str(found.confidence)),
        **common,
    )


@dataclass(slots=True)
class Tally:
    """One region's counts in one run."""

    total: int = 0
    fresh_skipped: int = 0
    manual: int = 0
    kis_mapped: int = 0
    kis_detail: int = 0
    kis_info: int = 0
    fallback_ok: int = 0
    fallback_failed: int = 0
    unresolved: int = 0
    deferred: int = 0
    changed: int = 0
    kept: int = 0  # nothing better found: the stored sector kept, the check recorded
    fallback_needed: int = 0  # dry runs: what the fallback source would be asked, at most
    kis_needed: int = 0  # dry runs: the stocks KIS's per-symbol lookups would be asked of

    def event(self, region: str, mode: str, **run: Any) -> EnrichmentRun:
        """The run's `EnrichmentRun` for this region (``run``: the run-wide fields)."""
        counts = asdict(self)
        for local in ("kept", "fallback_needed", "kis_needed"):  # the summary's, not stored
            del counts[local]
        return EnrichmentRun(region=region, mode=mode, **counts, **run)
