"""The master-file worker against the real simulator and a real writer process.

The simulator serves on loopback from a thread of this process; ``observer master-file`` runs
in-process through typer (its lock, producer, acks and files are the real ones); the writer
is its own process.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from sqlalchemy import text

from harness.sim import master_host
from harness.sim.masters import zipped
from harness.sim.server import MASTER_DAMAGE
from observer.alerts.states import alert_states
from observer.db.queries import open_alert_records
from observer.process.state_files import STATE_FILE_UNREADABLE
from observer.reference.instruments import master_file, tickers
from tests.kis.test_master_zip import inflate_error_copy
from tests.master_file.conftest import MARKET, Harness, domestic
from tests.support import assert_exactly_once, set_aside


def test_first_load_then_new_changed_and_removed_listings(harness: Harness) -> None:
    h = harness
    out = h.run("update", "--all", "--json")
    assert "initial download" in out
    expected = len(MARKET.listings) + sum(len(v) for v in MARKET.overseas.values())
    assert h.rows("select count(*), sum(active) from instruments")[0] == (expected, expected)
    assert h.rows("select count(*) from listing_changes where initial")[0][0] == expected
    assert set(h.instruments("KOSDAQ")) == domestic("KOSDAQ")
    with h.engine.connect() as conn:
        us = tickers(conn, "US")
    us_stocks = [
        x for stem in ("nas", "nys", "ams") for x in MARKET.overseas[stem] if x.security_type == "2"
    ]
    assert {x.symbol for x in us} == {x.symbol for x in us_stocks}
    assert {x.currency for x in us} == {"USD"}
    assert {x.exchange for x in us} == {"NASD", "NYSE", "AMEX"}
    shi = h.rows("select distinct security_type from instruments where market = 'SHI'")
    assert shi == [("index",)]  # index files are indices, not stocks
    # The domestic masters' market measures: its alarms and its designations
    stored = dict(h.rows("select symbol, measures from instruments where region = 'KR'"))
    for symbol, x in MARKET.listings.items():
        wanted = {*x.measures, *(("administrative",) if x.administrative else ())}
        assert set(json.loads(stored[symbol])) == wanted, symbol
    assert any(json.loads(m) for m in stored.values())

    # The simulator's masters change as a real day's do.
    changed = h.sim.change_listings(new=3, delist=1, rename=1)
    (renamed,) = changed["renamed"]
    before = h.rows("select count(*) from listing_changes")[0][0]
    out = h.run("update", "--exchange", "KR", "--dry-run")
    assert "DRY RUN" in out and "+ 990000 신규상장1" in out and f"- {changed['delisted'][0]}" in out
    assert h.rows("select count(*) from listing_changes")[0][0] == before  # nothing applied

    h.run("update", "--exchange", "KOSPI", "--exchange", "KOSDAQ")
    kosdaq = h.instruments("KOSDAQ")
    assert all(kosdaq[s] == (f"신규상장{n + 1}", True) for n, s in enumerate(changed["new"]))
    assert kosdaq[changed["delisted"][0]][1] is False  # inactive, never deleted
    assert h.instruments("KOSPI")[renamed] == (changed["renamed"][renamed], True)
    detected = h.rows(
        "select change, symbol, changed_fields from listing_changes where not initial order by seq"
    )
    assert {(c, s) for c, s, _ in detected} == {
        *(("new", s) for s in changed["new"]),
        ("removed", changed["delisted"][0]),
        ("changed", renamed),
    }
    assert [json.loads(f) for c, _, f in detected if c == "changed"] == [["name"]]

    # Unchanged files are skipped; the history and status commands show it all.
    out = h.run("update", "--exchange", "NAS")
    assert "skip" in out and "unchanged" in out
    history = h.run("history", "--exchange", "KOSDAQ", "--days", "2")
    assert "initial download" in history and "+3 ~0 -1" in history
    h.run("verify", "--region", "KR")
    assert_exactly_once(h.url, {"master_file": h.writer.offsets()["master_file"]})


def widened_copy(archive: bytes, member: str) -> bytes:
    """``archive`` with a 1-character field added to the end of every record: KIS's layout
    changed."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        data = zf.read(member)
    return zipped(member, data.replace(b"\n", b"N\n"))


