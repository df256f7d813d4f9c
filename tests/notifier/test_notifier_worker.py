"""The notifier's worker without processes: its sweeps and heartbeat over a real database.

A notifier started while a channel is alerted down resolves that alert with the channel's
next success (and raises no second one while it still fails); every sweep ends the reminders
of an alert acknowledged in the database, whether or not the feed brought the ack; a
channel without a URL outside the simulator makes the notifier's heartbeat say it fails its
work, which ``observer ctl status`` shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertAcked, AlertDelivery, AlertResolved, Event
from bus.producer import Producer
from observer.alerts.settings import ChannelSettings
from observer.alerts.states import alert_states
from observer.calendar.clock import ManualClock
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.queries import alert_records
from observer.process.heartbeat import FAILING_S, Heartbeat
from observer.supervisor.commands import problems
from observer.writer.store import Store
from tests.support import beating
from workers.notifier.channels import ChannelTarget
from workers.notifier.messages import Message
from workers.notifier.worker import AlertNotifier

_S = 1_000_000_000
NOW = time.time_ns()
CHANNEL_DOWN = "notify_channel_down"


class Bus:
    """The worker's producer: each event it sends is committed at once, as the writer would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sent: list[Event] = []
        self.seqs: dict[str, int] = {}

    def commit(self, source: str, event: Event, at: int) -> str:
        seq = self.seqs[source] = self.seqs.get(source, 0) + 1
        self.store.apply([decode_parts(encode_frame([Envelope(source, seq, at, event)]))])
        return f"{source}:{seq}"

    def send(self, event: Event) -> int:
        self.sent.append(event)
        self.commit("notifier", event, NOW + len(self.sent))
        return len(self.sent)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    store = Store(engine)
    store.load_marks()
    yield store
    engine.dispose()


def settings_for(tmp_path: Path, store: Store, environment: str = "real") -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[kis]\nenvironment = "{environment}"\n')
    return load_settings(config)


def target(name: str) -> ChannelTarget:
    return ChannelTarget(name, name, ChannelSettings(), None)  # sends nothing: _record is driven


def worker(settings: Settings, bus: Bus, *targets: ChannelTarget) -> AlertNotifier:
    producer = cast(Producer, bus)
    return AlertNotifier(
        settings, ManualClock(NOW), producer, Heartbeat(None), asyncio.Event(), list(targets)
    )


MESSAGE = Message("alert", "disk_slow", "warning", "", ("x:1",), "[WARNING] disk_slow", "body")


def channel_down(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (type(e).__name__, e.subject)
        for e in events
        if isinstance(e, Alert | AlertResolved) and e.code == CHANNEL_DOWN
    ]


