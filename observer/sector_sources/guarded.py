"""The fallback source behind its guards: a shared limiter, retries, a breaker, a cache.

`GuardedSource.profile` answers from a ``cachetools.TTLCache`` within the process first; else,
unless its `CircuitBreaker` is open (`BreakerOpen`: the caller defers the symbol to the next run),
it asks the source through the host's one limiter (`limiter_for`) and retries the retryable
`FallbackError` classes (429, 5xx, timeouts) on the Clock. A symbol that still fails counts one
failure for the breaker; "no profile" and 404 are answers, not failures.
"""

from __future__ import annotations

import logging

import msgspec
from aiolimiter import AsyncLimiter
from cachetools import TTLCache

from observer.calendar.clock import Clock
from observer.errors import BreakerOpen, FallbackError, FallbackRateLimited
from observer.process.retry import retry
from observer.sector_sources.breaker import CircuitBreaker
from observer.sector_sources.source import Profile, SectorSource

__all__ = ["GuardSettings", "GuardedSource", "limiter_for"]

log = logging.getLogger(__name__)

_LIMITERS: dict[str, AsyncLimiter] = {}

JITTER = 0.2  # the retries' added jitter, at most this share of ``retry_delay_s``
MAX_WAIT = 4  # the longest Retry-After waited out, in ``retry_delay_s`` (the backoff's cap) ...
# ... but never under a minute: a per-minute window is the usual shape of a rate limit, and
# waiting out a minute costs less than deferring the stock to the next day's run.
MIN_MAX_WAIT_S = 60.0


def limiter_for(host: str, rate_per_s: float) -> AsyncLimiter:
    """The process's one limiter of ``host`` (the first caller's rate sets it).

    Shared by every region, since a source like Yahoo limits per IP; a bucket of one, like the
    KIS client's.
    """
    limiter = _LIMITERS.get(host)
    if limiter is None:
        limiter = _LIMITERS[host] = AsyncLimiter(1, 1.0 / rate_per_s)
    return limiter


class GuardSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How hard the guards let a run push the source."""

    # HTTP requests a second to the host: a source whose call makes several (its class's
    # REQUESTS_PER_CALL) gets that many times fewer calls a second.
    rate_per_s: float = 1.0
    max_retries: int = 3
    retry_delay_s: float = 5.0
    breaker_threshold: int = 5
    breaker_open_s: float = 300.0
    cache_size: int = 20_000
    cache_ttl_s: float = 86_400.0


def _retryable(error: BaseException) -> bool:
    return isinstance(error, FallbackError) and error.retryable


class GuardedSource:
    """A `SectorSource` wrapped in the guards of the module docstring (see `profile`).

    Parameters
    ----------
    source:
        The source asked (its ``REQUESTS_PER_CALL``, when it has one, is what the limiter
        charges a call).
    clock:
        Time for retries, the breaker and the cache.
    host:
        The source's host: the key of its shared limiter.
    settings:
        Rates, retries, breaker and cache sizes.
    """

    def __init__(
        self, source: SectorSource, clock: Clock, host: str, settings: GuardSettings
    ) -> None:
        self.source = source
        self.clock = clock
        self.settings = settings
        self.requests_per_call = max(int(getattr(source, "REQUESTS_PER_CALL", 1)), 1)
        self.limiter = limiter_for(host, settings.rate_per_s / self.requests_per_call)
        self.breaker = CircuitBreaker(clock, settings.breaker_threshold, settings.breaker_open_s)
        self.cache: TTLCache[str, Profile | None] = TTLCache(
            settings.cache_size, settings.cache_ttl_s, timer=lambda: clock.now_ns() / 1e9
        )
        self.calls = 0
        self.retries = 0
        # the longest Retry-After waited out (see `profile`)
        self.max_wait_s = max(MAX_WAIT * settings.retry_delay_s, MIN_MAX_WAIT_S)

    def __repr__(self) -> str:
        return (
            f"GuardedSource({self.source!r}, calls={self.calls}, retries={self.retries}, "
            f"breaker={self.breaker.state}, opened={self.breaker.opened})"
        )

    async def profile(self, symbol: str) -> Profile | None:
        """See `SectorSource.profile`; raises `BreakerOpen` while the breaker is open.

        Retries back off exponentially from ``retry_delay_s``, capped at 4x it (5, 10, 20 s),
        each pause plus a jitter of up to a fifth of ``retry_delay_s``: never sooner than the
        curve, since a 429 without ``Retry-After`` says nothing of when to come back. A 429's
        ``Retry-After`` is waited out first, up to `max_wait_s`; a longer one opens the breaker
        for that long (`CircuitBreaker.trip`) and the symbol is deferred rather than the run
        sleeping for hours.
        """
        if symbol in self.cache:
            return self.cache[symbol]
        if not self.breaker.allow():
            raise BreakerOpen(f"{symbol}: the fallback source's breaker is open")
        s = self.settings
        try:
            found = await retry(
                lambda: self._once(symbol),
                clock=self.clock,
                attempts=s.max_retries + 1,
                initial_s=s.retry_delay_s,
                max_s=4 * s.retry_delay_s,
                jitter_s=JITTER * s.retry_delay_s,
                retry_if=_retryable,
                on_retry=self._retried,
            )
        except BreakerOpen:
            raise  # the source asked us to stay away: the breaker is open already
        except Exception:  # a FallbackError, or a source's bug: either way a failure
            self.breaker.failure()
            raise
        self.breaker.success()
        self.cache[symbol] = found
        return found

    async def _once(self, symbol: str) -> Profile | None:
        async with self.limiter:
            self.calls += 1
        try:
            return await self.source.profile(symbol)
        except FallbackRateLimited as exc:
            wait = exc.retry_after_s
            if wait and wait > self.max_wait_s:
                self.breaker.trip(wait)
                raise BreakerOpen(f"{symbol}: the source asks to wait {wait:g} s") from exc
            if wait:
                await self.clock.sleep(wait)  # the source said how long
            raise

    def _retried(self, error: BaseException, attempt: int, pause: float) -> None:
        self.retries += 1
        log.info("fallback retry %d after %s (pause %.1f s)", attempt, error, pause)
