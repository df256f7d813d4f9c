"""Alerts of several hosts: a resolution ends only what the host rule lets it end.

Between two named hosts, host c2's "track_b is running again" leaves host c1's
``program_fatal`` open: its reminders go on, its messages say which host, and the sweeps
remind about every critical alert the database holds open. A resolution waits for every
alert it ends that is still to be sent to a target it goes to, whatever the targets of
each (a restart resends an alert to one channel, the resolution to all).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, AlertDelivery, AlertResolved
from observer.alerts.states import Notice, ends
from observer.writer.store import Store
from tests.notifier.test_notifier_worker import _S, NOW, Bus, settings_for, target, worker
from workers.notifier.messages import Grouper, Message
from workers.notifier.worker import AlertNotifier

GROUP_S, REPEAT_S, REMIND_S = 10.0, 60.0, 100.0
SOURCES = ["sup", "sup@c1", "sup@c2"]  # an unnamed host and two named ones

step = st.one_of(
    st.tuples(st.just("alert"), st.sampled_from(SOURCES), st.sampled_from(["error", "critical"])),
    st.tuples(st.just("resolved"), st.sampled_from(SOURCES), st.just("critical")),
    st.tuples(st.just("wait"), st.floats(0, 150)),
)


@given(st.lists(step, max_size=40))
def test_a_resolution_ends_the_reminders_and_waits_for_the_alerts_the_host_rule_says(
    steps: list[tuple[Any, ...]],
) -> None:
    grouper = Grouper(GROUP_S, REPEAT_S, REMIND_S)
    now = 0.0
    seqs: Counter[str] = Counter()
    added: list[Notice] = []
    out: list[Message] = []
    for action, *args in steps:
        if action == "wait":
            now += args[0]
        else:
            source, severity = args
            seqs[source] += 1
            notice = Notice(
                f"{source}:{seqs[source]}", action, int(now * 1e9), severity, "fatal", "x", "m"
            )
            added.append(notice)
            grouper.add(notice, now)
        out += grouper.due(now)
    now += GROUP_S + REPEAT_S + 1
    out += grouper.due(now)

    by_id = {n.id: n for n in added}
    alerts = [n for n in added if n.kind == "alert"]
    resolutions = [n for n in added if n.kind == "resolved"]
    sent = [i for m in out if m.kind == "alert" for i in m.alerts if by_id[i].kind == "alert"]
    assert sorted(sent) == sorted(a.id for a in alerts)  # once each
    for index, message in enumerate(out):
        notices = [by_id[i] for i in message.alerts]
        assert {n.host for n in notices} == {message.host}  # one host's, and says which
        assert (f" on {message.host}" in message.title) == bool(message.host)
        if message.kind == "resolved":  # after the message of every alert it ends
            before = {i for m in out[:index] if m.kind == "alert" for i in m.alerts}
            ended = {a.id for a in alerts if any(ends(r, a) for r in notices)}
            assert ended <= before
    # Reminded: exactly the critical alerts no resolution ends, by the host rule.
    still_open = {
        a.id
        for a in alerts
        if a.severity == "critical" and not any(ends(r, a) for r in resolutions)
    }
    reminders = grouper.due(now + REMIND_S + 1)
    assert all(m.kind == "reminder" for m in reminders)
    assert {i for m in reminders for i in m.alerts} == still_open


def _feed(
    notifier: AlertNotifier, bus: Bus, source: str, event: Alert | AlertResolved, at: int
) -> str:
    """Commit ``event`` and hand it to the notifier as the feed would."""
    ident = bus.commit(source, event, at)
    kind: Literal["alert", "resolved"] = "resolved" if isinstance(event, AlertResolved) else "alert"
    notice = Notice(ident, kind, at, event.severity, event.code, event.subject, event.message)
    notifier._take(notice, None)
    return ident


def test_another_hosts_resolution_leaves_the_alert_open_and_reminded(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    notifier = worker(settings, bus, target("ops"))
    notifier._sweep(start=True)

    def fatal(message: str) -> Alert:
        return Alert(severity="critical", code="program_fatal", subject="track_b", message=message)

    c1 = _feed(notifier, bus, "supervisor@c1", fatal("c1"), NOW - 30 * _S)
    _feed(notifier, bus, "supervisor@c2", fatal("c2"), NOW - 20 * _S)
    back = AlertResolved(
        severity="critical", code="program_fatal", subject="track_b", message="track_b@c2 is back"
    )
    _feed(notifier, bus, "supervisor@c2", back, NOW - 10 * _S)
    notifier._sweep(start=False)
    assert notifier.grouper.open_critical == 1

    start = time.monotonic()
    sent = notifier.grouper.due(start + settings.notifier.group_s + 1)
    assert [(m.kind, m.title) for m in sent] == [
        ("alert", "[CRITICAL] program_fatal (track_b) on c1"),
        ("alert", "[CRITICAL] program_fatal (track_b) on c2"),
        ("resolved", "[RESOLVED] program_fatal (track_b) on c2"),
    ]
    [reminder] = notifier.grouper.due(start + 2 * settings.notifier.remind_s)
    assert reminder.title == "[CRITICAL, STILL OPEN] program_fatal (track_b) on c1"
    assert reminder.alerts == (c1,)


def test_every_sweep_reminds_about_the_critical_alerts_the_database_holds_open(
    tmp_path: Path, store: Store
) -> None:
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    notifier = worker(settings, bus, target("ops"))
    notifier._sweep(start=True)
    fatal = Alert(severity="critical", code="feed_dead", subject="a1", message="no ticks")
    ident = _feed(notifier, bus, "track_a@c1", fatal, NOW - 30 * _S)
    notifier.grouper.acked(ident)  # its tracking lost (as another host's resolution did)
    assert notifier.grouper.open_critical == 0
    notifier._sweep(start=False)
    assert notifier.grouper.open_critical == 1


def test_a_resolution_waits_for_its_alert_resent_to_one_channel(
    tmp_path: Path, store: Store
) -> None:
    """A restart: the alert reached ops but not mail, and its condition ended meanwhile."""
    bus = Bus(store)
    settings = settings_for(tmp_path, store)
    cpu = Alert(severity="error", code="cpu_high", subject="track_b", message="cpu 97%")
    alert = bus.commit("supervisor", cpu, NOW - 120 * _S)
    for channel, error in (("ops", ""), ("mail", "timeout")):
        delivery = AlertDelivery(
            channel=channel,
            kind="alert",
            outcome="failed" if error else "sent",
            attempt=1,
            code="cpu_high",
            severity="error",
            alerts=(alert,),
            error=error,
        )
        bus.commit("notifier", delivery, NOW - 110 * _S)
    back = AlertResolved(severity="error", code="cpu_high", subject="track_b", message="cpu ok")
    bus.commit("supervisor", back, NOW - 60 * _S)

    notifier = worker(settings, bus, target("ops"), target("mail"))
    notifier._sweep(start=True)
    start = time.monotonic()
    for later in (0.1, settings.notifier.group_s + 1):
        notifier._dispatch(start + later)
    order: dict[str, list[str]] = {name: [] for name in notifier.queues}
    for name, queue in notifier.queues.items():
        while not queue.empty():
            order[name].append(queue.get_nowait().kind)
    assert order == {"ops": ["resolved"], "mail": ["alert", "resolved"]}
