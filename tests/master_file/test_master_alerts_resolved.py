"""The master-file worker's alerts end with their condition.

``master_review_held`` when its review is approved, rejected or superseded;
``master_remote_suspect``, ``master_stale_file`` and ``master_size_change`` when the
market's next check gets through. Against the real simulator and a real writer process, as
``tests/master_file/test_master_file.py`` does.
"""

from __future__ import annotations

from typing import Any

import pytest

from bus.events import AlertResolved, Event
from observer.alerts.states import alert_states
from observer.db.queries import open_alert_records
from observer.reference.instruments import MASTER_FILES
from tests.master_file.conftest import Harness, domestic
from workers.master_file.outcome import FileOutcome

RESOLVED = "select code, severity, subject from alert_resolutions order by seq"


def open_alerts(h: Harness) -> list[tuple[str, str, str]]:
    with h.engine.connect() as conn:
        states = alert_states(open_alert_records(conn, deliveries=False))
    return [
        (s.notice.code, s.notice.severity, s.notice.subject) for s in states if s.state == "open"
    ]


def held(h: Harness) -> list[tuple[str, str]]:
    return h.rows("select severity, subject from alerts where code = 'master_review_held'")


def test_a_held_review_alert_ends_when_approved_rejected_or_superseded(harness: Harness) -> None:
    h = harness
    h.run("update", "--exchange", "KOSDAQ", "--exchange", "KONEX")
    h.sim.faults.new_listings = 150  # more than 100 at once: held
    h.run("update", "--exchange", "KOSDAQ")
    (first,) = h.files.reviews()
    assert held(h) == [("critical", first.review_id)]  # its subject: the review
    h.sim.faults.new_listings = 160  # a newer change, held too: the first is superseded
    h.run("update", "--exchange", "KOSDAQ")
    (second,) = h.files.reviews()
    assert h.rows(RESOLVED) == [("master_review_held", "critical", first.review_id)]
    assert open_alerts(h) == [("master_review_held", "critical", second.review_id)]

    h.run("review", second.review_id, "--approve")
    assert h.rows(RESOLVED)[-1] == ("master_review_held", "critical", second.review_id)
    assert open_alerts(h) == []

    h.sim.faults.delisted |= set(sorted(domestic("KONEX"))[:5])  # a major decrease: held
    h.run("update", "--exchange", "KONEX")
    (third,) = h.files.reviews()
    assert open_alerts(h) == [("master_review_held", "critical", third.review_id)]
    h.run("review", third.review_id, "--reject")
    assert h.rows(RESOLVED)[-1] == ("master_review_held", "critical", third.review_id)
    assert open_alerts(h) == [] and len(h.rows(RESOLVED)) == 3


def test_a_review_alert_raised_before_it_named_its_review_ends_with_the_decision(
    harness: Harness,
) -> None:
    """Held before alerts named their review (subject ""): the approval resolved subject
    "<review id>", which ended nothing, and the critical alert stayed open for good."""
    h = harness
    h.run("update", "--exchange", "KOSDAQ", "--exchange", "KONEX")
    h.sim.faults.new_listings = 150
    h.run("update", "--exchange", "KOSDAQ")
    (review,) = h.files.reviews()
    with h.engine.begin() as conn:  # as an earlier version stored it
        conn.exec_driver_sql("update alerts set subject = '' where code = 'master_review_held'")
    assert open_alerts(h) == [("master_review_held", "critical", "")]
    h.run("review", review.review_id, "--approve")
    assert h.rows(RESOLVED) == [("master_review_held", "critical", "")]  # only what was open
    assert open_alerts(h) == []


def test_a_zero_byte_remote_alert_ends_with_the_next_check_that_gets_through(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.run("update", "--exchange", "KOSDAQ", "--exchange", "KONEX")
    host = h.sim.masters
    real = host._master_files

    def empty_kosdaq() -> dict[str, tuple[bytes, str]]:
        return {k: ((b"", s) if k.startswith("kosdaq") else (d, s)) for k, (d, s) in real().items()}

    monkeypatch.setattr(host, "_master_files", empty_kosdaq)
    out = h.run("update", "--exchange", "KOSDAQ", "--exchange", "KONEX")
    assert "the server reports 0 bytes" in out
    assert open_alerts(h) == [("master_remote_suspect", "critical", "KOSDAQ")]
    out = h.run("update", "--exchange", "KOSDAQ")  # still 0 bytes: still open
    assert h.rows(RESOLVED) == [] and len(open_alerts(h)) == 2

    monkeypatch.setattr(host, "_master_files", real)  # the server is fine again
    h.run("update", "--exchange", "KONEX")  # another market's check ends nothing
    assert h.rows(RESOLVED) == []
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "unchanged" in out
    assert h.rows(RESOLVED) == [("master_remote_suspect", "critical", "KOSDAQ")]
    assert open_alerts(h) == []
    h.run("update", "--exchange", "KOSDAQ")  # nothing open: nothing more to resolve
    assert len(h.rows(RESOLVED)) == 1


def test_stale_and_size_change_warnings_end_with_the_next_check_that_gets_through(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    h.config.write_text(h.config.read_text() + "growth_alert_pct = 0.001\n")
    h.run("update", "--exchange", "KOSDAQ")
    h.sim.change_listings(new=2)  # any growth warns at this limit; applied all the same
    h.run("update", "--exchange", "KOSDAQ")
    assert open_alerts(h) == [("master_size_change", "warning", "KOSDAQ")]
    assert h.rows(RESOLVED) == []  # the run that raised it does not end it

    host = h.sim.masters
    real = host._master_files

    def older_kosdaq() -> dict[str, tuple[bytes, str]]:
        served = dict(real())
        data, _ = served["kosdaq_code.mst.zip"]
        served["kosdaq_code.mst.zip"] = (data, "Mon, 02 Jan 2006 00:00:00 GMT")
        return served

    monkeypatch.setattr(host, "_master_files", older_kosdaq)  # a stale mirror
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "stale copy" in out
    assert ("master_stale_file", "warning", "KOSDAQ") in open_alerts(h)
    assert h.rows(RESOLVED) == []  # a skip that is not "unchanged" ends nothing

    monkeypatch.setattr(host, "_master_files", real)
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "unchanged" in out
    assert set(h.rows(RESOLVED)) == {
        ("master_size_change", "warning", "KOSDAQ"),
        ("master_stale_file", "warning", "KOSDAQ"),
    }
    assert open_alerts(h) == []


class _Services:
    """What `Settle` publishes through, without a bus."""

    def __init__(self) -> None:
        self.sent: list[Event] = []
        self.raised: set[tuple[str, str]] = set()

    def publish(self, *events: Event) -> None:
        self.sent.extend(events)


def test_an_alert_raised_before_it_named_its_market_ends_once_every_market_is_through() -> None:
    from workers.master_file.settle import SUSPECT, Settle  # new with the fix

    services: Any = _Services()
    settle = Settle(services)
    settle.open = {SUSPECT: {""}}
    outcome = FileOutcome("KOSPI", "kospi_code.mst.zip", "skip", "unchanged")
    *others, last = MASTER_FILES
    for file in others:
        settle.market(file, "unchanged", outcome)
    settle.market(last, "", outcome)  # one file's check did not get through
    settle.unnamed()
    assert services.sent == []
    settle.market(last, "unchanged", outcome)
    settle.unnamed()
    (resolved,) = services.sent
    assert isinstance(resolved, AlertResolved)
    assert (resolved.code, resolved.severity, resolved.subject) == (SUSPECT, "critical", "")