def test_damaged_downloads_change_nothing_and_raise_alerts(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    sim_damage = master_host.damaged
    monkeypatch.setattr(  # one more way: a file whose fixed-width tail changed width
        master_host,
        "damaged",
        lambda data, member, how: (
            widened_copy(data, member) if how == "layout" else sim_damage(data, member, how)
        ),
    )
    konex = master_file("KONEX")
    first, second = sorted(domestic("KONEX"))[:2]
    h.run("update", "--exchange", "KONEX")
    h.sim.faults.renamed[first] = "새이름"
    h.run("update", "--exchange", "KONEX")  # applied: the first file is now a backup
    backups = {p.name: p.read_bytes() for p in h.files.backups(konex)}
    assert len(backups) == 1
    good = h.current_sha(konex.name)
    listed = h.instruments("KONEX")
    h.sim.faults.renamed[second] = "또새이름"  # the server has news, but it arrives damaged
    messages = {}
    for how in (*MASTER_DAMAGE, "layout"):
        h.sim.faults.master_damage = {konex.name: how}
        out = h.run("update", "--exchange", "KONEX", "--json")
        (result,) = json.loads(out.splitlines()[-1])["files"]
        assert result["action"] == "error", out
        messages[how] = result["error"]
        assert h.current_sha(konex.name) == good  # the file in use is intact
        assert h.instruments("KONEX") == listed  # and so is the database
        assert {p.name: p.read_bytes() for p in h.files.backups(konex)} == backups  # and backups
    assert "body ended after" in messages["short_body"]
    assert "not a valid zip" in messages["truncated"]
    assert "Bad CRC-32" in messages["crc"]
    assert "not cp949" in messages["encoding"]
    assert "line 1" in messages["columns"]
    assert "holds no records" in messages["empty"]
    assert "184-character tail changed width" in messages["layout"]
    assert "scrt_grp_cls_code 'N' on line 1" in messages["layout"]  # "KN" shifted by one
    quarantined = list((h.files.root / "rejected").iterdir())
    assert 0 < len(quarantined) <= 7  # bad downloads kept for inspection, bounded
    h.run("update", "--exchange", "KONEX", "--strict", code=1)
    failed = len(MASTER_DAMAGE) + 2
    alerts = h.rows(
        "select severity, subject from alerts where code = 'master_file_failed' order by seq"
    )
    assert len(alerts) == failed and {subject for _, subject in alerts} == {"KONEX"}
    assert [a[0] for a in alerts[:3]] == ["error", "error", "critical"]  # 3 in a row
    errors = h.rows("select count(*) from master_file_checks where error != ''")[0][0]
    assert errors == failed
    resolutions = "select severity, subject from alert_resolutions where code = :code"
    assert h.rows(resolutions, code="master_file_failed") == []

    # Repaired at the source: the news is applied, the file it replaces becomes a backup, and
    # the failure's alert is over, in this later run.
    h.sim.faults.master_damage.clear()
    h.run("update", "--exchange", "KONEX")
    assert h.instruments("KONEX")[second] == ("또새이름", True)
    newest = h.files.backups(konex)[0]
    assert len(h.files.backups(konex)) == 2
    assert hashlib.sha256(newest.read_bytes()).hexdigest() == good
    assert h.rows(resolutions, code="master_file_failed") == [("critical", "KONEX")]
    with h.engine.connect() as conn:
        states = alert_states(open_alert_records(conn, deliveries=False))
    assert not [x for x in states if x.state == "open" and x.notice.code == "master_file_failed"]
    h.run("update", "--exchange", "KONEX")  # nothing open: nothing more to resolve
    assert len(h.rows(resolutions, code="master_file_failed")) == 1


def test_an_archive_that_fails_to_inflate_is_rejected_and_the_next_file_checked(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    kospi = master_file("KOSPI")
    h.run("update", "--exchange", "KOSPI")
    good = h.current_sha(kospi.name)
    listed = h.instruments("KOSPI")
    h.sim.faults.renamed[sorted(domestic("KOSPI"))[0]] = "새이름"  # news, arriving damaged:
    monkeypatch.setattr(  # deflated data that zlib refuses (not a CRC mismatch)
        master_host,
        "damaged",
        lambda data, member, how: inflate_error_copy(data, member),
    )
    h.sim.faults.master_damage = {kospi.name: "crc"}
    out = h.run("update", "--exchange", "KOSPI", "--exchange", "KOSDAQ", "--json")
    first, second = json.loads(out.splitlines()[-1])["files"]
    assert (first["market"], first["action"]) == ("KOSPI", "error")
    assert "damaged zip archive: Error -3 while decompressing data" in first["error"]
    assert (second["market"], second["action"]) == ("KOSDAQ", "download")  # still checked
    assert set(h.instruments("KOSDAQ")) == domestic("KOSDAQ")
    assert h.current_sha(kospi.name) == good and h.instruments("KOSPI") == listed  # intact
    checks = h.rows("select market, error from master_file_checks order by seq")
    assert [(m, "Error -3" in e) for m, e in checks] == [
        ("KOSPI", False),
        ("KOSPI", True),
        ("KOSDAQ", False),
    ]
    alerts = h.rows("select severity, code, message from alerts order by seq")
    assert [(a, c) for a, c, _ in alerts] == [("error", "master_file_failed")]
    assert kospi.name in alerts[0][2] and "the file in use is kept" in alerts[0][2]
    (rejected,) = (h.files.root / "rejected").iterdir()  # kept for inspection
    assert rejected.name.startswith(kospi.name)
    assert not list((h.files.root / "tmp").iterdir())  # no .part left behind


def test_mass_changes_wait_for_review(harness: Harness) -> None:
    h = harness
    h.run("update", "--exchange", "KOSDAQ", "--exchange", "KONEX")
    kosdaq = h.instruments("KOSDAQ")
    h.sim.faults.new_listings = 150  # more than the seed's 100 at once
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "hold" in out and "150 new listings (more than 100)" in out
    (review,) = h.files.reviews()
    assert h.instruments("KOSDAQ") == kosdaq  # held, not applied
    assert h.rows("select severity from alerts where code = 'master_review_held'") == [
        ("critical",)
    ]
    h.run("update", "--exchange", "KOSDAQ")  # the same change is not held twice
    assert [r.review_id for r in h.files.reviews()] == [review.review_id]
    shown = h.run("review", review.review_id)
    assert "+150" in shown and "신규상장1" in shown

    h.run("review", review.review_id, "--approve")
    assert len(h.instruments("KOSDAQ")) == len(kosdaq) + 150
    assert not h.files.reviews()
    states = h.rows("select state from master_file_reviews order by seq")
    assert states == [("held",), ("approved",)]

    # A major decrease of the archive is held too, and a rejected change stays rejected.
    konex = h.instruments("KONEX")
    h.sim.faults.delisted |= set(sorted(domestic("KONEX"))[:5])
    out = h.run("update", "--exchange", "KONEX")
    assert "major decrease" in out
    (review,) = h.files.reviews()
    h.run("review", review.review_id, "--reject")
    assert h.instruments("KONEX") == konex
    out = h.run("update", "--exchange", "KONEX")
    assert "contents were rejected in review" in out and not h.files.reviews()
    h.run("review", "nope", "--approve", code=1)

    # A quarter of the listings changed at once, each value well-formed: what a layout KIS
    # changed without notice looks like, so it waits for a person too.
    h.sim.faults.delisted.clear()
    h.sim.faults.renamed |= {s: f"새이름{n}" for n, s in enumerate(sorted(konex)[:4])}
    out = h.run("update", "--exchange", "KONEX")
    assert "hold" in out and "4 of 16 active listings changed (more than 20%" in out
    assert h.instruments("KONEX") == konex
    (review,) = h.files.reviews()
    assert review.modified == 4


def test_restore_brings_back_the_previous_file_and_listings(harness: Harness) -> None:
    h = harness
    h.run("update", "--exchange", "KOSDAQ")
    before = h.instruments("KOSDAQ")
    h.sim.change_listings(new=2, delist=1)
    h.run("update", "--exchange", "KOSDAQ")
    assert len(h.instruments("KOSDAQ")) == len(before) + 2
    out = h.run("restore", "--exchange", "KOSDAQ")
    assert "restore" in out
    after = h.instruments("KOSDAQ")
    assert {s: v for s, v in after.items() if v[1]} == before  # the same active listings
    out = h.run("update", "--exchange", "KOSDAQ")  # the contents it replaced stay out
    assert "contents were rejected in review" in out

    # A database rebuilt from an older backup converges back to the file in use.
    with h.engine.begin() as conn:
        conn.execute(text("delete from instruments where market = 'KOSDAQ'"))
        conn.execute(text("delete from master_file_state where market = 'KOSDAQ'"))
    out = h.run("update", "--exchange", "KOSDAQ")
    assert "resync" in out and "the database is behind the file in use" in out
    assert {s: v for s, v in h.instruments("KOSDAQ").items() if v[1]} == before


def test_one_run_at_a_time_and_a_dead_writer_loses_nothing(harness: Harness) -> None:
    h = harness
    with h.files.locked():
        assert "another master-file run" in h.run("update", "--all", code=3)
    h.writer.kill()
    out = h.run("update", "--exchange", "KONEX", code=1)
    assert "still in the outbox for the writer" in out
    h.writer.start()
    h.run("update", "--exchange", "KONEX")  # sends the queued events first, then checks
    assert len(h.instruments("KONEX")) == len(domestic("KONEX"))
    assert_exactly_once(h.url, {"master_file": h.writer.offsets()["master_file"]})


def test_a_stale_copy_of_an_earlier_file_is_refused(harness: Harness) -> None:
    """A mirror serving yesterday's archive again must not undo today's listings."""
    h = harness
    name = master_file("KOSDAQ").name
    h.run("update", "--exchange", "KOSDAQ")
    first = h.current_sha(name)
    changed = h.sim.change_listings(new=2, delist=1)
    h.run("update", "--exchange", "KOSDAQ")
    second, listed = h.current_sha(name), h.instruments("KOSDAQ")
    changes = h.rows("select count(*) from listing_changes")

    faults = h.sim.faults  # the first day's archive, served again
    faults.delisted.clear()
    faults.new_listings = 0
    for args in ((), ("--force",)):
        out = h.run("update", "--exchange", "KOSDAQ", *args)
        assert "skip" in out and "stale copy" in out, out
        assert h.current_sha(name) == second and h.instruments("KOSDAQ") == listed
        assert h.rows("select count(*) from listing_changes") == changes
    assert h.rows("select severity from alerts where code = 'master_stale_file'") == [
        ("warning",),
        ("warning",),
    ]
    assert not h.rows("select code from alerts where code = 'master_size_change'")

    out = h.run("update", "--exchange", "KOSDAQ", "--allow-rollback")  # an operator's decision
    assert "download" in out and h.current_sha(name) == first
    assert h.instruments("KOSDAQ")[changed["new"][0]][1] is False
    assert h.instruments("KOSDAQ")[changed["delisted"][0]][1] is True


def test_a_forced_refresh_never_applies_a_change_held_for_review(harness: Harness) -> None:
    h = harness
    h.run("update", "--exchange", "NAS")
    nas = sorted(x.symbol for x in MARKET.overseas["nas"])
    h.sim.faults.delisted |= set(nas[:600])  # a broken file: 16 % of its rows missing
    out = h.run("update", "--exchange", "NAS")
    assert "hold" in out and "major decrease" in out
    (review,) = h.files.reviews()
    active = "select count(*) from instruments where market = 'NAS' and active"

    out = h.run("update", "--exchange", "NAS", "--force")  # the weekly run
    assert "hold" in out and "major decrease" in out
    # Limits loosened meanwhile: no reason of its own, but the contents still await review.
    loosened = "shrink_hold_pct = 50\nmax_shrink_pct = 50\nmax_removed = 1000\n"
    h.config.write_text(h.config.read_text() + loosened)
    out = h.run("update", "--exchange", "NAS", "--force")
    assert "hold" in out and f"the same contents await review {review.review_id}" in out
    assert [r.review_id for r in h.files.reviews()] == [review.review_id]
    assert h.rows(active) == [(len(nas),)]
    assert h.rows("select state from master_file_reviews") == [("held",)]


def test_a_state_file_a_power_cut_tore_is_set_aside_and_rebuilt_by_the_next_check(
    harness: Harness,
) -> None:
    """``state/KOSPI.json`` empty after a power cut failed every run ("damaged; restore or
    delete it"), so the supervisor parked the job FATAL. A dry run leaves it as it is; a run
    keeps it aside, alerts, downloads the file and finds the database already holds it."""
    h = harness
    h.run("update", "--exchange", "KOSPI")
    state = h.files.root / "state" / "KOSPI.json"
    installed = json.loads(state.read_text())["current"]
    changes = h.rows("select count(*) from listing_changes")[0][0]
    state.write_bytes(b"")
    assert "DRY RUN" in h.run("update", "--exchange", "KOSPI", "--dry-run")
    assert state.read_bytes() == b"" and not list(state.parent.glob("*.bad-*"))  # unchanged
    out = h.run("update", "--exchange", "KOSPI")
    assert "KOSPI   download" in out and "+0 ~0 -0" in out  # the database holds it all
    set_aside(state, b"")
    rebuilt = json.loads(state.read_text())["current"]
    assert rebuilt["sha256"] == installed["sha256"] == h.current_sha("kospi_code.mst.zip")
    assert rebuilt["content_sha256"] == installed["content_sha256"]
    assert h.rows("select count(*) from listing_changes")[0][0] == changes  # nothing new
    alerts = h.rows("select code, severity, subject, message from alerts")
    assert [(a[0], a[1], a[2]) for a in alerts] == [(STATE_FILE_UNREADABLE, "warning", str(state))]
    assert "(empty)" in alerts[0][3] and "the next check downloads the file" in alerts[0][3]
    assert "KOSPI" in h.run("status")
