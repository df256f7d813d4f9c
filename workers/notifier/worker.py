"""The ``notifier`` daemon: every alert reaches the channels that take it, at least once.

Alerts come from the feed (``alert``, ``alert_resolved``, ``alert_acked``) and from the
database: at start-up (after the writer has everything an earlier instance sent) and every
``sweep_s``, the alerts of the last ``lookback_s`` that a routed channel has no sent
message for are taken in again, so a kill between an alert's commit and its delivery, or a
feed message dropped, still delivers. `workers.notifier.messages.Grouper` decides what goes
out when; each target (one URL of a channel) has its own queue and sender, which retries a
failed send with doubling backoff while the others go on. Every attempt is an
`AlertDelivery` event; ``down_after`` failures in a row raise ``notify_channel_down`` (an
error alert, which the other channels carry), resolved by the next success. A channel still
alerted down when the notifier starts counts as down from the start: its next success
resolves that alert, and its next failure raises no second one. Reminders after a start
cover every open critical alert, whatever its age. Every sweep also ends the
reminders of the alerts the database holds as acknowledged or resolved (an ack's feed
message may be dropped).

A configured channel without a URL sends nowhere: outside the simulator
(``kis.environment = "sim"``, where the demo's shipped ``default`` channel has none) the
heartbeat counts it (``channels_without_url``) and says the notifier fails its work
(``failing_s``, so ``observer ctl status`` is unhealthy) until it is restarted with one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Engine

from bus.events import Alert, AlertAcked, AlertDelivery, AlertResolved
from bus.feed import FeedSubscriber
from bus.producer import Producer
from observer.alerts import Notice, alert_id, alert_states, delivered_channels, notices_of
from observer.clock import Clock
from observer.config import Settings
from observer.db.queries import alert_records, open_alert_records
from observer.db.readers import reader_engine
from observer.notify import FAILING_S, Notifier
from observer.retry import backoff_s
from observer.runtime import AsyncWorker, alongside, beat_forever
from observer.transport import feed_subscriber
from workers.notifier.channels import Target, env_name
from workers.notifier.messages import Grouper, Message

__all__ = ["CHANNEL_DOWN", "AlertNotifier"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_POLL_S = 0.05  # wall seconds between looks at the feed and the grouper
CHANNEL_DOWN = "notify_channel_down"  # the alert code of a target failing down_after times


@dataclass
class DeliveryCounters:
    """What the heartbeats report."""

    sent: int = 0
    failed: int = 0
    failing: Counter[str] = field(default_factory=Counter)  # target -> failures in a row


class AlertNotifier(AsyncWorker):
    """One notifier process over its targets (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Notifier,
        stop: asyncio.Event,
        targets: list[Target],
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.notifier
        self.targets = targets
        self.grouper = Grouper(self.config.group_s, self.config.repeat_s, self.config.remind_s)
        self.queues: dict[str, asyncio.Queue[Message]] = {t.name: asyncio.Queue() for t in targets}
        self.seen: dict[str, float] = {}  # notice id -> when taken in (monotonic)
        self.tally = DeliveryCounters()
        self._engine: Engine = reader_engine(settings.database, "notifier")
        self._started = time.monotonic()
        # A channel without a URL sends nowhere; in the simulator that is no fault.
        with_url = {t.channel for t in targets}
        self.without_url = (
            []
            if settings.kis.environment == "sim"
            else [name for name in self.config.channels if name not in with_url]
        )

    def counters(self) -> dict[str, float]:
        """The heartbeat's counters."""
        return {
            "targets": len(self.targets),
            "sent": self.tally.sent,
            "failed": self.tally.failed,
            "queued": sum(q.qsize() for q in self.queues.values()),
            "held": self.grouper.held,
            "open_critical": self.grouper.open_critical,
            "targets_down": sum(1 for n in self.tally.failing.values() if n),
            "channels_without_url": len(self.without_url),
            # Failing since the start: only a restart with the URLs mends it.
            FAILING_S: max(round(time.monotonic() - self._started, 1), 0.1)
            if self.without_url
            else 0.0,
        }

    async def run(self) -> None:
        """Deliver alerts until ``stop``."""
        if self.without_url:
            log.error(
                "alert channels without a URL (%s; set %s or the credentials file): "
                "their alerts are sent nowhere",
                ", ".join(self.without_url),
                ", ".join(env_name(name) for name in self.without_url),
            )
        elif not self.targets:  # the simulator's: no fault
            log.warning("no alert channel has a URL: alerts are stored, and sent nowhere")
        feed = feed_subscriber(self.settings, ["alert"])
        try:
            self._sweep(start=True)
            log.info(
                "notifier ready: %d targets (%s), %d alerts to send",
                len(self.targets),
                ", ".join(t.name for t in self.targets),
                self.grouper.held,
            )
            if self.config.started_alert:
                names = ", ".join(t.name for t in self.targets) or "no channel"
                self.producer.send(
                    Alert(severity="info", code="notifier_started", message=f"alerts go to {names}")
                )
            # A sender or the heartbeat that fails ends the process (and is restarted).
            async with alongside(
                beat_forever(self.notifier, self.counters), *(self._serve(t) for t in self.targets)
            ):
                await self._follow(feed)
        finally:
            feed.close()
            self._engine.dispose()

    async def _follow(self, feed: FeedSubscriber) -> None:
        swept = time.monotonic()
        while not self.stop.is_set():
            self._drain(feed)
            now = time.monotonic()
            if now - swept >= self.config.sweep_s:
                swept = now
                self._sweep(start=False)
            self._dispatch(now)
            await asyncio.sleep(_POLL_S)

    # ------------------------------------------------------------------ intake

    def _drain(self, feed: FeedSubscriber) -> None:
        while (envelopes := feed.recv(0)) is not None:
            for envelope in envelopes:
                event, ident = envelope.event, alert_id(envelope.source, envelope.seq)
                kind: Literal["alert", "resolved"]
                match event:
                    case Alert():
                        kind = "alert"
                    case AlertResolved():
                        kind = "resolved"
                    case AlertAcked():
                        self.grouper.acked(alert_id(event.alert_source, event.alert_seq))
                        continue
                    case _:
                        continue  # deliveries: our own
                self._take(
                    Notice(
                        ident,
                        kind,
                        envelope.ts,
                        event.severity,
                        event.code,
                        event.subject,
                        event.message,
                    ),
                    None,
                )

    def _take(self, notice: Notice, targets: frozenset[str] | None) -> None:
        if notice.id in self.seen:
            return
        self.seen[notice.id] = time.monotonic()
        self.grouper.add(notice, time.monotonic(), targets)

    def _sweep(self, *, start: bool) -> None:
        """Alerts and resolutions in the database that a routed target has not been sent."""
        since = self.clock.now_ns() - int(self.config.lookback_s * _NS)
        with self._engine.connect() as conn:
            records = alert_records(conn, since)
        sent = delivered_channels(records)
        now = time.monotonic()
        resolutions = notices_of(records.resolutions, "resolved")
        states = alert_states(records)
        alerts = [s for s in states if s.state != "acked"]
        for notice in sorted([s.notice for s in alerts] + resolutions, key=lambda n: n.produced_ns):
            routed = {t.name for t in self.targets if t.wants(notice.code, notice.severity)}
            missing = routed - sent.get(notice.id, set())
            if missing:  # only where it is missing; as a new alert when that is everywhere
                self._take(notice, None if missing == routed else frozenset(missing))
        # The stored state wins: an ack (or a resolution) the feed dropped ends the reminders.
        for state in states:
            if state.state in ("acked", "resolved"):
                self.grouper.acked(state.notice.id)
        if start:  # reminders about what is open, whatever its age, and was already sent
            with self._engine.connect() as conn:
                still_open = [
                    s.notice for s in alert_states(open_alert_records(conn, deliveries=False))
                ]
            for notice in still_open:
                if notice.severity == "critical":
                    self.grouper.track_open(notice, now)
            for notice in [s.notice for s in alerts] + resolutions + still_open:
                self.seen.setdefault(notice.id, now)
            self._still_down(still_open)
        old = now - self.config.lookback_s
        self.seen = {ident: at for ident, at in self.seen.items() if at > old}

    def _still_down(self, open_alerts: list[Notice]) -> None:
        """Targets an earlier instance alerted down count as down: ``down_after`` failures.

        So their next success resolves that alert, and their next failure raises no second.
        """
        names = {t.name for t in self.targets}
        failing = self.tally.failing
        for notice in open_alerts:
            if notice.code == CHANNEL_DOWN and notice.subject in names:
                failing[notice.subject] = max(failing[notice.subject], self.config.down_after)

    # ------------------------------------------------------------------ delivery

    def _dispatch(self, now: float) -> None:
        for message in self.grouper.due(now):
            for target in self.targets:
                if message.targets is not None:
                    wanted = target.name in message.targets
                else:
                    wanted = target.wants(message.code, message.severity)
                if wanted:
                    self.queues[target.name].put_nowait(message)

    async def _serve(self, target: Target) -> None:
        """Send the target's messages in order, each until it goes out (or is too old)."""
        queue = self.queues[target.name]
        config = self.config
        while True:
            message = await queue.get()
            first = time.monotonic()
            attempt = 0
            while True:
                attempt += 1
                error = await asyncio.to_thread(
                    target.send,
                    message.title,
                    message.body,
                    message.notify_severity,
                    config.send_timeout_s,
                )
                self._record(target, message, attempt, error)
                if not error:
                    break
                if time.monotonic() - first > config.lookback_s:
                    log.error(
                        "%s: giving up on %s after %d attempts", target.name, message.title, attempt
                    )
                    break
                pause = backoff_s(attempt, config.retry_initial_s, config.retry_max_s)
                log.warning(
                    "%s: attempt %d failed (%s); again in %g s", target.name, attempt, error, pause
                )
                await asyncio.sleep(pause)  # wall time: the channel's outage is real

    def _record(self, target: Target, message: Message, attempt: int, error: str) -> None:
        self.producer.send(
            AlertDelivery(
                channel=target.name,
                kind=message.kind,
                outcome="failed" if error else "sent",
                attempt=attempt,
                code=message.code,
                severity=message.severity,
                alerts=message.alerts,
                subject=message.subject,
                title=message.title[:500],
                error=error,
            )
        )
        failing = self.tally.failing
        if error:
            self.tally.failed += 1
            failing[target.name] += 1
            if failing[target.name] == self.config.down_after:
                self.producer.send(
                    Alert(
                        severity="error",
                        code=CHANNEL_DOWN,
                        subject=target.name,
                        message=f"alert channel {target.name}: {failing[target.name]} sends "
                        f"failed in a row, retrying; the last: {error}"[:2000],
                    )
                )
            return
        self.tally.sent += 1
        log.info("%s: sent %s", target.name, message.title)
        if failing[target.name] >= self.config.down_after:
            self.producer.send(
                AlertResolved(
                    code=CHANNEL_DOWN,
                    severity="error",
                    subject=target.name,
                    message=f"alert channel {target.name} delivers again",
                )
            )
        failing[target.name] = 0
