"""The Prometheus rules and the Grafana dashboard, against what a real supervisor serves.

promtool checks the rules and the example configuration; every metric their PromQL names is
one the supervisor serves on ``/metrics``; and the operator's metrics carry the figures they
stand for in a run against the simulator (slots, token expiry, open alerts, disk).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bus.events import Alert, AlertResolved, Event
from bus.producer import Producer
from harness.sim.server import SimConfig
from observer.alerts.book import AlertBook
from observer.alerts.prometheus_rules import TWINS, prometheus_rules
from observer.alerts.settings import ThresholdRule, default_rules, enrichment_rules
from observer.calendar.phases import KST
from observer.config.load import load_settings
from observer.config.workers import EnrichSettings
from observer.kis.auth import cached_validity
from observer.supervisor.families import alert_families, disk_families, named_families
from observer.supervisor.program import State
from observer.supervisor.rules import Rules, metrics_of
from tests.support import (
    ROOT,
    WRITER_PROGRAM,
    SimThread,
    SupervisorProcess,
    WriterProcess,
    db_rows,
    free_port,
    wait_until,
)
from tests.track_b.test_account_down import MARKET, STOCKS, TRACK_B, _publish_universe

RULES = ROOT / "config" / "prometheus" / "alerts.yml"
THRESHOLDS = ROOT / "config" / "prometheus" / "thresholds.yml"  # generated: the rules' twins
RULE_FILES = (RULES, THRESHOLDS)
SCRAPE = ROOT / "config" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "config" / "grafana" / "observer.json"
# Series Prometheus makes itself for every scrape, not served by the supervisor.
PROMETHEUS_MADE = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# ------------------------------------------------------------------ promtool


def _promtool() -> str:
    # On PATH, or unpacked into the venv (as .ci/run does)
    found = shutil.which("promtool") or shutil.which("promtool", path=Path(sys.executable).parent)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (Debian's prometheus package; see .ci/run)")
        pytest.skip("promtool not installed (Debian's prometheus package; see .ci/run)")
    return found


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(re.findall(r"SUCCESS: \d+ rules found", done.stdout)) == 2, done.stdout


def test_promtool_accepts_the_example_configuration() -> None:
    done = subprocess.run(
        [_promtool(), "check", "config", str(SCRAPE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 rule files found" in done.stdout  # alerts.yml and thresholds.yml, beside it


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n- name: x\n  rules:\n  - alert: X\n    expr: rate(observer_x[5m]\n")
    done = subprocess.run([_promtool(), "check", "rules", str(broken)], capture_output=True)
    assert done.returncode != 0


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _rule(name: str) -> dict[str, Any]:
    return next(r for r in _rules() if r.get("alert") == name)


def _quiet(at: str, name: str) -> dict[str, Any]:
    """The promtool case of rule ``name`` firing nothing at ``at``."""
    return {"eval_time": at, "alertname": name, "exp_alerts": []}


def _firing(at: str, name: str, annotations: dict[str, str], **labels: str) -> dict[str, Any]:
    labels = {"severity": _rule(name)["labels"]["severity"], **labels}
    expected = {"exp_labels": labels, "exp_annotations": annotations}
    return {"eval_time": at, "alertname": name, "exp_alerts": [expected]}


def test_rules_fire_when_an_operator_must_act(tmp_path: Path) -> None:
    """No ticks in full operation (not idle), a token expiring in session, a job failing for
    5 minutes; disk at 30 % is fine."""
    no_ticks = {  # a host without a name: no host in the text
        "summary": "No ticks for 5 minutes while Track B should stream",
        "description": _rule("ObserverNoTicks")["annotations"]["description"],
    }
    token = {
        "summary": "The access token of acct1 expires in 2h 33m 20s",  # 20,000 s - 18 x 600
        "description": _rule("ObserverTokenExpiringSoon")["annotations"]["description"],
    }
    failing = {
        "summary": "The last 3 runs of the universe job failed",
        "description": _rule("ObserverJobFailing")["annotations"]["description"],
    }
    series = {
        'observer_job_failed_runs{program="universe"}': "0x4 1 2 3x10 0x23",  # fixed at 18m
        'observer_phase{phase="full_operation"}': "1x20 0x20",
        'observer_phase{phase="idle"}': "0x20 1x20",
        'observer_track_b_ticks_total{program="track_b"}': "0+50x5 250x35",  # none from 6m
        'observer_account_token_expires_in_seconds{account="acct1"}': "20000-600x40",
        'observer_disk_free_bytes{role="data",path="/var"}': "30e9x40",
        'observer_disk_size_bytes{role="data",path="/var"}': "100e9x40",
    }
    silent = [
        ("8m", "ObserverNoTicks"),
        ("30m", "ObserverNoTicks"),  # 30m: idle
        ("12m", "ObserverTokenExpiringSoon"),
        ("30m", "ObserverDiskLow"),
        ("8m", "ObserverJobFailing"),  # failing for 3 minutes: a retry may mend it
        ("20m", "ObserverJobFailing"),
    ]
    _promtool_test(
        tmp_path,
        series,
        [
            *(_quiet(at, n) for at, n in silent),
            _firing("18m", "ObserverNoTicks", no_ticks),  # rate 0 from 11m, for 5m
            _firing("18m", "ObserverTokenExpiringSoon", token, account="acct1"),
            _firing("12m", "ObserverJobFailing", failing, program="universe"),
        ],
    )


def _promtool_test(tmp_path: Path, series: dict[str, str], tests: list[dict[str, Any]]) -> None:
    cases = {
        "rule_files": [str(path) for path in RULE_FILES],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": k, "values": v} for k, v in series.items()],
                "alert_rule_test": tests,
            }
        ],
    }
    path = tmp_path / "cases.yml"
    path.write_text(yaml.safe_dump(cases))
    done = subprocess.run(
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rules_judge_each_host_by_its_own_figures_and_phase(tmp_path: Path) -> None:
    """Two named hosts: c1 streams, c2 is silent in full operation; c3 is silent but idle.

    Summed over hosts, c1's ticks would hide c2's silence; joined to any host's phase, c3's
    token would alert while c3 is idle.
    """
    description = _rule("ObserverNoTicks")["annotations"]["description"]
    series = {
        'observer_phase{phase="full_operation",host="c1"}': "1x30",
        'observer_phase{phase="full_operation",host="c2"}': "1x30",
        'observer_phase{phase="full_operation",host="c3"}': "0x30",
        'observer_phase{phase="idle",host="c3"}': "1x30",
        'observer_track_b_ticks_total{program="track_b",host="c1"}': "0+50x30",
        'observer_track_b_ticks_total{program="track_b",host="c2"}': "0+50x5 250x25",
        'observer_track_b_ticks_total{program="track_b",host="c3"}': "0x30",
        'observer_account_token_expires_in_seconds{account="acct3",host="c3"}': "-1x30",
    }
    no_ticks_c2 = {
        "summary": "No ticks for 5 minutes while Track B should stream on host c2",
        "description": description,
    }
    _promtool_test(
        tmp_path,
        series,
        [
            _firing("18m", "ObserverNoTicks", no_ticks_c2, host="c2"),
            _quiet("18m", "ObserverTokenExpired"),
        ],
    )


def test_a_feed_behind_for_two_minutes_in_full_operation_fires(tmp_path: Path) -> None:
    """Behind by more than Track B's ``lag_alert_s`` is the feed (or this host) falling
    behind, not a stamp's second; a lag at the close (Track B's releases) is no alert, nor
    one within a host's own larger limit, nor one where the alert is off. The rule used a
    fixed 10 s, whatever the configuration."""
    lagging = {
        "summary": "Trades on account acct1 arrive 25s after they happen",
        "description": _rule("ObserverAccountFeedLagging")["annotations"]["description"],
    }
    series = {
        'observer_phase{phase="full_operation"}': "1x12 0x10",
        'observer_account_delivery_lag_seconds{account="acct1"}': "1x3 25x6 0.5x3 30x10",
        'observer_account_delivery_lag_seconds{account="acct2"}': "1x22",
        'observer_account_delivery_lag_seconds{account="acct3"}': "25x22",  # within its 30 s
        'observer_account_delivery_lag_seconds{account="acct4"}': "25x22",  # alert off
        'observer_account_lag_alert_seconds{account="acct1"}': "10x22",
        'observer_account_lag_alert_seconds{account="acct2"}': "10x22",
        'observer_account_lag_alert_seconds{account="acct3"}': "30x22",
        'observer_account_lag_alert_seconds{account="acct4"}': "0x22",
    }
    _promtool_test(
        tmp_path,
        series,
        [
            _quiet("4m", "ObserverAccountFeedLagging"),
            _firing("7m", "ObserverAccountFeedLagging", lagging, account="acct1"),
            _quiet("11m", "ObserverAccountFeedLagging"),
            _quiet("18m", "ObserverAccountFeedLagging"),
        ],
    )


def test_a_notifier_with_a_channel_without_url_fires_though_no_channel_is_down(
    tmp_path: Path,
) -> None:
    """The notifier runs with 0 targets: nothing down, yet every alert goes nowhere."""
    without = 'observer_program_counter{program="notifier",counter="channels_without_url"}'
    summary = {
        "summary": "Alert channels without a URL: 1",
        "description": _rule("ObserverNotifierChannelWithoutUrl")["annotations"]["description"],
    }
    labels = {"program": "notifier", "counter": "channels_without_url"}
    _promtool_test(
        tmp_path,
        {
            without: "0x5 1x20",  # restarted at 5m without OBSERVER_NOTIFY_DEFAULT_URLS
            'observer_notifier_targets_down{program="notifier"}': "0x25",
        },
        [
            _quiet("8m", "ObserverNotifierChannelWithoutUrl"),
            _firing("12m", "ObserverNotifierChannelWithoutUrl", summary, **labels),
            _quiet("20m", "ObserverNotifierFailing"),
        ],
    )


def test_a_failing_bus_handshake_fires_past_the_grace_of_ctl_status(tmp_path: Path) -> None:
    """A producer whose keys do not match the writer's: 20 s may be a writer restarting."""
    failing = 'observer_program_counter{program="track_b",counter="bus_handshake_failing_s"}'
    summary = {
        "summary": "track_b cannot hand its events to the writer: the CURVE handshake fails",
        "description": _rule("ObserverBusHandshakeFailing")["annotations"]["description"],
    }
    labels = {"program": "track_b", "counter": "bus_handshake_failing_s"}
    _promtool_test(
        tmp_path,
        {failing: "0x3 20 0x2 60 120"},  # 20 s at 4m, 60 s from 8m,
        [
            _quiet("4m", "ObserverBusHandshakeFailing"),
            _quiet("6m", "ObserverBusHandshakeFailing"),
            _firing("8m", "ObserverBusHandshakeFailing", summary, **labels),
        ],
    )


