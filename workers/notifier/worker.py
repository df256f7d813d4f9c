"""The ``notifier`` daemon: every alert reaches the channels that take it, at least once.

Alerts come from the feed and from database sweeps (at start-up and every ``sweep_s``: those
of the last ``lookback_s`` without a sent message), so a kill between commit and delivery
still delivers. `workers.notifier.messages.Grouper` decides what goes out when; each target
has its own queue and sender, retried with doubling backoff, each attempt an `AlertDelivery`
event. A database outage does not stop the feed's alerts (`AlertNotifier` states the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bus.events import Alert, AlertAcked, AlertDelivery, AlertResolved
from bus.feed import FeedSubscriber
from bus.producer import Producer
from observer.alerts.states import Notice, alert_id, alert_states, delivered_channels, notices_of
from observer.calendar.clock import Clock
from observer.cluster.transport import feed_subscriber
from observer.config.tree import Settings
from observer.db.engine import error_reason
from observer.db.queries import AlertRecords, alert_records, open_alert_records
from observer.db.readers import reader_engine
from observer.errors import StoreError
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.process.retry import Backoff, backoff_s
from observer.runtime import AsyncWorker, alongside, beat_forever
from workers.notifier.channels import ChannelTarget, env_name
from workers.notifier.messages import Grouper, Message, summarize
from workers.notifier.queues import TargetQueue

__all__ = ["CHANNEL_DOWN", "AlertNotifier"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_POLL_S = 0.05  # wall seconds between looks at the feed and the grouper
CHANNEL_DOWN = "notify_channel_down"  # the alert code of a target failing down_after times
# How long the start waits for the database before it follows the feed (as long as the CLI
# waits for the writer to store an earlier run's deliveries).
_START_WAIT_S = 60.0


@dataclass
class DeliveryCounters:
    """What the heartbeats report."""

    sent: int = 0
    failed: int = 0
    failing: Counter[str] = field(default_factory=Counter)  # target -> failures in a row
    sweep_failures: int = 0  # sweeps the database failed, since the start


@dataclass(frozen=True, slots=True)
class _Stored:
    """What a sweep read: the last ``lookback_s`` of records, and every open alert."""

    records: AlertRecords
    open_alerts: list[Notice]


class AlertNotifier(AsyncWorker):
    """One notifier process over its targets.

    ``down_after`` failed sends in a row raise ``notify_channel_down`` (an error alert, carried
    by the other channels), resolved by the next success; a channel still alerted down at the
    start counts as down from the start. A message still failing ``lookback_s`` after it was
    made is given up: it and what waits behind it become one summary
    (`workers.notifier.messages.summarize`), so a channel back after a long outage gets where
    each condition stands; a reminder replaces the one of its condition still waiting
    (`workers.notifier.queues`).

    Every sweep reminds about the critical alerts the database holds open, whatever their age
    (an ack's feed message may be dropped). A failed sweep is logged, counted
    (``sweep_failures``; ``failing_s`` while they last, so ``ctl status`` is unhealthy) and
    retried on a backoff up to ``sweep_s``. The start-up sweep is waited for up to
    ``_START_WAIT_S``; then the feed is followed and each sweep is a start-up sweep until one
    succeeds. A channel without a URL sends nowhere: outside the simulator (whose demo
    ``default`` channel has none) it is counted (``channels_without_url``) and the notifier
    reports ``failing_s`` until restarted with one.
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        producer: Producer,
        notifier: Heartbeat,
        stop: asyncio.Event,
        targets: list[ChannelTarget],
    ) -> None:
        super().__init__(settings, clock, producer, notifier, stop)
        self.config = settings.notifier
        self.targets = targets
        self.grouper = Grouper(self.config.group_s, self.config.repeat_s, self.config.remind_s)
        self.queues: dict[str, TargetQueue] = {t.name: TargetQueue() for t in targets}
        self.seen: dict[str, float] = {}  # notice id -> when taken in (monotonic)
        self.tally = DeliveryCounters()
        self._engine: Engine = reader_engine(settings.database, "notifier")
        self._started = time.monotonic()
        # Sweeps the database fails are tried again on this curve, at most sweep_s apart.
        self._sweeps = Backoff(self.config.retry_initial_s, self.config.sweep_s)
        self._next_sweep = 0.0  # monotonic
        self._swept_once = False  # until the start-up sweep succeeds, every sweep is one
        # A channel without a URL sends nowhere; in the simulator that is no fault.
        with_url = {t.channel for t in targets}
        self.without_url = (
            []
            if settings.kis.environment == "sim"
            else [name for name in self.config.channels if name not in with_url]
        )

    def counters(self) -> dict[str, float]:
        """The heartbeat's counters."""
        # Failing since the start without a URL (only a restart with the URLs mends it),
        # or since the first of the sweeps the database failed in a row.
        failing = [self._sweeps.failing_s()] if self._sweeps.failures else []
        if self.without_url:
            failing.append(time.monotonic() - self._started)
        return {
            "targets": len(self.targets),
            "sent": self.tally.sent,
            "failed": self.tally.failed,
            "queued": sum(q.qsize() for q in self.queues.values()),
            "held": self.grouper.held,
            "open_critical": self.grouper.open_critical,
            "targets_down": sum(1 for n in self.tally.failing.values() if n),
            "channels_without_url": len(self.without_url),
            "sweep_failures": self.tally.sweep_failures,
            FAILING_S: max(round(max(failing), 1), 0.1) if failing else 0.0,
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
        feed = feed_subscriber(self.settings.bus, self.settings.paths.run, ["alert"])
        try:
            # A sender or the heartbeat that fails ends the process (and is restarted); the
            # heartbeat runs from the start, so a start waiting for the database says so.
            async with alongside(
                beat_forever(self.notifier, self.counters), *(self._serve(t) for t in self.targets)
            ):
                await self._start()
                log.info(
                    "notifier ready: %d targets (%s), %d alerts to send",
                    len(self.targets),
                    ", ".join(t.name for t in self.targets),
                    self.grouper.held,
                )
                if self.config.started_alert:
                    names = ", ".join(t.name for t in self.targets) or "no channel"
                    self.producer.send(
                        Alert(
                            severity="info",
                            code="notifier_started",
                            message=f"alerts go to {names}",
                        )
                    )
                await self._follow(feed)
        finally:
            feed.close()
            self._engine.dispose()

    async def _start(self) -> None:
        """The start-up sweep, tried again while the database fails, up to _START_WAIT_S.

        Before the feed: an alert stored while no notifier ran then goes out before a
        resolution of it the feed brings.
        """
        deadline = time.monotonic() + _START_WAIT_S
        while not await self._try_sweep() and not self.stop.is_set():
            if time.monotonic() >= deadline:
                log.error(
                    "the alerts stored could not be read for %g s: following the feed, "
                    "and reading them again at each sweep",
                    _START_WAIT_S,
                )
                return
            with contextlib.suppress(TimeoutError):  # wall time, ended early by stop
                await asyncio.wait_for(self.stop.wait(), self._next_sweep - time.monotonic())

    async def _follow(self, feed: FeedSubscriber) -> None:
        while not self.stop.is_set():
            self._drain(feed)
            if time.monotonic() >= self._next_sweep:
                await self._try_sweep()
            self._dispatch(time.monotonic())
            await asyncio.sleep(_POLL_S)

    async def _try_sweep(self) -> bool:
        """A sweep (a start-up sweep until one succeeds); False if the database failed it.

        The database is read in a thread, so the heartbeat and the senders go on while a
        read waits for a connection; the feed is drained before and after, never during,
        so whatever the feed brought before the read is in what it read.
        """
        try:
            stored = await asyncio.to_thread(self._read)
        except (StoreError, SQLAlchemyError) as exc:
            self.tally.sweep_failures += 1
            pause = self._sweeps.failed()
            self._next_sweep = time.monotonic() + pause
            log.warning(
                "reading the alerts stored failed (%s); again in %.1f s",
                error_reason(exc),
                pause,
            )
            return False
        self._sweeps.succeeded()
        self._apply(stored, start=not self._swept_once)
        return True

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
        """Read the database and take in what it holds (`_try_sweep` without the thread)."""
        self._apply(self._read(), start=start)

    def _read(self) -> _Stored:
        """The last ``lookback_s`` of alert records, and every alert open, whatever its age."""
        since = self.clock.now_ns() - int(self.config.lookback_s * _NS)
        with self._engine.connect() as conn:
            records = alert_records(conn, since)
            still_open = alert_states(open_alert_records(conn, deliveries=False))
        return _Stored(records, [s.notice for s in still_open])

    def _apply(self, stored: _Stored, *, start: bool) -> None:
        """Alerts and resolutions that a routed target has not been sent; open alerts."""
        records, still_open = stored.records, stored.open_alerts
        sent = delivered_channels(records)
        now = time.monotonic()
        resolutions = notices_of(records.resolutions, "resolved")
        alerts = [s for s in alert_states(records) if s.state != "acked"]
        for notice in sorted([s.notice for s in alerts] + resolutions, key=lambda n: n.produced_ns):
            routed = {t.name for t in self.targets if t.wants(notice.code, notice.severity)}
            missing = routed - sent.get(notice.id, set())
            if missing:  # only where it is missing; as a new alert when that is everywhere
                self._take(notice, None if missing == routed else frozenset(missing))
        # The stored state wins: reminders about every critical alert open, whatever its age
        # (a restart, or an alert a resolution of another host's did not end), and about no
        # other (an ack or a resolution the feed dropped ends them).
        critical = [notice for notice in still_open if notice.severity == "critical"]
        self.grouper.open_in_store(critical, now)
        if start:
            for notice in [s.notice for s in alerts] + resolutions + still_open:
                self.seen.setdefault(notice.id, now)
            self._still_down(still_open)
            self._swept_once = True
        self._next_sweep = now + self.config.sweep_s
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

    async def _serve(self, target: ChannelTarget) -> None:
        """Send the target's messages in order, each until it goes out.

        One failing past ``lookback_s`` from when it was made is given up: it and the
        messages behind it become one summary, which takes in those queued meanwhile
        before each further try. A reminder being retried gives way to a newer one (the
        give-up still counts from the first: an alert may wait behind it).
        """
        queue = self.queues[target.name]
        config = self.config
        while True:
            message = await queue.get()
            oldest = message.made_at  # the queue's order: what waits behind is younger
            attempt = 0
            summing_up = False
            while True:
                if summing_up and (waiting := queue.take_all()):  # came during the pause
                    message = summarize([message, *waiting], time.monotonic(), config.lookback_s)
                    attempt = 0
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
                # Paced by the target's failures in a row, whichever message is tried.
                failures = self.tally.failing[target.name]
                pause = backoff_s(failures, config.retry_initial_s, config.retry_max_s)
                log.warning(
                    "%s: attempt %d failed (%s); again in %g s", target.name, attempt, error, pause
                )
                now = time.monotonic()
                if not summing_up and now - oldest > config.lookback_s:
                    log.error(
                        "%s: giving up on %s after %d attempts; it and what waits behind it "
                        "go as one summary",
                        target.name,
                        message.title,
                        attempt,
                    )
                    summing_up = True
                    message = summarize([message, *queue.take_all()], now, config.lookback_s)
                    attempt = 0
                elif not summing_up and (newer := queue.take_newer(message)) is not None:
                    message, attempt = newer, 0
                await asyncio.sleep(pause)  # wall time: the channel's outage is real

    def _record(self, target: ChannelTarget, message: Message, attempt: int, error: str) -> None:
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
