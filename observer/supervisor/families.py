"""The operator's metric families: accounts, named figures of the workers, alerts, disk.

Every heartbeat counter is exported as it comes (``observer_program_counter``); the figures
an operator watches get names of their own here, in Prometheus' conventions (base units,
``_total`` for counts that only grow while the process lives, ``_ratio`` for 0-1), such as
``observer_gap_recovery_success_ratio``. Sources: `observer.supervisor.accounts`,
`DatabaseReadings` (open alerts, data ages) and ``statvfs`` of the folders written.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.engine import make_url

from observer.db.settings import DatabaseSettings
from observer.kis.account_health import STREAM_STATES
from observer.process.paths import PathSettings
from observer.supervisor.accounts import STREAMER
from observer.supervisor.program import Program, State
from observer.supervisor.readings import DatabaseReadings

__all__ = [
    "NAMED",
    "Named",
    "account_families",
    "alert_families",
    "disk_families",
    "disk_paths",
    "named_families",
]


@dataclass(frozen=True, slots=True)
class Named:
    """A heartbeat counter of one program, exported under a name of its own."""

    program: str
    counter: str
    name: str  # a counter's without "_total": prometheus_client adds it
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    scale: float = 1.0  # 0.01: a percentage exported as a ratio


_GAPS = {
    "detected": "gaps taken in",
    "recovered": "gaps recovered",
    "unrecoverable": "gaps that could not be recovered",
    "marker_only": "gaps recorded as markers only",
}
_WRITER = {
    "frames": "frames received",
    "events": "events committed",
    "commits": "transactions committed",
    "duplicates": "events skipped as already committed",
    "rejected": "frames rejected",
    "rejected_events": "events rejected",
    "undecodable_events": "events rejected because they could not be decoded",
    "conflicts": "resends that differ from what was committed",
    "unverified": "events committed without a digest to check",
    "commit_failures": "transactions that failed",
    "handshake_failures": "CURVE handshakes failed before ZAP (a client with another key)",
}
NAMED = (
    Named("track_a", "cycles", "observer_track_a_cycles", "Track A cycles run", "counter"),
    Named("track_a", "snapshots", "observer_track_a_snapshots", "price snapshots", "counter"),
    Named("track_a", "failed", "observer_track_a_failed", "snapshot requests failed", "counter"),
    Named("track_a", "overran", "observer_track_a_overran", "cycles past their slot", "counter"),
    Named("track_a", "rate_limited", "observer_track_a_rate_limited", "EGW00201", "counter"),
    Named(
        "track_a",
        "rest_pace_pct",
        "observer_track_a_rest_pace_ratio",
        "the slowest account's REST pace, of its share (below 1 after EGW00201)",
        scale=0.01,
    ),
    Named("track_a", "last_cycle_s", "observer_track_a_last_cycle_seconds", "last cycle's time"),
    Named("track_a", "cycle_running", "observer_track_a_cycle_running", "1 while in a cycle"),
    Named("track_b", "ticks", "observer_track_b_ticks", "ticks streamed", "counter"),
    Named("track_b", "gaps", "observer_track_b_gaps", "gaps detected in the streams", "counter"),
    Named("track_b", "slots", "observer_track_b_slots", "slots held, every account"),
    Named("track_b", "barred", "observer_track_b_barred", "symbols barred from slots"),
    Named("track_b", "pins_unplaced", "observer_track_b_pins_unplaced", "pins without a slot"),
    Named("track_b", "pins_unreadable", "observer_track_b_pins_unreadable", "1: pins file bad"),
    Named(
        "track_b",
        "overflow_pct",
        "observer_track_b_overflow_ratio",
        "overflow, last hour",
        scale=0.01,
    ),
    Named("track_b", "context_sync_s", "observer_track_b_context_sync_seconds", "context sync"),
    *(
        Named("gap_recovery", f"gaps_{k}", f"observer_gap_recovery_gaps_{k}", doc, "counter")
        for k, doc in _GAPS.items()
    ),
    Named("gap_recovery", "bars_recovered", "observer_gap_recovery_bars", "bars", "counter"),
    Named(
        "gap_recovery",
        "trades_recovered",
        "observer_gap_recovery_trades",
        "the exchange's trades recovered",
        "counter",
    ),
    Named(
        "gap_recovery",
        "trade_calls",
        "observer_gap_recovery_trade_calls",
        "FHPST01060000 calls",
        "counter",
    ),
    Named("gap_recovery", "queue_depth", "observer_gap_recovery_queue_depth", "gaps waiting"),
    Named(
        "gap_recovery",
        "success_pct",
        "observer_gap_recovery_success_ratio",
        "recovered of the settled gaps",
        scale=0.01,
    ),
    Named(
        "gap_recovery",
        "reconciled_until_s",
        "observer_gap_recovery_reconciled_until_timestamp_seconds",
        "the newest stream end whose reconciliation settled",
    ),
    Named(
        "gap_recovery",
        "detect_to_recovered_p99_s",
        "observer_gap_recovery_detect_to_recovered_p99_seconds",
        "gap to recovered, p99",
    ),
    *(Named("writer", k, f"observer_writer_{k}", doc, "counter") for k, doc in _WRITER.items()),
    Named("notifier", "sent", "observer_notifier_sent", "messages sent", "counter"),
    Named("notifier", "failed", "observer_notifier_failed", "messages that failed", "counter"),
    Named("notifier", "queued", "observer_notifier_queued", "messages waiting"),
    Named("notifier", "targets_down", "observer_notifier_targets_down", "channels failing"),
)


def named_families(programs: Mapping[str, Program]) -> Iterator[Metric]:
    """The `NAMED` figures of the programs running (a stopped one's figures are history)."""
    for named in NAMED:
        kind = CounterMetricFamily if named.kind == "counter" else GaugeMetricFamily
        family = kind(named.name, named.help, labels=["program"])
        program = programs.get(named.program)
        live = program is not None and program.state is State.RUNNING
        value = program.counters.get(named.counter) if live and program else None
        if value is not None:
            family.add_metric([named.program], value * named.scale)
        yield family


def account_families(
    rows: Sequence[Mapping[str, Any]], programs: Mapping[str, Program]
) -> Iterator[Metric]:
    """Each account's health (``accounts_status`` rows) and its slots as Track B holds them."""
    streamer = programs.get(STREAMER)
    slots = streamer.counters if streamer and streamer.state is State.RUNNING else {}
    capacity = slots.get("capacity_per_account")

    def gauge(name: str, doc: str, key: str | None = None) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["account"])
        for row in rows:
            if key is not None and row.get(key) is not None:
                family.add_metric([row["account"]], float(row[key]))
        return family

    up = gauge("observer_account_up", "1 if the account passes its health rules (ctl status)")
    state = GaugeMetricFamily(
        "observer_account_stream_state", "1 for the stream's state", labels=["account", "state"]
    )
    held = gauge("observer_account_slots", "slots held on the account's session")
    total = gauge("observer_account_slot_capacity", "slots one session can hold")
    ratio = gauge("observer_account_slot_utilization_ratio", "slots held / capacity")
    for row in rows:
        alias = row["account"]
        up.add_metric([alias], 1.0 if row["ok"] else 0.0)
        for name in (*STREAM_STATES, "unknown"):
            state.add_metric([alias, name], 1.0 if row["stream"] == name else 0.0)
        count = slots.get(f"slots.{alias}")
        if count is not None and capacity:
            held.add_metric([alias], count)
            total.add_metric([alias], capacity)
            ratio.add_metric([alias], count / capacity)
    yield from (up, state, held, total, ratio)
    yield gauge("observer_account_registrations", "registrations KIS holds", "registered")
    yield gauge("observer_account_registrations_wanted", "registrations the slots want", "wanted")
    yield gauge(
        "observer_account_last_tick_age_seconds", "since the last data frame", "last_tick_age_s"
    )
    yield gauge(
        "observer_account_delivery_lag_seconds",
        "the last data frame's receive time less its newest trade stamp",
        "delivery_lag_s",
    )
    yield gauge(
        "observer_account_lag_alert_seconds",
        "the delivery lag Track B alerts beyond (0: no alert)",
        "lag_alert_s",
    )
    yield gauge("observer_account_stream_state_age_seconds", "in this state", "state_age_s")
    yield gauge("observer_account_reconnects", "reconnects in the last hour", "reconnects_1h")
    yield gauge(
        "observer_account_reconnect_budget", "reconnects allowed an hour", "reconnect_budget"
    )
    yield gauge(
        "observer_account_token_expires_in_seconds",
        "until the cached access token expires (observer's clock)",
        "token_expires_in_s",
    )
    yield gauge("observer_account_token_age_seconds", "since the token was issued", "token_age_s")
    yield gauge(
        "observer_account_approval_key_age_seconds",
        "since the key was issued",
        "approval_key_age_s",
    )
    yield gauge(
        "observer_account_rest_errors_5m", "REST calls failed, last 5 min", "rest_errors_5m"
    )