def test_events_the_writer_leaves_unacknowledged_fire_past_the_grace_of_ctl_status(
    tmp_path: Path,
) -> None:
    """A writer out of this host's reach: its programs beat on, their events (and alerts)
    pile up in the outboxes. A minute is a writer restarting; over two is not."""
    waiting = 'observer_program_counter{program="track_b",counter="bus_unacked_s"}'
    summary = {
        "summary": "track_b's events have waited 3m 0s for the writer",
        "description": _rule("ObserverEventsNotAcknowledged")["annotations"]["description"],
    }
    labels = {"program": "track_b", "counter": "bus_unacked_s"}
    _promtool_test(
        tmp_path,
        {waiting: "0x3 60 0x2 60+60x3"},  # a minute at 4m; 60 s at 8m, 60 s more a minute
        [
            _quiet("4m", "ObserverEventsNotAcknowledged"),
            _quiet("9m", "ObserverEventsNotAcknowledged"),
            _firing("10m", "ObserverEventsNotAcknowledged", summary, **labels),
        ],
    )


def test_snapshots_the_feed_lost_fire_while_they_are_read_back(tmp_path: Path) -> None:
    """Track B repairs its triggers from the database; the feed that lost them is the
    operator's to look at. Fired while the count rises, quiet half an hour after."""
    read_back = 'observer_program_counter{program="track_b",counter="snapshots_read_back"}'
    labels = {"program": "track_b", "counter": "snapshots_read_back"}
    summary = {
        "summary": "track_b read 12 Track A snapshots back from the database that the feed "
        "did not deliver",
        "description": _rule("ObserverFeedLosingSnapshots")["annotations"]["description"],
    }
    _promtool_test(
        tmp_path,
        {read_back: "0x10 12x40"},  # 12 read back at 11m
        [
            _quiet("10m", "ObserverFeedLosingSnapshots"),
            _firing("20m", "ObserverFeedLosingSnapshots", summary, **labels),
            _quiet("45m", "ObserverFeedLosingSnapshots"),
        ],
    )


