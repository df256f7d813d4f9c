"""The fallback sector source: a `SectorSource` protocol, a quoteSummary client, guards."""

from observer.fallback.breaker import CircuitBreaker
from observer.fallback.guarded import GuardedSource, GuardSettings, limiter_for
from observer.fallback.quote_summary import QuoteSummarySource
from observer.fallback.source import Profile, SectorSource, yahoo_symbol

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