def states(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        found = alert_states(alert_records(conn, 0))
    return {f"{s.notice.code}({s.notice.subject})": s.state for s in found}


def test_a_channel_alerted_down_before_a_restart_is_resolved_by_its_next_success(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    ops, mail = target("ops"), target("mail")
    first = worker(settings, bus, ops, mail)
    first._sweep(start=True)
    for attempt in range(1, settings.notifier.down_after + 1):  # ops is down
        first._record(ops, MESSAGE, attempt, "connection refused")
    # An instance before renamed its targets: a channel down that is no target now.
    bus.commit(
        "notifier", Alert(severity="error", code=CHANNEL_DOWN, subject="gone", message="x"), NOW
    )
    assert channel_down(bus.sent) == [("Alert", "ops")]

    # The notifier restarts while ops is still down: ops counts as down from the start.
    second = worker(settings, bus, ops, mail)
    second._sweep(start=True)
    assert second.counters()["targets_down"] == 1
    for attempt in range(1, 2 * settings.notifier.down_after):  # no second alert
        second._record(ops, MESSAGE, attempt, "connection refused")
    second._record(mail, MESSAGE, 1, "")  # another channel's success resolves nothing
    assert channel_down(bus.sent) == [("Alert", "ops")]
    second._record(ops, MESSAGE, 1, "")  # ops delivers again
    assert channel_down(bus.sent) == [("Alert", "ops"), ("AlertResolved", "ops")]
    assert second.counters()["targets_down"] == 0
    assert states(store) == {f"{CHANNEL_DOWN}(ops)": "resolved", f"{CHANNEL_DOWN}(gone)": "open"}

    # The next instance finds nothing down: a success resolves nothing more.
    third = worker(settings, bus, ops, mail)
    third._sweep(start=True)
    third._record(ops, MESSAGE, 1, "")
    assert len(channel_down(bus.sent)) == 2 and third.counters()["targets_down"] == 0


def test_an_ack_the_feed_dropped_ends_the_reminders_at_the_next_sweep(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    critical = Alert(severity="critical", code="feed_dead", subject="a1", message="no ticks")
    alert = bus.commit("track_a", critical, NOW - 60 * _S)
    delivered = AlertDelivery(
        channel="ops",
        kind="alert",
        outcome="sent",
        attempt=1,
        code="feed_dead",
        severity="critical",
        alerts=(alert,),
    )
    bus.commit("notifier", delivered, NOW - 59 * _S)
    notifier = worker(settings, bus, target("ops"))
    notifier._sweep(start=True)
    assert notifier.grouper.open_critical == 1  # sent already: reminded
    remind_s = settings.notifier.remind_s
    assert [m.kind for m in notifier.grouper.due(time.monotonic() + remind_s + 1)] == ["reminder"]

    # Acknowledged: stored, and the feed's message to the notifier lost (PUB/SUB drops).
    bus.commit("operator", AlertAcked(alert_source="track_a", alert_seq=1, by="ops"), NOW)
    notifier._sweep(start=False)
    assert notifier.grouper.open_critical == 0
    later = time.monotonic() + 10 * remind_s
    assert notifier.grouper.due(later) == []


def test_a_channel_without_a_url_is_a_failing_notifier_outside_the_simulator(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    real = settings_for(tmp_path, store)  # the shipped [notifier.channels.default]
    assert list(real.notifier.channels) == ["default"]
    counters = worker(real, bus).counters()  # OBSERVER_NOTIFY_DEFAULT_URLS was not passed
    assert counters["channels_without_url"] == 1 and counters[FAILING_S] > 0
    # `observer ctl status` names it, as it does the writer failing its commits.
    [problem] = problems([beating("notifier", counters)], lambda _: True)
    assert problem.startswith("notifier: failing its work")
    # With its URL, the channel is a target: healthy.
    fine = worker(
        real, bus, ChannelTarget("default", "default", ChannelSettings(), None)
    ).counters()
    assert fine["channels_without_url"] == 0 and fine[FAILING_S] == 0
    # The simulator (the demo: the shipped configuration, no URL) is not judged.
    sim = worker(settings_for(tmp_path, store, "sim"), bus).counters()
    assert sim["channels_without_url"] == 0 and sim[FAILING_S] == 0


def test_a_restarted_notifier_reminds_an_open_critical_alert_whatever_its_age(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    ops = target("ops")
    old_ns = NOW - 10 * 86400 * _S  # ten days open: beyond the sweep's lookback_s (a day)
    assert settings.notifier.lookback_s < 10 * 86400
    critical = Alert(severity="critical", code="feed_dead", subject="a1", message="no ticks")
    bus.commit("track_a", critical, old_ns)
    down = Alert(severity="error", code=CHANNEL_DOWN, subject="ops", message="x")
    bus.commit("notifier", down, old_ns + _S)

    notifier = worker(settings, bus, ops)
    notifier._sweep(start=True)
    assert notifier.grouper.open_critical == 1  # reminded, though not sent again
    assert notifier.grouper.due(time.monotonic() + 1) == []
    remind_s = settings.notifier.remind_s
    [reminder] = notifier.grouper.due(time.monotonic() + remind_s + 1)
    assert reminder.kind == "reminder" and reminder.code == "feed_dead"
    assert notifier.counters()["targets_down"] == 1  # ops' ten-day-old alert is taken over
    notifier._record(ops, MESSAGE, 1, "")
    assert channel_down(bus.sent) == [("AlertResolved", "ops")]