def test_snapshot_readings_failing_twice_in_half_an_hour_fire(tmp_path: Path) -> None:
    """One failed reading is a blip, tried again an interval later; two in half an hour are
    snapshots the feed loses left unrepaired."""
    failed = 'observer_program_counter{program="track_b",counter="snapshot_readings_failed"}'
    labels = {"program": "track_b", "counter": "snapshot_readings_failed"}
    summary = {
        "summary": "track_b failed to read Track A's snapshots back from the database twice "
        "or more in half an hour",
        "description": _rule("ObserverSnapshotReadingsFailing")["annotations"]["description"],
    }
    _promtool_test(
        tmp_path,
        {failed: "0x10 1x10 2x50"},  # failed at 11m and at 21m
        [
            _quiet("15m", "ObserverSnapshotReadingsFailing"),
            _firing("25m", "ObserverSnapshotReadingsFailing", summary, **labels),
            _quiet("60m", "ObserverSnapshotReadingsFailing"),
        ],
    )


def test_a_program_held_for_a_day_fires(tmp_path: Path) -> None:
    """A stop by a command is the operator's choice; a backup held for a day is forgotten."""
    summary = {
        "summary": "backup has been held by a command for a day",
        "description": _rule("ObserverProgramHeld")["annotations"]["description"],
    }
    _promtool_test(
        tmp_path,
        {
            'observer_program_held{program="backup"}': "1x1500",
            'observer_program_held{program="token"}': "1x600 0x900",  # ten hours, then run
        },
        [
            _quiet("23h", "ObserverProgramHeld"),
            _firing("25h", "ObserverProgramHeld", summary, program="backup"),
        ],
    )


