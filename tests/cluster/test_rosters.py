"""Host rosters: what each host runs, and two hosts caught doing the same work.

The checks themselves (`observer.cluster.rosters.overlaps`) are pure and tested directly; a real
supervisor (host ``c1``, role ``all``, a real writer) publishes its own roster, reads the
rosters other hosts published through the writer, and raises and resolves the alerts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bus.codec import decode_parts, encode_frame
from bus.envelope import Envelope
from bus.events import Alert, AlertResolved, Event, HostRoster, RosterAccount
from bus.producer import Producer
from observer.alerts.book import AlertBook
from observer.alerts.states import Notice
from observer.cluster.rosters import (
    ALIAS_CODE,
    APP_KEY_CODE,
    OVERLAP_CODES,
    PROGRAM_CODE,
    SHARDS_CODE,
    WHOLE_MARKET_PROGRAMS,
    fingerprint,
    overlaps,
    roster_of,
)
from observer.config.tree import Settings
from observer.config.workers import TrackBSettings
from observer.db.roster_queries import StoredRoster, latest_rosters
from observer.kis.settings import AccountSettings, KisSettings
from observer.supervisor.readings import Reading
from observer.supervisor.rosters import RosterDuty
from observer.supervisor.settings import SupervisorSettings
from observer.writer.store import Store
from tests.support import WRITER_PROGRAM, SupervisorProcess, db_rows, free_port, wait_until

KEY_1 = "PSxq1Lr3KeyOfAccountOneForTests0001"  # app keys as KIS issues them: 36 characters
KEY_2 = "PSzz9Qa7KeyOfAccountTwoForTests00002"
HOUR_NS = 3_600 * 10**9


def _roster(
    host: str,
    whole: tuple[str, ...] = (),
    accounts: tuple[tuple[str, str], ...] = (),
    shard: str = "",
) -> StoredRoster:
    now = time.time_ns()
    return StoredRoster(f"supervisor@{host}", host, "collectors", whole, accounts, now, shard)


# ------------------------------------------------------------------ the roster itself


def test_a_roster_carries_a_fingerprint_never_the_app_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", KEY_1)
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", "secret-of-acct1")
    settings = Settings(
        supervisor=SupervisorSettings(host="c1", role="collectors"),
        kis=KisSettings(accounts=(AccountSettings(alias="acct1"),)),
    )
    roster = roster_of(settings, "collectors", ["track_a", "track_b", "writer", "universe"])
    assert roster.host == "c1" and roster.role == "collectors"
    assert roster.whole_market == ("track_a", "universe")  # not Track B: each host streams
    assert roster.accounts == (RosterAccount(alias="acct1", fingerprint=fingerprint(KEY_1)),)
    encoded = encode_frame([Envelope("supervisor@c1", 1, time.time_ns(), roster)])
    assert KEY_1.encode() not in encoded
    assert b"secret-of-acct1" not in encoded
    assert fingerprint(KEY_1).encode() in encoded  # what it carries instead


def test_a_store_host_names_no_account() -> None:
    roster = roster_of(Settings(), "store", ["writer", "backup"])
    assert roster.accounts == () and roster.whole_market == ()


@given(st.text(min_size=1, max_size=64), st.text(min_size=1, max_size=64))
def test_fingerprints_are_short_and_equal_only_for_equal_keys(a: str, b: str) -> None:
    assert len(fingerprint(a)) == 16 and fingerprint(a) == fingerprint(a)
    assert (fingerprint(a) == fingerprint(b)) == (a == b)


def test_the_store_keeps_every_roster_and_the_latest_per_supervisor(store: Store) -> None:
    def roster(source: str, seq: int, at_ns: int, whole: tuple[str, ...]) -> Envelope:
        host = source.partition("@")[2]
        accounts = (RosterAccount(alias=f"a{seq}", fingerprint=fingerprint(KEY_1)),)
        event = HostRoster(host=host, role="collectors", whole_market=whole, accounts=accounts)
        return Envelope(source, seq, at_ns, event)

    envelopes = [
        roster("supervisor@c1", 1, 1_000, ("track_a",)),
        roster("supervisor@c2", 1, 2_000, ("track_a", "universe")),
        roster("supervisor@c2", 2, 3_000, ("universe",)),  # c2 fixed: its latest
    ]
    store.apply([decode_parts(encode_frame([env])) for env in envelopes])
    with store.engine.connect() as conn:
        latest = latest_rosters(conn)
        recent = latest_rosters(conn, since_ns=1_500)
        history = conn.exec_driver_sql("select count(*) from host_roster_events").scalar_one()
    assert history == 3
    assert [(r.source, r.label, r.whole_market, r.published_ns) for r in latest] == [
        ("supervisor@c1", "c1", ("track_a",), 1_000),
        ("supervisor@c2", "c2", ("universe",), 3_000),
    ]
    assert latest[1].accounts == (("a2", fingerprint(KEY_1)),)
    assert [r.label for r in recent] == ["c2"]  # c1's is older than the window asked for


# ------------------------------------------------------------------ the checks


def test_one_host_alone_overlaps_nothing() -> None:
    alone = _roster("c1", ("track_a", "universe"), (("acct1", "aa"), ("acct2", "aa")))
    assert overlaps([alone]) == []


def test_a_whole_market_program_on_two_hosts_is_one_overlap_naming_both() -> None:
    found = overlaps([_roster("c1", ("track_a",)), _roster("c2", ("track_a",)), _roster("c3")])
    assert [(o.code, o.subject, o.hosts) for o in found] == [
        (PROGRAM_CODE, "track_a", ("c1", "c2"))
    ]
    assert "c1, c2" in found[0].message


def test_one_alias_on_two_hosts_overlaps() -> None:
    found = overlaps([_roster("c1", (), (("acct1", "aa"),)), _roster("c2", (), (("acct1", "bb"),))])
    assert [(o.code, o.subject, o.hosts) for o in found] == [(ALIAS_CODE, "acct1", ("c1", "c2"))]


def test_one_app_key_under_two_aliases_on_two_hosts_overlaps() -> None:
    found = overlaps([_roster("c1", (), (("acct1", "aa"),)), _roster("c2", (), (("acct9", "aa"),))])
    assert [(o.code, o.subject) for o in found] == [(APP_KEY_CODE, "acct1@c1 acct9@c2")]
    assert "aa" not in found[0].message.split()  # the fingerprint is not shown


def test_one_alias_with_one_key_on_two_hosts_is_the_alias_alert_alone() -> None:
    found = overlaps([_roster("c1", (), (("acct1", "aa"),)), _roster("c2", (), (("acct1", "aa"),))])
    assert [o.code for o in found] == [ALIAS_CODE]


@given(
    st.dictionaries(
        st.sampled_from(["c1", "c2", "c3", "c4"]),
        st.sets(st.sampled_from(sorted(WHOLE_MARKET_PROGRAMS | {"track_b", "gap_recovery"}))),
    )
)
def test_a_program_overlaps_exactly_when_two_hosts_run_it_and_it_covers_the_market(
    hosts: dict[str, set[str]],
) -> None:
    # Each host's roster as its supervisor makes it of the programs it runs.
    rosters = [
        _roster(host, roster_of(Settings(), "store", names).whole_market)
        for host, names in hosts.items()
    ]
    found = overlaps(rosters)
    expected = {
        name: tuple(sorted(h for h, names in hosts.items() if name in names))
        for name in WHOLE_MARKET_PROGRAMS
    }
    assert {o.subject: o.hosts for o in found} == {
        name: on for name, on in expected.items() if len(on) > 1
    }


def test_track_b_shards_dealt_out_whole_overlap_nothing() -> None:
    rosters = [_roster("c1", shard="1,2/3"), _roster("c2", shard="3/3"), _roster("store")]
    assert overlaps(rosters) == []
    assert overlaps([_roster("c1", shard="1/1")]) == []  # one host, every symbol


def test_a_track_b_shard_on_two_hosts_or_on_none_or_splits_that_differ_overlap() -> None:
    twice = overlaps([_roster("c1", shard="1,2/3"), _roster("c2", shard="2,3/3")])
    assert [(o.code, o.subject, o.hosts) for o in twice] == [
        (SHARDS_CODE, "shard 2/3", ("c1", "c2"))
    ]
    assert "stored twice" in twice[0].message
    both_whole = overlaps([_roster("c1", shard="1/1"), _roster("c2", shard="1/1")])
    assert [o.subject for o in both_whole] == ["shard 1/1"]
    none = overlaps([_roster("c1", shard="1/3"), _roster("c2", shard="2/3")])
    assert [(o.subject, o.hosts) for o in none] == [("shards 3/3 on no host", ("c1", "c2"))]
    differ = overlaps([_roster("c1", shard="1/2"), _roster("c2", shard="2/3")])
    assert [(o.subject, o.hosts) for o in differ] == [("split", ("c1", "c2"))]
    assert "c1 1/2, c2 2/3" in differ[0].message


@given(st.integers(1, 8).flatmap(lambda n: st.lists(st.integers(0, 3), min_size=n, max_size=n)))
def test_shards_overlap_exactly_when_one_is_on_two_hosts_or_on_none(deal: list[int]) -> None:
    """Shard k goes to host deal[k-1] (0: to no host); host c1 also takes shard 1 again."""
    count = len(deal)
    for extra in (False, True):
        taken = {
            host: [k for k in range(1, count + 1) if deal[k - 1] == host] for host in (1, 2, 3)
        }
        if extra:
            taken[1] = sorted({*taken[1], 1})
        rosters = [
            _roster(f"c{h}", shard=f"{','.join(map(str, ks))}/{count}")
            for h, ks in taken.items()
            if ks
        ]
        holders = {k: [h for h, ks in taken.items() if k in ks] for k in range(1, count + 1)}
        twice = {f"shard {k}/{count}" for k, on in holders.items() if len(on) > 1}
        missing = [k for k, on in holders.items() if not on]
        subjects = {o.subject for o in overlaps(rosters)}
        assert {s for s in subjects if s.startswith("shard ")} == twice
        # Unowned only among hosts that run Track B: with none, there is nothing to split.
        runs_track_b = any(taken.values())
        assert any(s.endswith("on no host") for s in subjects) == bool(missing and runs_track_b)


def test_a_roster_names_the_shard_only_of_a_host_running_track_b() -> None:
    settings = Settings(
        supervisor=SupervisorSettings(host="c1"), track_b=TrackBSettings(shard="1,2/3")
    )
    assert roster_of(settings, "store", ["writer"]).track_b_shard == ""
    assert roster_of(settings, "store", ["writer", "track_b"]).track_b_shard == "1,2/3"


def _judged(duty: RosterDuty, rosters: tuple[StoredRoster, ...], *opened: Notice) -> None:
    duty.judge(Reading({}, {}, rosters=rosters, open_alerts=opened))


def _duty() -> tuple[RosterDuty, list[Event]]:
    events: list[Event] = []
    return RosterDuty(
        Settings(), "store", ["writer"], events.append, AlertBook(events.append)
    ), events


def test_an_overlap_is_raised_once_and_resolved_when_it_ends() -> None:
    duty, events = _duty()
    both = (_roster("c1", ("track_a",)), _roster("c2", ("track_a",)))
    _judged(duty, both)
    assert [(type(e), e.code, e.subject, e.severity) for e in events] == [
        (Alert, PROGRAM_CODE, "track_a", "critical")
    ]
    _judged(duty, both)
    assert len(events) == 1  # still open: not again
    _judged(duty, both[:1])
    assert [(type(e), e.code, e.subject) for e in events[1:]] == [
        (AlertResolved, PROGRAM_CODE, "track_a")
    ]
    _judged(duty, both[:1])
    assert len(events) == 2


def test_a_restarted_supervisor_starts_from_the_alerts_the_database_holds_open() -> None:
    """The first reading's open overlap alerts are the book's: the one still there is not
    raised again, the one gone is resolved; other codes are not the rosters' to judge."""
    duty, events = _duty()
    held = [
        Notice(f"supervisor:{n}", "alert", 0, "critical", code, subject, "")
        for n, (code, subject) in enumerate(
            [(ALIAS_CODE, "acct1"), (APP_KEY_CODE, "acct1@c1 acct9@c2"), ("disk_full", "/")]
        )
    ]
    one = (("acct1", "f" * 16),)
    _judged(duty, (_roster("c1", accounts=one), _roster("c2", accounts=one)), *held)
    assert [(type(e).__name__, e.code) for e in events] == [("AlertResolved", APP_KEY_CODE)]