def alert_families(readings: DatabaseReadings) -> Iterator[Metric]:
    """Open alerts by severity, the data ages, and whether the database could be read."""
    read = GaugeMetricFamily(
        "observer_database_read_up", "1 if the supervisor's last read of the database succeeded"
    )
    if readings.up is not None:
        read.add_metric([], readings.up)
    opened = GaugeMetricFamily(
        "observer_alerts_open", "alerts neither acknowledged nor resolved", labels=["severity"]
    )
    for severity, count in (readings.alerts_open or {}).items():  # none before a read
        opened.add_metric([severity], count)
    age = GaugeMetricFamily(
        "observer_master_file_age_seconds", "since the master file checked longest ago was checked"
    )
    if "master_file" in readings.ages_h:
        age.add_metric([], readings.ages_h["master_file"] * 3600)
    yield from (read, opened, age)
    yield from enrichment_families(readings.enrichment)


# Per region, from its latest enrichment run: (name, help, reading's key, scale).
_ENRICHMENT = (
    ("coverage_percent", "stocks with a sector, % of the active ones", "coverage_pct", 1.0),
    ("last_run_age_seconds", "since the latest run", "age_h", 3600.0),
    # A run's calls and duration are of all its regions: each region shows the same.
    ("last_run_fallback_calls", "fallback requests of the latest run (all regions)", "calls", 1.0),
    ("last_run_kis_calls", "KIS calls of the latest run (all regions)", "kis_calls", 1.0),
    ("last_run_duration_seconds", "how long the latest run took", "duration_ms", 0.001),
    ("last_run_deferred", "stocks the latest run left for the next", "deferred", 1.0),
    ("last_run_failed", "stocks whose fallback failed in the latest run", "fallback_failed", 1.0),
)


