"""Which enrichment alerts a run resolves (`workers.enrich.alerts.cleared`).

A condition is resolved by a run that judged it and did not raise it: failures and
deferrals by a run that got through, over every region (the others' newest stored runs);
the breaker and the KIS lookups by a run that used them; the cross-check by one that checked
each of its overseas regions.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from observer.config.tree import Settings
from observer.reference.sector_map import load_sector_map
from observer.sector_sources import GuardedSource, GuardSettings, Profile
from tests.sector_sources.test_fallback import VirtualClock
from workers.enrich import checkpoint as cp
from workers.enrich.alerts import ALERT_CODES, alerts, cleared
from workers.enrich.classify import Tally
from workers.enrich.kis_tier import CrossCheck, KisLookups
from workers.enrich.run import EnrichRun

HOSTS = itertools.count()
MAP = load_sector_map()


class Never:
    async def profile(self, symbol: str) -> Profile | None:
        raise AssertionError("not asked here")


class Client:
    requests = 0


def job(*, calls: int = 0, opened: int = 0, kis: tuple[int, int] | None = None) -> EnrichRun:
    clock = VirtualClock()
    guarded = GuardedSource(Never(), clock, f"alerts-{next(HOSTS)}.test", GuardSettings())
    guarded.calls, guarded.breaker.opened = calls, opened
    run = EnrichRun(
        settings=Settings(),
        clock=clock,
        sector_map=MAP,
        send=lambda event: None,
        flush=lambda: None,
        beat=lambda: None,
        source=guarded,
        names={},
        force=False,
        checkpoint_path=Path("/nonexistent/checkpoint.json"),
        checkpoint=cp.Checkpoint(mode="incremental", started_ns=0, regions=("US",)),
    )
    if kis is not None:
        run.kis = KisLookups([Client()], MAP, detail=True, search_info=False)  # type: ignore[list-item]
        run.kis.calls, run.kis.failed = kis
    return run


def stored_run(**counts: int) -> dict[str, Any]:
    zero = {"fallback_failed": 0, "deferred": 0, "cross_compared": 0, "cross_disagreeing": 0}
    return zero | counts


def test_a_healthy_run_over_everything_clears_every_condition() -> None:
    run = job(calls=10, kis=(10, 0))
    run.cross = {"US": CrossCheck(compared=100, disagreeing=1)}
    tallies = {"US": Tally(total=10, fallback_ok=10), "KR": Tally(total=5, kis_mapped=5)}
    assert alerts(run, tallies) == []
    over = cleared(run, tallies, {"HK": stored_run()}, set(), codes_fetched=True)
    assert sorted(over) == sorted(ALERT_CODES)


def test_what_a_run_did_not_judge_stays_open() -> None:
    run = job()  # no fallback call, no KIS tier, no cross-check, no catalog fetched
    tallies = {"US": Tally(total=10, fresh_skipped=10)}
    assert sorted(cleared(run, tallies, {}, set(), False)) == [
        "enrich_deferred",
        "enrich_fallback_failed",
    ]
    run.stop.set()  # a stopped run did not get through: its counts say nothing
    assert cleared(run, tallies, {}, set(), False) == []


@given(
    st.dictionaries(
        st.sampled_from(["US", "HK", "JP"]),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        min_size=1,
    ),
    st.dictionaries(
        st.sampled_from(["CN", "VN", "US"]),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)
def test_failures_and_deferrals_clear_only_when_no_region_has_any(
    own: dict[str, tuple[int, int]], earlier: dict[str, tuple[int, int]]
) -> None:
    """This run's regions by its tallies, the others by their newest stored run."""
    run = job(calls=1)
    tallies = {r: Tally(total=9, fallback_failed=f, deferred=d) for r, (f, d) in own.items()}
    stored = {r: stored_run(fallback_failed=f, deferred=d) for r, (f, d) in earlier.items()}
    raised = {a.code for a in alerts(run, tallies)}
    over = cleared(run, tallies, stored, raised, False)
    counted = list(own.values()) + [v for r, v in earlier.items() if r not in own]
    assert ("enrich_fallback_failed" in over) == (not any(f for f, _ in counted))
    assert ("enrich_deferred" in over) == (not any(d for _, d in counted))
    assert not raised & set(over)


def test_an_opened_breaker_a_failed_lookup_and_disagreements_stay_open() -> None:
    run = job(calls=10, opened=1, kis=(10, 2))
    run.cross = {"US": CrossCheck(compared=100, disagreeing=1)}
    tallies = {"US": Tally(total=10)}
    stored = {"HK": stored_run(cross_compared=10, cross_disagreeing=5)}  # 50 % disagree
    over = cleared(run, tallies, stored, set(), False)
    assert "enrich_breaker_open" not in over and "enrich_kis_lookup_failed" not in over
    assert "enrich_cross_check" not in over and "enrich_cross_check_failed" in over
    assert "enrich_kis_codes_failed" not in over  # not fetched: not judged
    # a region of the run left unchecked (its cross-check failed): neither is judged
    run.cross = {}
    assert not {"enrich_cross_check", "enrich_cross_check_failed"} & set(
        cleared(run, {"US": Tally(), "HK": Tally()}, {}, set(), False)
    )