# ------------------------------------------------------------------ a real supervisor

FAKE_TRACK_A = """
[programs.track_a]
kind = "job"
command = ["python", "-c", "pass"]
"""


def _publish(
    sup: SupervisorProcess, outbox: Path, host: str, roster: HostRoster, age_h: float = 0
) -> None:
    """Send ``roster`` as host ``host``'s supervisor would, published ``age_h`` hours ago."""
    offset = int(age_h * HOUR_NS)
    with Producer(
        f"supervisor@{host}",
        f"ipc://{sup.data_dir / 'run' / 'ingest.sock'}",
        outbox / host,
        clock_ns=lambda: time.time_ns() - offset,
    ) as producer:
        producer.send(roster)
        assert producer.wait_acked(30)


def _scrape(port: int) -> list[dict[str, str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples]


def _overlap_alerts(sup: SupervisorProcess) -> list[tuple[str, str, str, str, str]]:
    codes = ", ".join(f"'{c}'" for c in sorted(OVERLAP_CODES))
    return [
        tuple(row)
        for row in sup.rows(
            f"select source, severity, code, subject, message from alerts where code in ({codes})"
            " order by code"
        )
    ]


@pytest.mark.slow
def test_a_real_supervisor_catches_two_hosts_doing_the_same_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host c1 (this supervisor) and host c2 both run Track A, share alias acct1, and c2's
    acct9 is c1's app key: three critical alerts naming c1 and c2. c2 takes Track B shard
    1/2 and no host takes 2/2: a fourth. A stale roster of c3 (37 h old) would overlap too,
    and is ignored; c2's universe, alone, raises nothing. c2's next roster, without any of
    it, resolves all four."""
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_KEY", KEY_1)
    monkeypatch.setenv("OBSERVER_KIS_ACCT1_APP_SECRET", "secret-of-acct1")
    port = free_port()
    sup = SupervisorProcess(
        tmp_path,
        WRITER_PROGRAM + FAKE_TRACK_A,
        settings='data_age_s = 0.2\nhost = "c1"\n[[kis.accounts]]\nalias = "acct1"\n',
        metrics_port=port,
    ).start()
    own = wait_until(
        lambda: sup.rows("select host, role, whole_market, accounts from host_rosters"),
        30,
        "c1's own roster stored",
    )
    assert own[0][0] == "c1" and own[0][1] == "all"
    assert json.loads(own[0][2]) == ["track_a"]
    assert json.loads(own[0][3]) == [["acct1", fingerprint(KEY_1)]]

    # Every metric this named host serves carries its name.
    labels = _scrape(port)
    assert labels and all(each.get("host") == "c1" for each in labels)

    outbox = tmp_path / "outboxes"
    k1, k2 = fingerprint(KEY_1), fingerprint(KEY_2)
    c2 = HostRoster(
        host="c2",
        role="collectors",
        whole_market=("track_a", "universe"),
        accounts=(
            RosterAccount(alias="acct1", fingerprint=k2),
            RosterAccount(alias="acct9", fingerprint=k1),
        ),
        track_b_shard="1/2",  # and no host takes shard 2/2
    )
    c3 = HostRoster(
        host="c3",
        role="collectors",
        whole_market=("track_a", "universe"),
        accounts=(RosterAccount(alias="acct1", fingerprint=k1),),
    )
    _publish(sup, outbox, "c3", c3, age_h=37)
    _publish(sup, outbox, "c2", c2)
    alerts = wait_until(lambda: len(_overlap_alerts(sup)) >= 4 and _overlap_alerts(sup), 30)
    assert [(a[0], a[1], a[2], a[3]) for a in alerts] == [
        ("supervisor@c1", "critical", ALIAS_CODE, "acct1"),
        ("supervisor@c1", "critical", APP_KEY_CODE, "acct1@c1 acct9@c2"),
        ("supervisor@c1", "critical", SHARDS_CODE, "shards 2/2 on no host"),
        ("supervisor@c1", "critical", PROGRAM_CODE, "track_a"),
    ]
    for *_, code, _, message in alerts:
        assert "c2" in message and "c3" not in message, message
        assert code == SHARDS_CODE or "c1" in message, message  # c1 runs no Track B
    for row in db_rows(sup.url, "select * from alerts") + db_rows(
        sup.url, "select * from host_roster_events"
    ):
        text = repr(row)
        assert KEY_1 not in text and KEY_2 not in text and "secret-of-acct1" not in text
    assert "universe" not in repr(alerts)  # on c2 alone (c3's is stale)

    # `observer hosts` lists each host's latest roster, the stale one marked.
    done = subprocess.run(
        [sys.executable, "-m", "observer", "hosts", "--json", "--config", str(sup.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = {row["host"]: row for row in json.loads(done.stdout)}
    assert set(listed) == {"c1", "c2", "c3"}
    assert listed["c2"]["whole_market"] == ["track_a", "universe"]
    assert listed["c2"]["accounts"] == ["acct1", "acct9"]
    assert listed["c2"]["track_b_shard"] == "1/2" and listed["c1"]["track_b_shard"] == ""
    assert listed["c3"]["stale"] and not listed["c2"]["stale"]
    assert k1 not in done.stdout and KEY_1 not in done.stdout
    # Ages by the supervisor's clock ($OBSERVER_CLOCK): 40 hours on, every roster is stale.
    later = (datetime.now(UTC) + timedelta(hours=40)).isoformat(timespec="seconds")
    ahead = subprocess.run(
        [sys.executable, "-m", "observer", "hosts", "--json", "--config", str(sup.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OBSERVER_CLOCK": f"{later}@1x"},
    )
    assert ahead.returncode == 0, ahead.stderr
    assert all(row["stale"] and row["age_h"] >= 39.9 for row in json.loads(ahead.stdout))

    fixed = HostRoster(
        host="c2",
        role="collectors",
        whole_market=("universe",),
        accounts=(RosterAccount(alias="acct2", fingerprint=k2),),
    )
    _publish(sup, outbox, "c2", fixed)
    codes = ", ".join(f"'{c}'" for c in sorted(OVERLAP_CODES))
    ended = f"select code, subject, severity from alert_resolutions where code in ({codes})"
    resolved = wait_until(
        lambda: rows if len(rows := sup.rows(ended)) >= 4 else None,
        30,
        "the four overlaps resolved",
    )
    assert sorted(tuple(r) for r in resolved) == [
        (ALIAS_CODE, "acct1", "critical"),
        (APP_KEY_CODE, "acct1@c1 acct9@c2", "critical"),
        (SHARDS_CODE, "shards 2/2 on no host", "critical"),
        (PROGRAM_CODE, "track_a", "critical"),
    ]
    assert len(_overlap_alerts(sup)) == 4
    assert sup.terminate() == 0


@pytest.mark.slow
def test_a_host_without_a_name_serves_its_metrics_without_a_host_label(tmp_path: Path) -> None:
    port = free_port()
    SupervisorProcess(tmp_path, "[programs]\n", metrics_port=port).start()
    labels = wait_until(lambda: _scrape(port), 30, "metrics served")
    assert any(labels) and not any("host" in each for each in labels)