def enrichment_families(regions: Mapping[str, Mapping[str, float]]) -> Iterator[Metric]:
    """Sector enrichment per region: coverage now, and its latest run's figures."""
    for name, help_text, key, scale in _ENRICHMENT:
        family = GaugeMetricFamily(f"observer_enrichment_{name}", help_text, labels=["region"])
        for region, figures in regions.items():
            if key in figures:
                family.add_metric([region], figures[key] * scale)
        yield family


def disk_paths(paths: PathSettings, database: DatabaseSettings) -> dict[str, Path]:
    """The folders whose volumes are watched, by role (an SQLite database's own folder too)."""
    folders = {"data": Path(paths.data_dir), "run": paths.run, "log": paths.log}
    url = make_url(database.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folders["database"] = Path(str(url.database)).parent
    return {role: path.absolute() for role, path in folders.items()}


def disk_families(paths: Mapping[str, Path]) -> Iterator[Metric]:
    """Free and total bytes of each folder's volume (its nearest existing ancestor's)."""
    free = GaugeMetricFamily(
        "observer_disk_free_bytes", "bytes free to the observer", labels=["role", "path"]
    )
    size = GaugeMetricFamily("observer_disk_size_bytes", "volume size", labels=["role", "path"])
    # One measurement per folder per scrape, so roles sharing a folder report one figure.
    measured: dict[Path, tuple[int, int]] = {}
    for role, path in paths.items():
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        if existing not in measured:
            try:
                usage = shutil.disk_usage(existing)
            except OSError:  # vanished between the two calls: no sample this scrape
                continue
            measured[existing] = (usage.free, usage.total)
        free_bytes, total_bytes = measured[existing]
        free.add_metric([role, str(path)], free_bytes)
        size.add_metric([role, str(path)], total_bytes)
    yield from (free, size)