def test_a_stale_heartbeat_fires_at_half_the_programs_own_timeout(tmp_path: Path) -> None:
    """As ``ctl status`` judges. Before, a fixed 10 s held for 30 s: never for a daemon (the
    supervisor ends it at 15 s, and then its age is not served), and falsely for a job whose
    heartbeat timeout is long."""
    description = _rule("ObserverHeartbeatStale")["annotations"]["description"]

    def stale(program: str, age: str) -> dict[str, Any]:
        summary = f"{program} has not sent a heartbeat for {age}"
        return {
            "exp_labels": {"severity": "warning", "program": program},
            "exp_annotations": {"summary": summary, "description": description},
        }

    series = {  # a scrape a minute: the daemon's one stale scrape, 9 s into a 15 s timeout
        'observer_process_heartbeat_age_seconds{program="writer"}': "1x5 9 1x5",
        'observer_process_heartbeat_timeout_seconds{program="writer"}': "15x11",
        # A job beating every 2 minutes under a 10-minute timeout, then silent for 400 s.
        'observer_process_heartbeat_age_seconds{program="backup"}': "120x5 400x5",
        'observer_process_heartbeat_timeout_seconds{program="backup"}': "600x11",
    }
    _promtool_test(
        tmp_path,
        series,
        [
            _quiet("3m", "ObserverHeartbeatStale"),
            {
                "eval_time": "6m",
                "alertname": "ObserverHeartbeatStale",
                "exp_alerts": [stale("backup", "6m 40s"), stale("writer", "9s")],
            },
        ],
    )


# ------------------------------------------------------------------ the threshold rules' twins


def _default_rules() -> tuple[ThresholdRule, ...]:
    return (*default_rules(), *enrichment_rules(EnrichSettings()))


def test_the_thresholds_file_is_generated_from_the_default_and_shipped_rules() -> None:
    """Regenerate it after changing a rule: `observer alerts prometheus-rules`."""
    assert THRESHOLDS.read_text() == prometheus_rules(_default_rules())
    shipped = load_settings(ROOT / "config" / "observer.toml")
    rules = (*shipped.supervisor.rules, *enrichment_rules(shipped.enrich))
    assert prometheus_rules(rules) == THRESHOLDS.read_text()
    alerts = {r["alert"] for r in yaml.safe_load(THRESHOLDS.read_text())["groups"][0]["rules"]}
    assert alerts == {twin.alert for twin in TWINS}
    assert not alerts & {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
    }
    assert "Judged by the supervisor alone: context_sync_slow, universe_build_slow." in (
        THRESHOLDS.read_text()
    )


