"""Settings of alerting: the supervisor's threshold rules and the notifier's channels.

Part of ``observer.toml`` (`observer.config.tree.Settings` holds them as ``supervisor.rules`` and
``notifier``); kept apart so that the configuration module stays one screenful of tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from bus.events import Severity
from observer.setting_types import DAY_S, Positive, Seconds, Strict

if TYPE_CHECKING:
    from observer.config.workers import EnrichSettings

__all__ = [
    "ENRICHMENT_RUN_FIGURES",
    "ChannelSettings",
    "NotifierSettings",
    "ThresholdRule",
    "default_rules",
    "enrichment_rules",
]

# The latest enrichment run's figures a rule may name per region (EnrichmentRun's fields).
ENRICHMENT_RUN_FIGURES = ("calls", "kis_calls", "duration_ms", "deferred", "fallback_failed")


class ThresholdRule(Strict, frozen=True):
    """An alert when a metric passes a limit, resolved when it is back (the supervisor's).

    ``metric`` is ``<program>.<counter>`` (a heartbeat counter, e.g.
    ``gap_recovery.success_pct``), ``<program>.running_s`` (seconds the program has been
    running; 0 when it is not), ``age_h.master_file`` (hours since the master files were
    last checked, from the database), ``age_h.enrichment`` (since the latest enrichment run)
    or ``enrichment.<figure>.<region>`` (``coverage_pct``, ``age_h``, the latest run's
    figures). One that cannot exist is refused at load; a counter its program never reports
    raises ``rule_metric_unknown`` (`observer.supervisor.rule_counters`).
    """

    code: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    metric: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_.]+$")]
    above: Annotated[float, Meta(ge=-1e12, le=1e12)] | None = None
    below: Annotated[float, Meta(ge=-1e12, le=1e12)] | None = None
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"rule {self.code}: give one of above or below")


def default_rules() -> tuple[ThresholdRule, ...]:
    """The operation's targets: gap recovery, Track B's context sync, the jobs' times.

    Their Prometheus twins, and those of `enrichment_rules`, are generated into
    config/prometheus/thresholds.yml (`observer.alerts.prometheus_rules`).
    """
    return (
        ThresholdRule(code="gap_success_low", metric="gap_recovery.success_pct", below=95.0),
        ThresholdRule(code="gap_queue_high", metric="gap_recovery.queue_depth", above=100.0),
        ThresholdRule(code="context_sync_slow", metric="track_b.context_sync_s", above=30.0),
        ThresholdRule(code="universe_build_slow", metric="universe.running_s", above=300.0),
        ThresholdRule(code="master_file_stale", metric="age_h.master_file", above=48.0),
    )


def enrichment_rules(settings: EnrichSettings) -> tuple[ThresholdRule, ...]:
    """No enrichment run for ``stale_after_h``; a region's coverage below ``min_coverage_pct``."""
    stale = ThresholdRule(
        code="enrichment_stale", metric="age_h.enrichment", above=settings.stale_after_h
    )
    low = tuple(
        ThresholdRule(
            code=f"enrichment_coverage_low_{region.lower()}",
            metric=f"enrichment.coverage_pct.{region.lower()}",
            below=settings.min_coverage_pct,
        )
        for region in settings.regions
    )
    return (stale, *low)


ChannelName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class ChannelSettings(Strict, frozen=True):
    """Which alerts one channel gets. Its apprise URLs are secrets, never here.

    They come from ``OBSERVER_NOTIFY_<NAME>_URLS`` (separated by spaces) or the channel's
    entry in ``[notifier] credentials_file``.
    """

    min_severity: Severity = "warning"
    codes: tuple[str, ...] = ()  # only these codes; empty: every code
    exclude_codes: tuple[str, ...] = ()


def _default_channels() -> dict[str, ChannelSettings]:
    return {"default": ChannelSettings()}


class NotifierSettings(Strict, frozen=True):
    """The notifier: routing, grouping, reminders and retries of alert messages.

    Its pacing is in wall seconds, like the supervisor's process mechanics: a message is
    for a person, whose time does not run at the simulated market's speed.
    """

    credentials_file: str = ""  # owner-only TOML: [channels] NAME = ["apprise URL", ...]
    channels: dict[ChannelName, ChannelSettings] = msgspec.field(default_factory=_default_channels)
    group_s: Seconds = 10.0  # identical alerts within this become one message with a count
    repeat_s: Seconds = 300.0  # at most one message per condition this often; the rest counted
    remind_s: Seconds = 1800.0  # a critical alert still open is sent again this often
    retry_initial_s: Seconds = 2.0  # a failed send is retried, doubling up to retry_max_s
    retry_max_s: Seconds = 300.0
    down_after: Positive = 3  # failed sends in a row before the channel is alerted as down
    send_timeout_s: Seconds = 10.0  # one send; less than the program's stop_grace_s
    sweep_s: Seconds = 30.0  # the database is searched for undelivered alerts this often
    lookback_s: Seconds = DAY_S  # how old an undelivered alert may be and still be sent
    started_alert: bool = False  # an info alert at start (the demo's first message)
