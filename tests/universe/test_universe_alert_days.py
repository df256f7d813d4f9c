"""A universe build ends only its own day's failure alerts.

``universe_reused`` and ``universe_failed`` had no subject and any successful build resolved
them: an operator building a past day (``--date``) ended today's critical alert while today
still ran on an earlier universe. Their subject is now the day; an alert raised before that
(subject "") is ended by a build of today's universe.

Against the real simulator and a real writer process (`tests/universe/conftest.py`'s harness;
its clock is 2026-11-20 05:00 KST, before that day's warm-up).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import create_engine, insert

from observer.db.models import AlertRow
from tests.universe.conftest import START, Harness

TODAY = START.date().isoformat()  # 2026-11-20


def _legacy_failed_alert(h: Harness) -> None:
    """A ``universe_failed`` as a release before this one raised it: without a subject."""
    engine = create_engine(h.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(AlertRow).values(
                    source="universe",
                    seq=10**9,  # far past the job's own: no envelope of its claims it
                    produced_ns=int((START - timedelta(hours=1)).timestamp() * 10**9),
                    severity="critical",
                    code="universe_failed",
                    message="an earlier release's alert",
                    context={},
                    subject="",
                )
            )
    finally:
        engine.dispose()


def test_a_build_of_another_day_leaves_todays_failure_open(harness: Harness) -> None:
    h = harness
    h.build("2026-11-18")
    h.sim.faults.master_damage = {"kospi_code.mst.zip": "truncated"}
    try:
        assert h.build(TODAY)["reused_from"] == "20261118"
    finally:
        h.sim.faults.master_damage.clear()
    assert h.rows("select code, subject from alerts where severity = 'critical'") == [
        ("universe_reused", TODAY)
    ]
    _legacy_failed_alert(h)

    # An operator builds a past day: today still runs on 11-18's universe, its alerts stand.
    assert h.build("2026-11-19")["outcome"] == "built"
    assert h.rows("select code, subject from alert_resolutions") == []

    # Today's own universe (before its warm-up) ends today's alert, and the subjectless one.
    summary = h.build(TODAY)
    assert summary["outcome"] == "built" and summary["reused_from"] == ""
    resolved = h.rows("select code, subject, severity from alert_resolutions order by code")
    assert resolved == [("universe_failed", "", "critical"), ("universe_reused", TODAY, "critical")]
