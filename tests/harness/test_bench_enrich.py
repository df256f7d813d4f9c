"""``observer bench enrich`` on a few stocks per region: the report's shape and sums.

No timing is judged here: the ratio is the bench's to print, on a quiet machine.
"""

from __future__ import annotations

import pytest

from harness.bench.enrich import bench_enrich

PER_REGION = 20


def test_bench_enrich_reports_a_forced_run_against_its_bound() -> None:
    r = bench_enrich(PER_REGION, rate=1000, accounts=1, fallback_rate=40.0)
    regions = r["regions"]
    assert list(regions) == ["US", "CN", "HK", "JP", "VN"] and r["mode"] == "force"
    for t in regions.values():
        outcomes = ("kis_mapped", "kis_detail", "fallback", "unresolved", "failed", "deferred")
        assert t["stocks"] == PER_REGION == sum(t[k] for k in outcomes)
        assert 0 < t["coverage_pct"] <= 100
    assert r["stocks"] == r["published"] == 5 * PER_REGION  # one event per stock
    # Every stock the codes leave is asked of KIS once; the cross-check's pages come on top,
    # and the simulator saw each of them.
    not_mapped = sum(t["stocks"] - t["kis_mapped"] for t in regions.values())
    assert r["kis_lookup_calls"] == not_mapped == r["gateway_calls"]["HHDFS76200200"]
    assert r["kis_cross_check_calls"] == r["gateway_calls"]["HHDFS76370000"] > 0
    assert r["kis_calls"] == r["kis_lookup_calls"] + r["kis_cross_check_calls"]
    # The fallback is asked only for what KIS left; every call reached the simulator, and
    # each 429 it answered was retried.
    asked = r["fallback_calls"] - r["fallback_retries"]
    left = sum(t["fallback"] + t["unresolved"] + t["failed"] for t in regions.values())
    assert sum(t["fallback"] for t in regions.values()) <= asked <= left
    assert r["fallback_seen"] == r["fallback_calls"] and r["http_429"] == r["fallback_retries"]
    # The simulator's window follows --fallback-rate: these few calls fit in its 5 s (200
    # calls at 40/s), where its default (5 in 5 s) would have answered 429.
    assert 5 < r["fallback_calls"] < 200 and r["http_429"] == 0
    # The bound is the slower limiter's, for the calls made.
    assert r["kis_limit_per_s"] == pytest.approx(1000 * 0.95 * 0.15)  # less the headroom
    assert r["fallback_limit_per_s"] == 40.0
    assert r["kis_bound_s"] == round(r["kis_calls"] / r["kis_limit_per_s"], 2)
    assert r["fallback_bound_s"] == round(r["fallback_calls"] / 40.0, 2)
    assert r["bound_s"] == max(r["kis_bound_s"], r["fallback_bound_s"]) > 0
    assert r["ratio"] > 0 and r["duration_s"] > 0
    assert r["failed"] == r["deferred"] == r["egw00201"] == 0
