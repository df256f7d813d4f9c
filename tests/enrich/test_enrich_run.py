"""One enrichment run in process, its fallback source faked: what a source's failure does."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

import httpx
import msgspec
import pytest

from bus.events import Event, SectorMetadata
from observer.config.tree import Settings
from observer.db.sector_queries import Stored
from observer.errors import FallbackProtocolError
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import (
    GuardedSource,
    GuardSettings,
    Profile,
    QuoteSummarySource,
    SectorSource,
)
from tests.sector_sources.test_fallback import VirtualClock
from workers.enrich import checkpoint as cp
from workers.enrich.run import EnrichRun, run_regions

HOSTS = itertools.count()
TECH = Profile(sector="Technology", sector_key="technology")


class Failing:
    """Answers every symbol but one, for which it raises what no source should."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[str] = []

    async def profile(self, symbol: str) -> Profile | None:
        self.asked.append(symbol)
        if symbol == "BAD":
            raise self.error
        return TECH


def job(source: SectorSource, tmp_path: Path) -> tuple[EnrichRun, list[Event]]:
    settings = Settings()
    enrich = msgspec.structs.replace(
        settings.enrich, fallback_url="http://fallback.test", kis_detail=False
    )
    sent: list[Event] = []
    clock = VirtualClock()
    host = f"fallback-{next(HOSTS)}.test"  # a limiter of its own: one per event loop
    guarded = GuardedSource(source, clock, host, GuardSettings(rate_per_s=1e6))
    return EnrichRun(
        settings=msgspec.structs.replace(settings, enrich=enrich),
        clock=clock,
        sector_map=load_sector_map(),
        send=sent.append,
        flush=lambda: None,
        beat=lambda: None,
        source=guarded,
        names={},
        force=False,
        checkpoint_path=tmp_path / "checkpoint.json",
        checkpoint=cp.Checkpoint(mode="incremental", started_ns=0, regions=("US", "JP")),
    ), sent


STOCKS = {
    "US": [Stored("NAS", s, "NAS", "US", "9999", "", "", 0) for s in ("A", "B", "BAD", "C")],
    "JP": [Stored("TSE", s, "TSE", "JP", "9999", "", "", 0) for s in ("7203", "6758")],
}


def test_a_sources_unexpected_error_fails_that_stock_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = Failing(RuntimeError("token=s3cr3t in the URL"))
    run, sent = job(source, tmp_path)
    with caplog.at_level(logging.WARNING, logger="workers.enrich.run"):
        tallies = asyncio.run(run_regions(run, STOCKS))
    assert (tallies["US"].fallback_failed, tallies["US"].fallback_ok) == (1, 3)
    assert (tallies["JP"].fallback_failed, tallies["JP"].fallback_ok) == (0, 2)
    published = {e.symbol for e in sent if isinstance(e, SectorMetadata)}
    assert published == {"A", "B", "C", "7203", "6758"}  # the others all went on
    assert run.source is not None and run.source.breaker.failures == 0  # a success since
    assert "NAS:BAD fallback failed" in caplog.text and "RuntimeError" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_a_body_that_does_not_decode_fails_its_stock_as_a_protocol_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx raises DecodingError (not a TransportError) for a bad gzip body."""
    good = b'{"quoteSummary":{"result":[{"assetProfile":{"sectorKey":"technology"}}]}}'

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/BAD"):
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"no gzip")
        return httpx.Response(200, content=good)

    async def scenario() -> None:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(base_url="http://qs.test", transport=transport) as http:
            source = QuoteSummarySource(http)
            with pytest.raises(FallbackProtocolError, match="DecodingError") as raised:
                await source.profile("BAD")
            assert not raised.value.retryable
            run, sent = job(source, tmp_path)
            with caplog.at_level(logging.WARNING, logger="workers.enrich.run"):
                tallies = await run_regions(run, STOCKS)
            assert tallies["US"].fallback_failed == 1 and tallies["US"].fallback_ok == 3
            assert len(sent) == 5 and run.source is not None and run.source.calls == 6

    asyncio.run(scenario())
    assert "NAS:BAD fallback failed: BAD: DecodingError" in caplog.text
