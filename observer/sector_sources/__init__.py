"""The fallback sector source: a `SectorSource` protocol, a quoteSummary client, guards."""

from observer.sector_sources.breaker import CircuitBreaker
from observer.sector_sources.guarded import GuardedSource, GuardSettings, limiter_for
from observer.sector_sources.quote_summary import QuoteSummarySource
from observer.sector_sources.source import Profile, SectorSource, yahoo_symbol

__all__ = [
    "CircuitBreaker",
    "GuardSettings",
    "GuardedSource",
    "Profile",
    "QuoteSummarySource",
    "SectorSource",
    "limiter_for",
    "yahoo_symbol",
]
