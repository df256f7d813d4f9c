"""What the enrich job decides for one stock: pure functions, no I/O.

Order of precedence: a manual override, the KIS industry code's mapping, the fallback
source's profile. A stock is due for classification when it has none, when the run is
forced, or once in every ``max_age_days``-day window of its own: days are counted from a
phase of ``crc32(market:symbol) % max_age_days``, and a stock is due when today is in a
later window than the day it was last classified. So each stock is re-checked exactly once
every ``max_age_days`` (30) days, and the phases spread the re-checks evenly: a thirtieth
of the stocks a day, instead of all falling due on day 30.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from bus.events import EnrichmentRun, SectorMetadata
from observer.db.sector_queries import Stored
from observer.fallback import Profile
from observer.gics import INDUSTRY_GROUPS, SECTORS
from observer.sector_map import Classification, SectorMap, normalise_icod

__all__ = ["EXCHANGES_OF", "Tally", "due", "sector_event"]

DAY_NS = 86_400 * 10**9

# HHDFS76370100's EXCD values of each region (the instruments' market codes).
EXCHANGES_OF: dict[str, tuple[str, ...]] = {
    "US": ("NYS", "NAS", "AMS"), "CN": ("SHS", "SZS"), "HK": ("HKS",), "JP": ("TSE",),
    "VN": ("HSX", "HNX"), "KR": (),  # KR: the domestic masters' codes, no KIS call
}  # fmt: skip


def due(stored: Stored, now_ns: int, max_age_days: int, force: bool, since_ns: int = 0) -> bool:
    """Whether ``stored`` is to be classified in this run.

    Unclassified: always. Forced: always, but for ``since_ns``: classifications from then
    on count as fresh (a killed run's start, from its checkpoint). Otherwise when ``now_ns``
    falls in a later ``max_age_days`` window than the stored classification, the windows
    shifted by the symbol's phase (the module docstring).
    """
    if not stored.origin:
        return True
    if since_ns and stored.enriched_ns >= since_ns:
        return False
    if force:
        return True
    age = max_age_days  # at least 1 (the settings check it)
    phase = zlib.crc32(f"{stored.market}:{stored.symbol}".encode()) % age
    return (now_ns // DAY_NS + phase) // age > (stored.enriched_ns // DAY_NS + phase) // age


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
        "kis_sector_name": kis_name,
        "mapping_version": sector_map.version,
        "fallback_sector_key": profile.sector_key if profile else "",
        "fallback_industry_key": profile.industry_key if profile else "",
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
    fallback_needed: int = 0  # dry runs: what the fallback source would be asked

    def event(self, region: str, mode: str, **run: Any) -> EnrichmentRun:
        """The run's `EnrichmentRun` for this region (``run``: the run-wide fields)."""
        counts = asdict(self)
        del counts["fallback_needed"]
        return EnrichmentRun(region=region, mode=mode, **counts, **run)
