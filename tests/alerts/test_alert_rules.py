"""Alerts without processes: grouping and reminders (properties), routing, channel URLs and
their secrets, alert states, and the supervisor's threshold rules (and the rules whose
heartbeat counter their program does not report: with processes in test_rule_counters.py)."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, Event
from observer.alerts.book import AlertBook
from observer.alerts.settings import ChannelSettings, NotifierSettings, ThresholdRule
from observer.alerts.states import Notice, alert_states, parse_alert_id
from observer.config.load import load_settings
from observer.db.queries import AlertRecords
from observer.errors import ConfigError
from observer.process.logs import mask_secrets
from observer.supervisor.program import State
from observer.supervisor.rule_counters import RULE_METRIC_UNKNOWN, RuleCounters
from observer.supervisor.rules import Rules, metrics_of
from observer.writer.store import Store
from workers.notifier.channels import ChannelTarget, channel_urls, targets_from
from workers.notifier.messages import Grouper, Message

GROUP_S, REPEAT_S, REMIND_S = 10.0, 60.0, 100.0
MAIL = "mailto://127.0.0.1:2525?mode=insecure&from=observer@example.com"

step = st.one_of(
    st.tuples(
        st.just("alert"),
        st.sampled_from("ab"),
        st.sampled_from(["warning", "critical"]),
        st.sampled_from(["", "x"]),
    ),
    st.tuples(
        st.just("resolve"), st.sampled_from("ab"), st.just("critical"), st.sampled_from(["", "x"])
    ),
    st.tuples(st.just("ack"), st.integers(0, 30)),
    st.tuples(st.just("wait"), st.floats(0, 150)),
)


def notice(n: int, kind: str, code: str, severity: str, subject: str, at: float) -> Notice:
    return Notice(f"t:{n}", kind, int(at * 1e9), severity, code, subject, f"m{n}")  # type: ignore[arg-type]


@given(st.lists(step, max_size=40))
def test_every_alert_is_in_exactly_one_message_and_repeats_are_spaced(
    steps: list[tuple[Any, ...]],
) -> None:
    grouper = Grouper(GROUP_S, REPEAT_S, REMIND_S)
    now, n = 0.0, 0
    added: list[Notice] = []
    out: list[tuple[float, Message]] = []
    open_after: dict[tuple[str, str], float] = {}  # condition -> when it stopped being open
    for action, *args in steps:
        if action == "wait":
            now += args[0]
        elif action == "ack":
            alerts = [a for a in added if a.kind == "alert"]
            if alerts:
                chosen = alerts[args[0] % len(alerts)]
                grouper.acked(chosen.id)
        else:
            n += 1
            kind = "alert" if action == "alert" else "resolved"
            added.append(notice(n, kind, args[0], args[1], args[2], now))
            grouper.add(added[-1], now)
            if kind == "resolved":
                open_after[(args[0], args[2])] = now
        out += [(now, m) for m in grouper.due(now)]
    now += GROUP_S + REPEAT_S + 1
    out += [(now, m) for m in grouper.due(now)]

    by_id = {a.id: a for a in added}
    alert_messages = [(at, m) for at, m in out if m.kind == "alert"]
    covered = sorted(i for _, m in alert_messages for i in m.alerts if by_id[i].kind == "alert")
    assert covered == sorted(a.id for a in added if a.kind == "alert")  # once each
    resolutions = sorted(a.id for a in added if a.kind == "resolved")
    told = sorted(i for _, m in out for i in m.alerts if by_id[i].kind == "resolved")
    assert told == resolutions  # in a resolved message, or in the alert message that followed
    assert all(
        by_id[i].kind == "resolved" for _, m in out if m.kind == "resolved" for i in m.alerts
    )
    last: dict[tuple[str, str, str], float] = {}
    for at, m in alert_messages:
        alerts = [by_id[i] for i in m.alerts if by_id[i].kind == "alert"]
        assert {(a.code, a.severity, a.subject) for a in alerts} == {
            (m.code, m.severity, m.subject)
        }
        key = (m.code, m.severity, m.subject)
        assert at - last.get(key, -REPEAT_S) >= REPEAT_S  # one per condition per repeat_s
        assert at >= alerts[0].produced_ns / 1e9 + GROUP_S  # the group's window passed
        last[key] = at
    # A resolution goes out after the messages of the alerts it follows.
    for index, (_, m) in enumerate(out):
        if m.kind == "resolved":
            resolution = by_id[m.alerts[0]]
            earlier = [
                a.id
                for a in added[: added.index(resolution)]
                if a.kind == "alert" and a.condition == resolution.condition
            ]
            sent_before = {i for _, msg in out[:index] if msg.kind == "alert" for i in msg.alerts}
            assert set(earlier) <= sent_before
    for _at, m in out:
        if m.kind == "reminder":
            assert m.severity == "critical" and m.alerts
            assert all(by_id[i].severity == "critical" for i in m.alerts)


def test_fifty_identical_warnings_are_one_message_with_their_count() -> None:
    grouper = Grouper(GROUP_S, REPEAT_S, REMIND_S)
    for n in range(50):
        grouper.add(notice(n, "alert", "disk", "warning", "", n * 0.1), n * 0.1)
    assert grouper.due(9.0) == []  # the window is still open
    [message] = grouper.due(10.0)
    assert message.title == "[WARNING] disk x50" and len(message.alerts) == 50
    grouper.add(notice(99, "alert", "disk", "warning", "", 20.0), 20.0)
    assert grouper.due(69.0) == []  # repeat_s after the last message
    [again] = grouper.due(70.0)
    assert again.alerts == ("t:99",)


def test_an_open_critical_is_reminded_until_acknowledged_or_resolved() -> None:
    grouper = Grouper(GROUP_S, REPEAT_S, REMIND_S)
    grouper.add(notice(1, "alert", "fatal", "critical", "track_a", 0.0), 0.0)
    [_first] = grouper.due(10.0)
    assert grouper.due(109.0) == []
    [reminder] = grouper.due(110.0)
    assert reminder.kind == "reminder" and reminder.alerts == ("t:1",)
    assert "observer alerts ack t:1" in reminder.body
    grouper.acked("t:1")
    assert grouper.due(1000.0) == [] and grouper.open_critical == 0
    grouper.add(notice(2, "alert", "fatal", "critical", "track_a", 1000.0), 1000.0)
    grouper.add(notice(3, "resolved", "fatal", "critical", "track_a", 1001.0), 1001.0)
    assert grouper.due(1001.0) == []  # the resolution waits for the alert held back
    alert, resolution = grouper.due(1010.0)  # which goes first, then its end
    assert (alert.kind, resolution.kind) == ("alert", "resolved")
    assert grouper.due(5000.0) == []


def test_alert_states(tmp_path: Path) -> None:
    records = AlertRecords(
        alerts=[
            ("sup", 1, 100, "critical", "program_fatal", "track_a", "FATAL"),
            ("sup", 2, 200, "warning", "cpu_high", "", "hot"),
            ("sup", 3, 300, "critical", "program_fatal", "track_b", "FATAL"),
            ("sup", 4, 400, "info", "backup_made", "", "ok"),
            ("sup", 6, 600, "critical", "program_fatal", "track_a", "FATAL again"),
        ],
        resolutions=[("sup", 5, 500, "critical", "program_fatal", "track_a", "running")],
        acks=[("sup", 2, 250, "ops")],
        deliveries=[
            ("hook", "alert", "sent", ["sup:1", "sup:3"], 150),
            ("mail", "alert", "failed", ["sup:1"], 150),
        ],
    )
    states = {s.notice.id: s for s in alert_states(records)}
    assert {i: s.state for i, s in states.items()} == {
        "sup:1": "resolved",
        "sup:2": "acked",
        "sup:3": "open",
        "sup:4": "info",
        "sup:6": "open",
    }
    assert states["sup:1"].delivered == ("hook",) and states["sup:2"].acked_by == "ops"
    assert parse_alert_id("a:b:7") == ("a:b", 7)
    with pytest.raises(ValueError, match="not an alert id"):
        parse_alert_id("sup:x")


def test_routing_by_severity_and_code() -> None:
    def target(**routing: Any) -> ChannelTarget:
        return ChannelTarget("t", "t", ChannelSettings(**routing), None)

    assert not target().wants("x", "info") and target().wants("x", "warning")
    assert target(min_severity="critical").wants("x", "critical")
    assert not target(min_severity="error").wants("x", "warning")
    assert not target(codes=("a",)).wants("b", "critical") and target(codes=("a",)).wants(
        "a", "warning"
    )
    assert not target(exclude_codes=("a",)).wants("a", "critical")


def test_channel_urls_from_the_environment_or_an_owner_only_file(tmp_path: Path) -> None:
    token = "T0kenInPath-9f8e7d6c5b"
    channels = {"ops": ChannelSettings(), "mail": ChannelSettings()}
    file = tmp_path / "notify.toml"
    file.write_text(f'[channels]\nops = ["json://127.0.0.1:9/h/{token}", "ntfy://topic-a1b2c3"]\n')
    os.chmod(file, 0o644)
    settings = NotifierSettings(credentials_file=str(file), channels=channels)
    with pytest.raises(ConfigError, match="owner-only"):
        channel_urls(settings, {})
    os.chmod(file, stat.S_IRUSR | stat.S_IWUSR)
    urls = channel_urls(settings, {"OBSERVER_NOTIFY_MAIL_URLS": f"{MAIL} ntfy://t-zz99"})
    assert urls == {
        "ops": [f"json://127.0.0.1:9/h/{token}", "ntfy://topic-a1b2c3"],
        "mail": [MAIL, "ntfy://t-zz99"],
    }
    assert [t.name for t in targets_from(settings, urls)] == ["ops", "ops.2", "mail", "mail.2"]
    # A channel's first URL keeps its name when a second comes or goes: nothing is sent twice.
    one = {"ops": urls["ops"][:1], "mail": urls["mail"]}
    assert [t.name for t in targets_from(settings, one)] == ["ops", "mail", "mail.2"]
    # Registered: masked wherever they would be logged or put into an event.
    assert token not in mask_secrets(f"failed to send to json://127.0.0.1:9/h/{token}")
    assert "topic-a1b2c3" not in mask_secrets("ntfy topic-a1b2c3 unreachable")
    # The environment wins over the file; a channel the configuration lacks is refused.
    assert channel_urls(settings, {"OBSERVER_NOTIFY_OPS_URLS": "ntfy://x1y2z3"})["ops"] == [
        "ntfy://x1y2z3"
    ]
    file.write_text('[channels]\nother = ["ntfy://a"]\n')
    with pytest.raises(ConfigError, match=r"not in \[notifier.channels\]: other"):
        channel_urls(settings, {})
    file.write_text(f"channels = 'json://{token}'\n")
    with pytest.raises(ConfigError) as refused:
        channel_urls(settings, {})
    assert token not in str(refused.value)


def program(name: str, state: State, counters: dict[str, float], started: float) -> Any:
    return SimpleNamespace(name=name, state=state, counters=counters, started_at=started)


def test_threshold_rules_alert_once_and_resolve() -> None:
    sent: list[Event] = []
    rules = Rules(
        (
            ThresholdRule(code="gap_success_low", metric="gap_recovery.success_pct", below=95.0),
            ThresholdRule(code="slow", metric="universe.running_s", above=300.0),
            ThresholdRule(code="stale", metric="age_h.master_file", above=48.0, severity="error"),
        ),
        AlertBook(sent.append),
    )
    long_ago = time.monotonic() - 400
    gaps = program("gap_recovery", State.RUNNING, {"success_pct": 90.0}, 1.0)
    universe = program("universe", State.RUNNING, {}, long_ago)
    changes = rules.judge(metrics_of([gaps, universe], {"master_file": 50.0}))
    assert [(c.rule.code, c.breached) for c in changes] == [
        ("gap_success_low", True),
        ("slow", True),
        ("stale", True),
    ]
    assert changes[0].message == "gap_recovery.success_pct is below 95: 90"
    assert rules.judge(metrics_of([gaps, universe], {"master_file": 50.0})) == []  # once
    gaps.counters = {"success_pct": 99.0}
    universe.state = State.EXITED
    changes = rules.judge(metrics_of([gaps, universe], {}))  # no age: its rule stays as it was
    assert [(c.rule.code, c.breached) for c in changes] == [
        ("gap_success_low", False),
        ("slow", False),
    ]
    assert rules.alerts.conditions() == {("stale", ""): "error"}
    changes = rules.judge({"age_h.master_file": 1.0})
    assert [(c.rule.code, c.breached) for c in changes] == [("stale", False)]
    assert [(type(e).__name__, e.code, e.severity) for e in sent] == [  # type: ignore[union-attr]
        ("Alert", "gap_success_low", "warning"),
        ("Alert", "slow", "warning"),
        ("Alert", "stale", "error"),
        ("AlertResolved", "gap_success_low", "warning"),
        ("AlertResolved", "slow", "warning"),
        ("AlertResolved", "stale", "error"),
    ]


def test_every_enrichment_figure_read_is_a_metric() -> None:
    """Before, only coverage_pct was: a rule on another figure the file accepts never fired."""
    rule = ThresholdRule(code="calls", metric="enrichment.kis_calls.us", above=900.0)
    rules = Rules((rule,), AlertBook(lambda event: None))
    figures = {"kis_calls": 1000.0, "coverage_pct": 99.0, "age_h": 2.0}
    metrics = metrics_of([], {}, {"US": figures})
    assert metrics == {
        "enrichment.kis_calls.us": 1000.0,
        "enrichment.coverage_pct.us": 99.0,
        "enrichment.age_h.us": 2.0,
    }
    assert [c.rule.code for c in rules.judge(metrics)] == ["calls"]


def worker(kind: str, counters: dict[str, float]) -> Any:
    """A program as `RuleCounters` sees it: a run started, READY, beating."""
    return SimpleNamespace(
        kind=kind,
        state=State.RUNNING,
        counters=counters,
        started_at=1.0,
        ready_at=2.0,
        last_exit=None,
    )


def rule_alerts(events: list[Any]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.subject) for e in events if e.code == RULE_METRIC_UNKNOWN]


def test_a_rule_on_a_counter_a_daemon_never_reports_is_alerted_once_and_resolved() -> None:
    typo = ThresholdRule(code="gap_success_low", metric="gap_recovery.sucess_pct", below=95.0)
    rules = (
        typo,
        ThresholdRule(code="deep", metric="gap_recovery.queue_depth", above=100.0),
        ThresholdRule(code="long", metric="gap_recovery.running_s", above=100.0),  # not a counter
        ThresholdRule(code="stale", metric="age_h.master_file", above=48.0),
    )
    gaps = worker("daemon", {"success_pct": 40.0, "queue_depth": 1.0})
    check = RuleCounters(rules, {"gap_recovery": gaps})
    assert set(check.watched) == {"gap_success_low", "deep"}
    for _ in range(5):  # the READY's counters: seen again, they are no new beat
        check.observe()
        assert check.judge() == []
    gaps.counters = {"success_pct": 40.0, "queue_depth": 1.0}  # one beat after READY
    for _ in range(5):
        check.observe()
        assert check.judge() == []
    gaps.counters = {"success_pct": 40.0, "queue_depth": 2.0}  # the second
    check.observe()
    events = check.judge()
    assert rule_alerts(events) == [("Alert", "gap_success_low")]
    alert = events[0]
    assert isinstance(alert, Alert) and alert.severity == "warning"
    assert alert.message == (
        "rule gap_success_low: gap_recovery reports no counter 'sucess_pct', so "
        "gap_recovery.sucess_pct is never judged (it reports queue_depth, success_pct)"
    )
    check.observe()
    assert check.judge() == []  # once
    gaps.counters = {"success_pct": 40.0, "queue_depth": 2.0, "sucess_pct": 1.0}
    check.observe()
    assert rule_alerts(check.judge()) == [("AlertResolved", "gap_success_low")]


def test_a_counter_a_session_reports_late_in_its_run_is_not_alerted() -> None:
    """Track B beats from its READY at warmup; its context sync comes at full operation."""
    rules = (
        ThresholdRule(code="context_sync_slow", metric="track_b.context_sync_s", above=30.0),
        ThresholdRule(code="typo", metric="track_b.context_sync", above=30.0),
    )
    track_b = worker("session", {})
    check = RuleCounters(rules, {"track_b": track_b})
    for beat in range(50):
        track_b.counters = {"capacity_per_account": 40.0, "bus_pending": float(beat)}
        check.observe()
        assert check.judge() == []
    track_b.counters = {"capacity_per_account": 40.0, "context_sync_s": 3.2}
    check.observe()
    assert check.judge() == []
    track_b.state, track_b.last_exit = State.STOPPED, 0  # the end of its phases: all shown
    check.observe()
    assert rule_alerts(check.judge()) == [("Alert", "typo")]
    # The next day's run: what it reported before is still known.
    track_b.state, track_b.started_at, track_b.counters = State.RUNNING, 9.0, {"x": 1.0}
    check.observe()
    assert check.judge() == []


def test_a_jobs_counters_are_judged_when_a_run_ends_well() -> None:
    rules = (ThresholdRule(code="kr_low", metric="enrich.kr_success_pct", below=90.0),)
    enrich = worker("job", {"regions": 1.0})
    check = RuleCounters(rules, {"enrich": enrich})
    enrich.state, enrich.last_exit = State.BACKOFF, 1  # a run that failed shows nothing
    check.observe()
    assert check.judge() == []
    enrich.state, enrich.last_exit = State.EXITED, 0
    check.observe()
    assert rule_alerts(check.judge()) == [("Alert", "kr_low")]
    enrich.state, enrich.started_at = State.RUNNING, 5.0
    enrich.counters = {"regions": 1.0, "kr_success_pct": 97.0}  # the final beat of a later run
    check.observe()
    assert rule_alerts(check.judge()) == [("AlertResolved", "kr_low")]


def test_the_alerts_of_a_predecessor_are_taken_over_or_resolved() -> None:
    rules = (ThresholdRule(code="typo", metric="gap_recovery.sucess_pct", below=95.0),)
    gaps = worker("daemon", {"success_pct": 40.0})
    check = RuleCounters(rules, {"gap_recovery": gaps})
    left = ["typo", "corrected"]
    check.alerts.take_over(
        Notice(f"supervisor:{n}", "alert", n, "warning", RULE_METRIC_UNKNOWN, code, "")
        for n, code in enumerate(left)
    )
    events = check.taken_over(left)
    assert rule_alerts(events) == [("AlertResolved", "corrected")]
    assert check.alerts.subjects(RULE_METRIC_UNKNOWN) == {"typo"}
    for beat in range(4):
        gaps.counters = {"success_pct": float(beat)}
        check.observe()
        assert check.judge() == []  # not alerted again
    gaps.counters = {"sucess_pct": 1.0}
    check.observe()
    assert rule_alerts(check.judge()) == [("AlertResolved", "typo")]


def test_the_shipped_rules_and_channel_load() -> None:
    settings = load_settings()
    codes = {rule.code for rule in settings.supervisor.rules}
    assert codes == {
        "gap_success_low",
        "gap_queue_high",
        "context_sync_slow",
        "universe_build_slow",
        "master_file_stale",
    }
    assert "default" in settings.notifier.channels
    assert settings.programs["notifier"].command == ("observer", "notifier", "run")


def test_a_rule_needs_one_limit(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[supervisor]\nrules = [{ code = "x", metric = "a.b" }]\n')
    with pytest.raises(ConfigError, match="give one of above or below"):
        load_settings(config)


def test_the_secret_parts_of_apprise_urls() -> None:
    from workers.notifier.channels import url_secrets

    bot = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    found = url_secrets(f"tgram://{bot}/-100123")
    assert bot in found and "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" in found
    assert "MyTopic-Secret" in url_secrets("ntfy://MyTopic-Secret")
    parts = url_secrets("json://user:pa55word@127.0.0.1:8080/path/T0KEN?token=QQQQQQ")
    assert {"pa55word", "T0KEN", "QQQQQQ"} <= set(parts) and "127.0.0.1" not in parts


def test_alert_records_round_trip_through_the_writer(store: Store) -> None:
    """On SQLite and PostgreSQL: the writer's rows of the alert events read back as states."""
    from bus.codec import decode_parts, encode_frame
    from bus.envelope import Envelope
    from bus.events import Alert, AlertAcked, AlertDelivery, AlertResolved
    from observer.db.queries import alert_records

    events = [
        Alert(severity="critical", code="program_fatal", subject="track_a", message="FATAL"),
        Alert(severity="warning", code="cpu_high", message="hot"),
        AlertDelivery(
            channel="ops",
            kind="alert",
            outcome="sent",
            attempt=1,
            code="cpu_high",
            severity="warning",
            alerts=("sup:1", "sup:2"),
        ),
        AlertResolved(
            code="program_fatal", severity="critical", subject="track_a", message="running again"
        ),
        AlertAcked(alert_source="sup", alert_seq=2, by="ops"),
    ]
    envelopes = [Envelope("sup", n, 10 + n, e) for n, e in enumerate(events, start=1)]
    store.apply([decode_parts(encode_frame(envelopes))])
    with store.engine.connect() as conn:
        records = alert_records(conn, 0)
    assert records.deliveries[0][3] == ["sup:1", "sup:2"]
    states = {s.notice.id: (s.state, s.delivered, s.acked_by) for s in alert_states(records)}
    assert states == {"sup:1": ("resolved", ("ops",), ""), "sup:2": ("acked", ("ops",), "ops")}
