"""``observer alerts --open``: every open alert, whatever its age, read in one pass.

The supervisor's open-alert figures and a worker taking over its earlier run's alerts read
the same open alerts: an alert open for weeks is still open to them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, text
from typer.testing import CliRunner

from observer.alerts.book import AlertBook
from observer.alerts.states import alert_states
from observer.alerts.stored import load
from observer.cluster.hosts import own_source
from observer.config.load import load_settings
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.db.queries import _OPEN_ALERTS, alert_records, open_alert_records
from observer.supervisor.readings import read_once
from workers.notifier.cli import alerts_app

DAY_NS = 86_400 * 10**9


def _alert(source: str, seq: int, at: int, severity: str = "critical") -> dict[str, Any]:
    return {
        "source": source,
        "seq": seq,
        "produced_ns": at,
        "severity": severity,
        "code": "disk_low",
        "message": "disk 97% full",
        "context": {},
        "subject": "/data",
    }


def test_an_open_alert_is_listed_whatever_its_age(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    upgrade(url)
    now = time.time_ns()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(m.AlertRow), [_alert("supervisor", 1, now - 8 * DAY_NS)])
    engine.dispose()

    def listed(*args: str) -> str:
        result = CliRunner().invoke(alerts_app, [*args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    line = listed("--open")
    assert "supervisor:1" in line and "critical open" in line and "disk_low(/data)" in line
    (shown,) = [json.loads(x) for x in listed("--open", "--json").splitlines()]
    assert shown["id"] == "supervisor:1" and shown["state"] == "open"
    # A window given is the window; the list of every state keeps its 7 days.
    assert listed("--open", "--since", time.strftime("%Y-%m-%d")).strip() == "no open alerts"
    assert listed().strip() == "no alerts"


def test_an_alert_open_for_weeks_is_counted_and_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{url}"\n')
    upgrade(url)
    now = time.time_ns()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(m.AlertRow), [_alert("track_b", 1, now - 30 * DAY_NS)])
        conn.execute(insert(m.AlertRow), [_alert("track_b", 2, now - DAY_NS, "info")])
    with engine.connect() as conn:
        reading = read_once(conn, now)
        source = own_source(load_settings(config).supervisor, "track_b")
        taken = load(AlertBook(None, source), conn, ["disk_low", "other"])
    engine.dispose()
    assert reading.alerts_open == {"warning": 0, "error": 0, "critical": 1}
    assert [n.id for n in reading.open_alerts] == ["track_b:1"]
    assert [(n.code, n.subject) for n in taken] == [("disk_low", "/data")]


SOURCES = ["supervisor", "track_b", "supervisor@c1", "track_b@c1", "supervisor@c2"]
events = st.lists(
    st.tuples(
        st.sampled_from(["alert", "alert", "resolved"]),
        st.sampled_from(SOURCES),
        st.integers(0, 3),  # few instants: resolutions at an alert's instant too
        st.sampled_from(["disk_low", "feed_dead"]),
        st.sampled_from(["", "acct1"]),
        st.sampled_from(["info", "warning", "error", "critical"]),
    ),
    max_size=25,
)


# One instant, one source: the resolution after the alert in its sequence ends it, the one
# before does not.
TIED = [
    ("resolved", "supervisor", 1, "disk_low", "", "critical"),
    ("alert", "supervisor", 1, "disk_low", "", "critical"),
    ("resolved", "supervisor", 1, "disk_low", "", "critical"),
]
# Between named hosts only a resolution of the alert's own host (or of none) ends it.
HOSTS = [
    ("alert", "track_b@c1", 1, "disk_low", "", "error"),
    ("alert", "track_b@c1", 1, "feed_dead", "", "error"),
    ("alert", "track_b", 1, "disk_low", "acct1", "error"),
    ("resolved", "supervisor@c2", 2, "disk_low", "", "error"),
    ("resolved", "supervisor@c1", 2, "feed_dead", "", "error"),
    ("resolved", "supervisor@c2", 2, "disk_low", "acct1", "error"),
]


def _store(engine: Engine, history: list[Any], acked: list[int], sent: list[int]) -> None:
    seqs: Counter[str] = Counter()  # one sequence per source, as on the bus
    alerts, resolutions = [], []
    for kind, source, at, code, subject, severity in history:
        seqs[source] += 1
        row = {"source": source, "seq": seqs[source], "produced_ns": at, "code": code}
        row |= {"subject": subject, "severity": severity, "message": "m"}
        if kind == "alert":
            alerts.append(row | {"context": {}})
        else:
            resolutions.append(row)
    ids = [(a["source"], a["seq"], a["produced_ns"]) for a in alerts]
    acks = [
        {"source": "operator", "seq": n + 1, "produced_ns": 9, "by": "me", "note": ""}
        | {"alert_source": ids[i % len(ids)][0], "alert_seq": ids[i % len(ids)][1]}
        for n, i in enumerate(acked if ids else [])
    ]
    messages = [ids[i % len(ids) :][:2] for i in (sent if ids else [])]  # one or two alerts
    deliveries = [
        {"source": "notifier", "seq": n + 1, "produced_ns": max(a for *_, a in named) + n % 3}
        | {"channel": f"ch{n % 2}", "kind": "alert", "outcome": ("sent", "failed")[n % 3 == 2]}
        | {"attempt": 1, "code": "c", "severity": "critical", "subject": "", "title": "t"}
        | {"error": "", "alerts": [f"{s}:{q}" for s, q, _ in named]}
        for n, named in enumerate(messages)
    ]
    with engine.begin() as conn:
        tables = [m.AlertRow, m.AlertResolvedRow, m.AlertAckedRow, m.AlertDeliveryRow]
        for model, rows in zip(tables, [alerts, resolutions, acks, deliveries], strict=True):
            conn.execute(delete(model))
            if rows:
                conn.execute(insert(model), rows)


def test_the_open_alerts_are_those_the_rules_find_open(db_url: str) -> None:
    """The query against `observer.alerts.states.alert_states` over every record: same alerts open
    (hosts, ties at one instant, acks) and the same channels."""
    upgrade(db_url)
    engine = make_engine(db_url)

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(events, st.lists(st.integers(0, 30), max_size=4), st.lists(st.integers(0, 30)))
    @example(TIED, [], [])
    @example(HOSTS, [], [0])
    def check(history: list[Any], acked: list[int], sent: list[int]) -> None:
        _store(engine, history, acked, sent)
        with engine.connect() as conn:
            every = alert_states(alert_records(conn, 0))
        with engine.connect() as conn:
            found = alert_states(open_alert_records(conn))
        assert found == [s for s in every if s.state == "open"]

    try:
        check()
    finally:
        engine.dispose()


def test_the_open_alerts_are_read_in_one_pass(sqlite_url: str) -> None:
    """Each table scanned once, the acks and the latest resolutions joined by an index: no
    subquery run again for each alert, so the cost grows with the tables, not their product."""
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        plan = [
            r[-1]
            for r in conn.execute(text("explain query plan " + _OPEN_ALERTS.format(at="instr")))
        ]
    engine.dispose()
    assert not [p for p in plan if "CORRELATED" in p], plan
    scans = [p.split()[1] for p in plan if p.startswith("SCAN") and "subquery" not in p]
    assert Counter(scans)["a"] == 1 and not {"k", "r", "alert_acks"} & set(scans), plan


def test_over_a_thousand_open_alerts_are_listed_with_their_messages(
    db_url: str, tmp_path: Path
) -> None:
    """Each query of their messages names a few hundred alerts (SQLite refuses an expression
    over 1,000 deep): 1,100 open alerts and the messages that sent them, each message once,
    one of them naming alerts read by two of those queries."""
    upgrade(db_url)
    engine = make_engine(db_url)
    now = time.time_ns()
    total = 1100
    alerts = [_alert("track_b", n + 1, now - (total - n) * 10**9, "warning") for n in range(total)]
    for n, row in enumerate(alerts):
        row["subject"] = f"acct{n}"
    named = [["track_b:1"], ["track_b:1100"], ["track_b:3", "track_b:1050"]]
    deliveries = [
        {"source": "notifier", "seq": n + 1, "produced_ns": now + n, "channel": "ops"}
        | {"kind": "alert", "outcome": "sent", "attempt": 1, "code": "disk_low"}
        | {"severity": "warning", "subject": "", "title": "t", "error": "", "alerts": ids}
        for n, ids in enumerate(named)
    ]
    with engine.begin() as conn:
        conn.execute(insert(m.AlertRow), alerts)
        conn.execute(insert(m.AlertDeliveryRow), deliveries)
    with engine.connect() as conn:
        records = open_alert_records(conn)
    engine.dispose()
    assert len(records.alerts) == total
    assert [list(row[3]) for row in records.deliveries] == named  # each once, oldest first
    states = {s.notice.id: s.delivered for s in alert_states(records)}
    assert states["track_b:1050"] == ("ops",) and states["track_b:2"] == ()

    config = tmp_path / "observer.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    result = CliRunner().invoke(alerts_app, ["--open", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == total


def test_a_condition_left_open_by_any_process_of_a_host_is_found_by_another(
    tmp_path: Path,
) -> None:
    """`open_on_host`: the token job finds the ``token_unavailable`` a reader of its host left
    (the readiness job, exited); not another host's, nor one resolved, nor another code."""
    from observer.alerts.stored import open_on_host

    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    now = time.time_ns()

    def raised(
        source: str, seq: int, subject: str, code: str = "token_unavailable"
    ) -> dict[str, Any]:
        return {**_alert(source, seq, now + seq), "code": code, "subject": subject}

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(m.AlertRow),
            [
                raised("readiness", 1, "acct1"),
                raised("track_a", 2, "acct2"),
                raised("readiness@c2", 3, "acct3"),  # another host's
                raised("track_b", 4, "acct4", code="disk_low"),
            ],
        )
        conn.execute(
            insert(m.AlertResolvedRow),
            [
                {
                    "source": "track_a",
                    "seq": 5,
                    "produced_ns": now + 5,
                    "code": "token_unavailable",
                    "severity": "critical",
                    "message": "holds a token again",
                    "subject": "acct2",
                }
            ],
        )
    with engine.connect() as conn:
        found = open_on_host(conn, "", ["token_unavailable"])
        assert [(n.id, n.subject) for n in found] == [("readiness:1", "acct1")]
        assert [n.subject for n in open_on_host(conn, "c2", ["token_unavailable"])] == ["acct3"]
    engine.dispose()
