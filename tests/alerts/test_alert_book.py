"""The alert book: each condition raised once while open, resolved once, taken over whole."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert

from bus.events import Alert, AlertResolved, Event, Severity
from observer.alerts.book import AlertBook
from observer.alerts.states import SEVERITY_RANK, Notice
from observer.alerts.stored import load, open_alerts
from observer.cli.support import open_alert_notices
from observer.config.tree import Settings
from observer.db import models as m
from observer.db.engine import make_engine
from observer.db.migrate import upgrade
from observer.kis.rate_alert import KIS_RATE_LIMITED
from observer.runtime import alert_book, producer_for, take_over_disk_alerts
from tests.support import wait_until

CODES = st.sampled_from(["disk_low", "track_b_account_down"])
SUBJECTS = st.sampled_from(["", "acct1", "acct2"])
SEVERITIES = st.sampled_from(["info", "warning", "error", "critical"])
RAISE = st.tuples(st.just("raise"), CODES, SUBJECTS, SEVERITIES)
RESOLVE = st.tuples(st.just("resolve"), CODES, SUBJECTS, st.just("warning"))
TAKE = st.tuples(st.just("take"), CODES, SUBJECTS, SEVERITIES)


def notice(code: str, subject: str = "", severity: Severity = "warning", seq: int = 1) -> Notice:
    return Notice(f"track_b:{seq}", "alert", seq, severity, code, subject, "left open")


@given(st.lists(st.one_of(RAISE, RESOLVE, TAKE), max_size=40))
def test_any_sequence_publishes_exactly_the_transitions(
    steps: list[tuple[str, str, str, Severity]],
) -> None:
    """A model of what is open, at which severity: a raise goes out if the condition is not
    open or is open lower; a resolution only of what is open, at the highest severity raised;
    a take-over publishes nothing and takes no info alert (never open in the database)."""
    sent: list[Event] = []
    book = AlertBook(sent.append, "track_b")
    model: dict[tuple[str, str], Severity] = {}
    for step, code, subject, severity in steps:
        before = len(sent)
        key = (code, subject)
        held = model.get(key)
        if step == "raise":
            went = book.raise_(code, subject, severity, "m", {"k": "v"})
            rises = held is None or SEVERITY_RANK[severity] > SEVERITY_RANK[held]
            assert went == rises
            if went:
                (event,) = sent[before:]
                assert isinstance(event, Alert)
                assert (event.code, event.subject, event.severity) == (code, subject, severity)
                assert event.context == {"k": "v"}
            if rises:
                model[key] = severity
        elif step == "resolve":
            went = book.resolve(code, subject, "over")
            assert went == (held is not None)
            if went:
                (event,) = sent[before:]
                assert isinstance(event, AlertResolved)
                assert (event.code, event.subject, event.severity) == (code, subject, held)
                del model[key]
        else:
            taken = book.take_over([notice(code, subject, severity)])
            assert sent[before:] == []
            assert taken == ([] if severity == "info" else [notice(code, subject, severity)])
            if severity != "info" and (
                held is None or SEVERITY_RANK[severity] > SEVERITY_RANK[held]
            ):
                model[key] = severity
        assert len(sent) - before <= 1
        assert book.conditions() == model
        for (c, s), level in model.items():
            assert book.is_open(c, s) and book.severity(c, s) == level
        assert book.subjects(code) == {s for (c, s) in model if c == code}


def test_again_sends_each_alert_of_a_condition_one_resolution_ends_them() -> None:
    sent: list[Event] = []
    book = AlertBook(sent.append)
    assert book.raise_("track_b_registration_refused", "", "warning", "005930 refused", again=True)
    assert book.raise_("track_b_registration_refused", "", "warning", "000660 refused", again=True)
    assert not book.raise_("track_b_registration_refused", "", "warning", "the same, once more")
    assert book.resolve("track_b_registration_refused", "", "the session ended")
    assert not book.resolve("track_b_registration_refused", "", "the session ended")
    assert [type(e).__name__ for e in sent] == ["Alert", "Alert", "AlertResolved"]


def test_alert_and_resolution_hand_the_event_over_unsent() -> None:
    sent: list[Event] = []
    book = AlertBook(sent.append)
    first = book.alert("disk_low", "p:outbox", "warning", "low")
    assert isinstance(first, Alert) and book.is_open("disk_low", "p:outbox")
    assert book.alert("disk_low", "p:outbox", "warning", "low") is None
    over = book.resolution("disk_low", "p:outbox", "room again")
    assert isinstance(over, AlertResolved) and over.severity == "warning"
    assert book.resolution("disk_low", "p:outbox") is None
    assert sent == []


def test_a_subject_longer_than_its_column_is_the_condition_the_events_carry() -> None:
    sent: list[Event] = []
    book = AlertBook(sent.append)
    long = "x" * (Alert.SUBJECT_LENGTH + 50)
    assert book.raise_("c", long, "error", "m")
    (alert,) = sent
    assert isinstance(alert, Alert) and len(alert.subject) == Alert.SUBJECT_LENGTH
    assert book.is_open("c", long) and book.is_open("c", alert.subject)
    assert book.resolve("c", long)
    assert isinstance(sent[-1], AlertResolved) and sent[-1].subject == alert.subject


def test_threads_raising_the_same_condition_send_one_alert() -> None:
    sent: list[Event] = []
    lock = threading.Lock()

    def publish(event: Event) -> None:
        with lock:
            sent.append(event)

    book = AlertBook(publish)
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        for n in range(200):
            book.raise_("c", str(n % 10), "error", "m")

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.subject for e in sent if isinstance(e, Alert)) == [str(n) for n in range(10)]


def _row(seq: int, code: str, severity: str = "error", subject: str = "") -> dict[str, Any]:
    return {
        "source": "track_b@c2" if seq != 5 else "track_a@c2",
        "seq": seq,
        "produced_ns": seq,
        "severity": severity,
        "code": code,
        "message": "m",
        "subject": subject,
    }


def test_load_takes_over_the_sources_open_alerts_through_a_seq(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(m.AlertRow),
                [
                    {**_row(1, "down", "critical", "acct1"), "context": {}},
                    {**_row(2, "stale", "warning", "acct2"), "context": {}},
                    {**_row(3, "note", "info"), "context": {}},
                    {**_row(5, "down", "error", "acct3"), "context": {}},  # another source's
                    {**_row(7, "later"), "context": {}},
                ],
            )
            conn.execute(insert(m.AlertResolvedRow), [_row(4, "stale", "warning", "acct2")])
        with engine.connect() as conn:
            assert [n.code for n in open_alerts(conn, "track_b@c2")] == ["down", "later"]
            assert [n.code for n in open_alerts(conn, "track_b@c2", ["later"])] == ["later"]
            sent: list[Event] = []
            book = AlertBook(sent.append, "track_b@c2")
            taken = load(book, conn, through_seq=6)
    finally:
        engine.dispose()
    assert [(n.id, n.code, n.subject) for n in taken] == [("track_b@c2:1", "down", "acct1")]
    assert book.conditions() == {("down", "acct1"): "critical"}
    assert sent == []


def test_a_run_that_could_not_read_its_earlier_alerts_reads_them_before_it_resolves(
    tmp_path: Path,
) -> None:
    """A job whose start found the database out (`open_alert_notices`: None) took over
    nothing, so its clean run could not end the rate warning an earlier run left open."""
    path = tmp_path / "observer.db"
    path.write_bytes(b"not a database yet" * 100)  # the database out: any read fails
    settings = msgspec.convert({"database": {"url": f"sqlite:///{path}"}}, Settings)
    reads: list[bool] = []

    def read() -> list[Notice] | None:
        found = open_alert_notices(settings, "investor", [KIS_RATE_LIMITED])
        reads.append(found is not None)
        return found

    sent: list[Event] = []
    book = AlertBook(sent.append, "investor")
    book.take_over_when_read(read)
    assert not book.resolve(KIS_RATE_LIMITED, "acct1", "KIS refused 0 of 40 calls")  # still out
    assert reads == [False, False] and sent == []
    path.unlink()  # back, holding the earlier run's warning of acct1
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            row = {**_row(3, KIS_RATE_LIMITED, "warning", "acct1"), "source": "investor"}
            conn.execute(insert(m.AlertRow), [{**row, "context": {}}])
    finally:
        engine.dispose()
    assert book.resolve(KIS_RATE_LIMITED, "acct1", "KIS refused 0 of 40 calls")
    assert reads == [False, False, True]
    assert sent == [
        AlertResolved(
            code=KIS_RATE_LIMITED,
            severity="warning",
            message="KIS refused 0 of 40 calls",
            subject="acct1",
        )
    ]
    assert not book.resolve(KIS_RATE_LIMITED, "acct2") and reads == [False, False, True]


def test_a_producers_free_space_watch_keeps_its_alerts_in_the_processs_book(
    tmp_path: Path,
) -> None:
    """One book per process: what the outbox's watch raised is open in `alert_book`, and a
    condition the process holds open is not raised again by the watch."""
    huge = 1024**5  # every volume is below both thresholds
    settings = msgspec.convert(
        {
            "paths": {"data_dir": str(tmp_path)},
            "disk": {
                "check_interval_s": 0.05,
                "warn_free_percent": 0,
                "critical_free_percent": 0,
                "warn_free_bytes": 2 * huge,
                "critical_free_bytes": huge,
            },
        },
        Settings,
    )
    producer = producer_for(settings, "job")
    try:
        book = alert_book(producer)
        assert book is alert_book(producer) and book.source == "job"
        take_over_disk_alerts(settings, producer)  # nothing stored: the watch measures now
        wait_until(lambda: len(book.conditions()) == 2, 30, "the outbox watch's alerts")
        assert book.conditions() == {
            ("disk_low", "job:outbox"): "warning",
            ("disk_critical", "job:outbox"): "critical",
        }
        assert not book.raise_("disk_low", "job:outbox", "warning", "again")  # open: nothing
    finally:
        producer.close(drain_timeout=0)