def test_a_tuned_rule_tunes_its_twin(tmp_path: Path) -> None:
    """The command reads the operator's rules: the limit and severity follow, a rule left out
    has no twin, and one without a twin is named."""
    config = tmp_path / "observer.toml"
    config.write_text(
        f'extends = "{ROOT / "config" / "observer.toml"}"\n'
        "[supervisor]\nrules = [\n"
        '  { code = "gap_success_low", metric = "gap_recovery.success_pct", below = 90.0,'
        ' severity = "critical" },\n'
        '  { code = "context_sync_slow", metric = "track_b.context_sync_s", above = 30.0 },\n'
        "]\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OBSERVER_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "observer", "alerts", "prometheus-rules", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rules = {r["alert"]: r for r in yaml.safe_load(done.stdout)["groups"][0]["rules"]}
    assert set(rules) == {
        "ObserverGapRecoveryLow",
        "ObserverEnrichmentStale",
        "ObserverEnrichmentCoverageLow",
    }
    gaps = rules["ObserverGapRecoveryLow"]
    assert gaps["expr"] == "observer_gap_recovery_success_ratio < 0.9"
    assert gaps["labels"] == {"severity": "critical"}
    assert gaps["annotations"]["description"].startswith("Below 90 %:")
    assert gaps["for"] == _rule("ObserverGapRecoveryLow")["for"]
    assert "Judged by the supervisor alone: context_sync_slow." in done.stdout


def test_the_rules_of_one_twin_must_agree() -> None:
    """A rule per region has one twin over every region: their limits must be the same."""
    kr, us = enrichment_rules(EnrichSettings(regions=("KR", "US")))[1:]
    assert prometheus_rules((kr, us)).count("- alert:") == 1
    lower = ThresholdRule(code=us.code, metric=us.metric, below=70.0)
    with pytest.raises(
        ValueError, match="enrichment_coverage_low_kr and enrichment_coverage_low_us"
    ):
        prometheus_rules((kr, lower))


# The default rules' figures, each breached or within its limit: KR's coverage is low, US's
# is not; the newest enrichment run is stale only when every region's is.
BREACHED = {
    "gap_recovery.success_pct": 90.0,
    "gap_recovery.queue_depth": 150.0,
    "track_b.context_sync_s": 45.0,
    "age_h.master_file": 50.0,
    "enrichment.age_h.kr": 49.0,
    "enrichment.age_h.us": 60.0,
    "enrichment.coverage_pct.kr": 70.0,
    "enrichment.coverage_pct.us": 90.0,
}
WITHIN = {
    "gap_recovery.success_pct": 99.0,
    "gap_recovery.queue_depth": 10.0,
    "track_b.context_sync_s": 5.0,
    "age_h.master_file": 1.0,
    "enrichment.age_h.kr": 1.0,
    "enrichment.age_h.us": 60.0,
    "enrichment.coverage_pct.kr": 85.0,
    "enrichment.coverage_pct.us": 90.0,
}


def _judged_and_served(figures: dict[str, float]) -> tuple[set[str], dict[str, float]]:
    """The default rules the supervisor finds breached, and the series it serves, for these
    figures (heartbeat counters, the ages and enrichment read from the database)."""
    counters: dict[str, dict[str, float]] = {}
    ages: dict[str, float] = {}
    enrichment: dict[str, dict[str, float]] = {}
    for metric, value in figures.items():
        head, _, rest = metric.partition(".")
        if head == "age_h":
            ages[rest] = value
        elif head == "enrichment":
            figure, _, region = rest.rpartition(".")
            enrichment.setdefault(region.upper(), {})[figure] = value
        else:
            counters.setdefault(head, {})[rest] = value
    # As the readings take it: the newest run of any region (`readings.read_once`).
    ages["enrichment"] = min(f["age_h"] for f in enrichment.values())
    programs: dict[str, Any] = {
        name: SimpleNamespace(name=name, state=State.RUNNING, counters=c, started_at=0.0)
        for name, c in counters.items()
    }
    rules = Rules(_default_rules(), AlertBook(lambda event: None))
    judged = rules.judge(metrics_of(programs.values(), ages, enrichment))
    readings: Any = SimpleNamespace(up=1.0, alerts_open={}, ages_h=ages, enrichment=enrichment)
    served: dict[str, float] = {}
    for family in (*named_families(programs), *alert_families(readings)):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            served[f"{sample.name}{{{labels}}}"] = sample.value
    return {c.rule.code for c in judged if c.breached}, served


def test_each_twin_reads_the_figure_of_its_rule_as_the_supervisor_serves_it() -> None:
    _, served = _judged_and_served(BREACHED)
    assert served['observer_gap_recovery_success_ratio{program="gap_recovery"}'] == 0.9
    assert served['observer_gap_recovery_queue_depth{program="gap_recovery"}'] == 150.0
    assert served["observer_master_file_age_seconds{}"] == 50.0 * 3600
    assert served['observer_enrichment_last_run_age_seconds{region="KR"}'] == 49.0 * 3600
    assert served['observer_enrichment_coverage_percent{region="KR"}'] == 70.0
    for twin in TWINS:  # each twin's PromQL names a metric served above
        assert any(name.startswith(f"{metric_names(twin.expr).pop()}{{") for name in served)


def test_a_twin_fires_where_its_rule_is_breached(tmp_path: Path) -> None:
    """The supervisor's judgement and Prometheus' agree on the same figures, once each twin
    has held for its `for:` (a twin without its annotations: their text is not the point)."""
    breached, served = _judged_and_served(BREACHED)
    assert breached == {
        "gap_success_low",
        "gap_queue_high",
        "context_sync_slow",  # judged by the supervisor alone
        "master_file_stale",
        "enrichment_stale",
        "enrichment_coverage_low_kr",
    }
    within, served_within = _judged_and_served(WITHIN)
    assert within == set()
    model = yaml.safe_load(THRESHOLDS.read_text())
    for rule in model["groups"][0]["rules"]:
        del rule["annotations"]
    rules = tmp_path / "twins.yml"
    rules.write_text(yaml.safe_dump(model))
    series = [{"series": name, "values": f"{value}x20"} for name, value in served.items()]
    quiet = [{"series": name, "values": f"{value}x20"} for name, value in served_within.items()]

    def fired(name: str, **labels: str) -> dict[str, Any]:
        return {
            "eval_time": "11m",
            "alertname": name,
            "exp_alerts": [{"exp_labels": {"severity": "warning", **labels}}],
        }

    gaps = {"program": "gap_recovery"}
    cases = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    fired("ObserverGapRecoveryLow", **gaps),
                    fired("ObserverGapQueueHigh", **gaps),
                    fired("ObserverMasterFileStale"),
                    fired("ObserverEnrichmentStale"),
                    fired("ObserverEnrichmentCoverageLow", region="KR"),
                    # Held 5 minutes and 10: only the queue's fires at 6 minutes.
                    {"eval_time": "6m", "alertname": "ObserverGapRecoveryLow", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "ObserverGapQueueHigh",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", **gaps}}],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": quiet,
                "alert_rule_test": [
                    {"eval_time": "11m", "alertname": twin.alert, "exp_alerts": []}
                    for twin in TWINS
                ],
            },
        ],
    }
    path = tmp_path / "cases.yml"
    path.write_text(yaml.safe_dump(cases))
    done = subprocess.run(
        [_promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


# ------------------------------------------------------------------ the names PromQL uses

_FUNCTIONS_AND_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_DROPPED = (
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # labels
    re.compile(r"\$\{?\w+\}?"),  # Grafana variables
    re.compile(r"\b\d[\w.]*"),  # numbers, durations (offset 5m)
)
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small lexer, honest about PromQL)."""
    text = _STRING.sub('""', expr)
    for pattern in _DROPPED:
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        rest = text[match.end() :].lstrip()
        if name not in _FUNCTIONS_AND_KEYWORDS and not rest.startswith("("):  # not a function
            names.add(name)
    return names


def test_metric_names_finds_selectors_and_skips_labels_functions_and_variables() -> None:
    expr = (
        'sum by (program) (rate(observer_a_total{program=~"x|y", job="observer_not"}[5m])) '
        "/ on() group_left observer_b > 0.5 and ignoring(state) observer_c offset 5m "
        'or absent(observer_d) or label_replace(up, "x", "$1", "y", "(.*)") '
        '* max_over_time(observer_e[$__rate_interval]) unless observer_f{account=~"$account"}'
    )
    assert metric_names(expr) == {
        "observer_a_total",
        "observer_b",
        "observer_c",
        "observer_d",
        "up",
        "observer_e",
        "observer_f",
    }


def _rule_expressions() -> list[str]:
    return [rule["expr"] for rule in _rules()]


def _dashboard_expressions() -> list[str]:
    model = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", ())]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label)
            query = variable["query"]["query"]
            found = re.fullmatch(r"label_values\((\w+),\s*\w+\)", query)
            assert found, query
            exprs.append(found.group(1))
    return exprs


def test_the_dashboard_is_a_current_grafana_model_with_a_datasource_variable() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["schemaVersion"] >= 39  # Grafana 11
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    rows = [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert rows == [
        "Programs",
        "Track A",
        "Track B per account",
        "Gaps and reconciliation",
        "Bus and writer",
        "Alerts",
        "Disk",
    ]
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


# ------------------------------------------------------------------ a real supervisor


def _scrape(port: int) -> dict[str, list[Any]]:
    """``/metrics`` as family name -> its samples; a counter's family also as name_total."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    served: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        names = [family.name] + ([f"{family.name}_total"] if family.type == "counter" else [])
        for name in names:
            served[name] = [s for s in family.samples if s.name == name]
    return served


def _value(served: dict[str, list[Any]], name: str, **labels: str) -> float | None:
    found = [s.value for s in served.get(name, ()) if labels.items() <= s.labels.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _publish(run_dir: Path, outbox: Path, events: list[Event]) -> None:
    with Producer("operator", f"ipc://{run_dir / 'ingest.sock'}", outbox) as producer:
        for event in events:
            producer.send(event)
        assert producer.wait_acked(30)


TOKEN_JOB = """
[programs.token]
kind = "job"
command = ["observer", "token", "run"]
depends_on = ["writer"]
run_on_start = true
"""


@pytest.fixture
def streaming(tmp_path: Path) -> Iterator[tuple[SupervisorProcess, SimThread, int]]:
    """Writer, token job and Track B on two accounts streaming three symbols from the simulator."""
    sim = SimThread(MARKET, datetime(2026, 11, 20, 9, 20, tzinfo=KST), SimConfig(), 100.0)
    port = free_port()
    settings = (
        "data_age_s = 0.5\n"
        f'[kis]\nenvironment = "sim"\nsim_url = "{sim.url}"\ntoken_dir = "{tmp_path / "tokens"}"\n'
        '[[kis.accounts]]\nalias = "acct1"\n[[kis.accounts]]\nalias = "acct2"\n'
        "[kis.stream]\nmax_registrations = 3\n[track_b]\nsilence_tolerance_s = 3600\n"
    )
    sup = SupervisorProcess(
        tmp_path,
        WRITER_PROGRAM + TOKEN_JOB + TRACK_B,
        clock=sim.sim.clock.spec,
        settings=settings,
        metrics_port=port,
    )
    try:
        # Not "healthy" first: at 100x, 09:30 (full operation) comes 6 s after the start, and
        # a supervisor that reaches it before the universe is published is rightly unhealthy.
        sup.start(healthy=False)
        _publish_universe(sup.data_dir / "run", tmp_path / "outbox", STOCKS[:3])
        wait_until(
            lambda: (
                all(
                    a["stream"] == "connected" and a["registered"] for a in sup.status()["accounts"]
                )
                or None
            ),
            90,
            "both accounts streaming",
        )
        yield sup, sim, port
    finally:
        sup.terminate()
        sim.close()


@pytest.mark.slow
def test_a_real_supervisor_serves_every_metric_the_rules_and_dashboard_name(
    streaming: tuple[SupervisorProcess, SimThread, int], tmp_path: Path
) -> None:
    sup, sim, port = streaming
    served = _scrape(port)
    named = {n for e in _rule_expressions() + _dashboard_expressions() for n in metric_names(e)}
    assert len(named) > 40  # the lexer found the expressions' metrics
    missing = named - set(served) - PROMETHEUS_MADE
    assert not missing, f"named in the rules or the dashboard, not served: {sorted(missing)}"

    # Slot utilization is Track B's slots held on the account over its capacity.
    def slots_agree() -> dict[str, float] | None:
        counters = sup.program("track_b")["counters"]
        served = _scrape(port)
        capacity = counters.get("capacity_per_account")
        held = {}
        for alias in ("acct1", "acct2"):
            ratio = _value(served, "observer_account_slot_utilization_ratio", account=alias)
            held[alias] = counters.get(f"slots.{alias}")
            if ratio is None or held[alias] is None or ratio != held[alias] / capacity:
                return None
        # Until its slots are placed Track B holds none, and 0 agrees with 0: wait for them
        return held if sum(held.values()) else None

    held = wait_until(slots_agree, 30, "slot utilization as Track B reports it")
    assert sum(held.values()) == 3  # three symbols on two sessions of three slots

    # Each account streams, so it is up, with as many registrations as slots: once its
    # health rules pass, which a loaded machine may delay past the slots' agreement.
    def accounts_up() -> dict[str, list[Any]] | None:
        served = _scrape(port)
        return (
            served
            if all(
                _value(served, "observer_account_up", account=alias) == 1.0
                and _value(served, "observer_account_registrations", account=alias) == held[alias]
                for alias in ("acct1", "acct2")
            )
            else None
        )

    served = wait_until(accounts_up, 30, "both accounts up with their registrations")
    for alias in ("acct1", "acct2"):
        assert _value(served, "observer_account_stream_state", account=alias, state="connected")
        assert _value(served, "observer_account_slots", account=alias) == held[alias]
    # The token expiry is the token job's cache, on the observer's clock.
    clock = sim.sim.clock
    validity = wait_until(lambda: cached_validity(tmp_path / "tokens", "acct1", "sim"), 30)
    before = clock.now_ns()
    served = _scrape(port)
    after = clock.now_ns()
    expires_in = _value(served, "observer_account_token_expires_in_seconds", account="acct1")
    assert expires_in is not None
    assert (validity[1] - after) / 1e9 - 0.1 <= expires_in <= (validity[1] - before) / 1e9 + 0.1
    assert 23 * 3600 < expires_in <= 24 * 3600  # issued at start-up, valid for a day
    # Disk: free bytes of each folder's volume, labelled with the folder.
    data_dir = str(sup.data_dir.absolute())
    free = _value(served, "observer_disk_free_bytes", role="data", path=data_dir)
    size = _value(served, "observer_disk_size_bytes", role="data", path=data_dir)
    assert free is not None and size is not None and 0 < free <= size
    assert abs(free - shutil.disk_usage(data_dir).free) < 512 * 2**20
    assert _value(served, "observer_disk_free_bytes", role="database", path=data_dir) == free
    assert _value(served, "observer_process_heartbeat_age_seconds", program="writer") < 15
    assert _value(served, "observer_database_read_up") == 1.0


def test_roles_sharing_a_folder_report_one_measurement_of_a_busy_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free bytes move between two statvfs calls; one scrape measures each folder once."""
    calls: list[str] = []
    # A fixed base, not the real disk: other tests of a parallel run move the real free bytes.
    base = shutil.disk_usage(tmp_path)

    def moving(path: str | os.PathLike[str]) -> Any:
        calls.append(str(path))
        return base._replace(free=base.free - 4096 * len(calls))  # another writer's pages

    monkeypatch.setattr(shutil, "disk_usage", moving)
    (tmp_path / "run").mkdir()
    paths = {"data": tmp_path, "database": tmp_path, "run": tmp_path / "run"}
    families = {f.name: f for f in disk_families(paths)}
    free = {s.labels["role"]: s.value for s in families["observer_disk_free_bytes"].samples}
    assert free["data"] == free["database"] != free["run"]
    assert sorted(calls) == sorted([str(tmp_path), str(tmp_path / "run")])


@pytest.mark.slow
def test_open_alerts_by_severity_follow_the_database(tmp_path: Path) -> None:
    """A critical alert from any program is counted open until it is resolved."""
    port = free_port()
    sup = SupervisorProcess(
        tmp_path, WRITER_PROGRAM, settings="data_age_s = 0.2", metrics_port=port
    ).start()

    def open_critical() -> float | None:
        return _value(_scrape(port), "observer_alerts_open", severity="critical")

    base = wait_until(lambda: open_critical() is not None and [open_critical()], 30)[0]
    run_dir, outbox = sup.data_dir / "run", tmp_path / "outbox"
    _publish(
        run_dir,
        outbox,
        [
            Alert(severity="critical", code="disk_full", message="full", subject="/data"),
            Alert(severity="warning", code="slow", message="slow"),
            Alert(severity="info", code="note", message="a note is never open"),
        ],
    )
    wait_until(lambda: open_critical() == base + 1, 30, "the critical alert counted open")
    served = _scrape(port)
    assert _value(served, "observer_alerts_open", severity="warning") >= 1
    assert "info" not in {s.labels["severity"] for s in served["observer_alerts_open"]}
    _publish(
        run_dir,
        outbox,
        [
            AlertResolved(code="disk_full", severity="critical", subject="/data", message="space"),
        ],
    )
    wait_until(lambda: open_critical() == base, 30, "the resolved alert no longer open")


@pytest.mark.slow
def test_a_database_without_schema_reads_down_until_the_writer_makes_it(tmp_path: Path) -> None:
    """The failure to read is shown (0), and the reading comes back by itself (1)."""
    port = free_port()
    no_programs = "[programs]\n"  # no writer: nothing makes the schema
    sup = SupervisorProcess(tmp_path, no_programs, settings="data_age_s = 0.2", metrics_port=port)
    sup.start()
    wait_until(lambda: _value(_scrape(port), "observer_database_read_up") == 0.0, 30, "read 0")
    assert _value(_scrape(port), "observer_alerts_open", severity="critical") is None
    (tmp_path / "writer").mkdir()
    writer = WriterProcess(tmp_path / "writer", sup.url).start()
    try:
        wait_until(lambda: _value(_scrape(port), "observer_database_read_up") == 1.0, 30, "read 1")
        assert _value(_scrape(port), "observer_alerts_open", severity="critical") == 0
    finally:
        writer.terminate()


def test_a_program_failing_its_work_for_two_minutes_fires(tmp_path: Path) -> None:
    # Failing for more than a minute (the counter), and so for another (`for`): 2 minutes.
    """The notifier's sweeps fail (its database is down): it lives, so no process rule
    fires, and the observer's own alerts cannot say so. A minute's blip is no alert."""
    failing = 'observer_program_counter{program="notifier",counter="failing_s"}'
    summary = {
        "summary": "notifier has failed its work for 3m 0s",
        "description": _rule("ObserverProgramFailingItsWork")["annotations"]["description"],
    }
    labels = {"program": "notifier", "counter": "failing_s"}
    _promtool_test(
        tmp_path,
        {failing: "0x3 180 0x4 0+60x10"},  # one sample of 3 minutes at 4m; failing from 10m
        [
            _quiet("5m", "ObserverProgramFailingItsWork"),
            _quiet("12m", "ObserverProgramFailingItsWork"),
            _firing("13m", "ObserverProgramFailingItsWork", summary, **labels),
        ],
    )


@pytest.mark.slow
def test_a_busy_metrics_port_is_alerted_tried_again_and_the_alert_ends_once_served(
    tmp_path: Path,
) -> None:
    """The port is held by another process at the start: one error alert, the market data
    flowing all the same; freed, it is served at the next try, and the alert ends."""
    port = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    try:
        sup = SupervisorProcess(
            tmp_path, WRITER_PROGRAM, settings="metrics_retry_s = 1.0", metrics_port=port
        ).start()
        raised = wait_until(
            lambda: db_rows(
                sup.url, "select severity, message from alerts where code = 'metrics_unavailable'"
            ),
            60,
            "metrics_unavailable",
        )
        assert raised[0][0] == "error" and f"port {port}" in raised[0][1]
        assert sup.program("writer")["state"] == "running"  # the data flows all the same
    finally:
        holder.close()
    ended = wait_until(
        lambda: db_rows(
            sup.url, "select message from alert_resolutions where code = 'metrics_unavailable'"
        ),
        60,
        "the alert ended",
    )
    assert ended == [(f"/metrics is served on port {port}",)]
    assert _value(_scrape(port), "observer_process_up", program="writer") == 1.0  # served
    assert len(db_rows(sup.url, "select 1 from alerts where code = 'metrics_unavailable'")) == 1
    assert sup.terminate() == 0
