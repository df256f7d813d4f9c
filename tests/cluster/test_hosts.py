"""Several collectors hosts: host-qualified sources, the allow-list, one key per source."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.codec import decode_parts, encode_frame
from bus.curve import KeyPair, ServerCurve
from bus.envelope import Envelope
from bus.events import GapDetected, SlotDecision
from bus.producer import Producer
from observer.alerts.states import alert_states
from observer.calendar.clock import ManualClock
from observer.cluster.hosts import host_of, own_source, qualified
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db.queries import AlertRecords, open_gaps
from observer.db.reconciliation_queries import slot_events_between
from observer.errors import ConfigError
from observer.process.heartbeat import Heartbeat
from observer.runtime import producer_for
from observer.supervisor.control import Reply
from observer.supervisor.ctl import _host_label
from observer.supervisor.roles import supervisor_source
from observer.supervisor.settings import SupervisorSettings
from observer.writer.owners import SourceKeys
from observer.writer.store import Store
from workers.gap_recovery.worker import GapRecovery

hosts = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
programs = st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True)


@given(programs, hosts)
def test_a_qualified_source_names_its_host_and_is_qualified_once(source: str, host: str) -> None:
    name = qualified(source, host)
    assert name == f"{source}@{host}"
    assert host_of(name) == host
    assert qualified(name, host) == name  # a name already qualified stays as it is
    assert qualified(name, "other") == name


@given(programs)
def test_without_a_host_every_source_is_its_programs_name(source: str) -> None:
    assert qualified(source, "") == source
    assert host_of(source) == ""


@given(programs, hosts, hosts)
def test_two_hosts_never_share_a_source(source: str, a: str, b: str) -> None:
    assert (qualified(source, a) == qualified(source, b)) == (a == b)


def config(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "observer.toml"
    path.write_text(f'[paths]\nrun_dir = "{tmp_path / "run"}"\n{body}')
    return load_settings(path)


def test_a_hosts_name_is_read_from_supervisor_host(tmp_path: Path) -> None:
    assert config(tmp_path, "").supervisor.host == ""
    assert config(tmp_path, '[supervisor]\nhost = "c2"\n').supervisor.host == "c2"


@pytest.mark.parametrize("name", ["C2", "c 2", "c@2", "-c2", "c" * 33, "c2/x"])
def test_a_host_name_that_would_break_a_source_or_a_folder_is_refused(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(ConfigError, match=r"supervisor\.host"):
        config(tmp_path, f'[supervisor]\nhost = "{name}"\n')


def test_a_named_hosts_producer_sends_and_keeps_its_outbox_under_the_qualified_name(
    tmp_path: Path,
) -> None:
    settings = config(tmp_path, '[supervisor]\nhost = "c2"\n')
    producer = producer_for(settings, "track_b")
    try:
        assert producer.source == own_source(settings.supervisor, "track_b") == "track_b@c2"
        assert (tmp_path / "run" / "outbox" / "track_b@c2").is_dir()
        assert not (tmp_path / "run" / "outbox" / "track_b").exists()
    finally:
        producer.close(drain_timeout=0)


def test_naming_a_host_that_ran_unnamed_warns_of_the_old_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "run" / "outbox" / "track_b").mkdir(parents=True)
    producer = producer_for(config(tmp_path, '[supervisor]\nhost = "c2"\n'), "track_b")
    producer.close(drain_timeout=0)
    assert "an outbox of the unnamed source 'track_b'" in caplog.text
    caplog.clear()
    producer_for(config(tmp_path, '[supervisor]\nhost = "c2"\n'), "track_a").close(0)
    assert "unnamed" not in caplog.text


def test_an_unnamed_hosts_producer_keeps_todays_names(tmp_path: Path) -> None:
    producer = producer_for(config(tmp_path, ""), "track_b")
    try:
        assert producer.source == "track_b"
        assert (tmp_path / "run" / "outbox" / "track_b").is_dir()
    finally:
        producer.close(drain_timeout=0)


def test_the_supervisors_source_is_one_per_host() -> None:
    assert supervisor_source("all") == supervisor_source("store") == "supervisor"
    assert supervisor_source("collectors") == "supervisor_collectors"
    for role in ("all", "store", "collectors"):
        assert qualified(supervisor_source(role, "c2"), "c2") == "supervisor@c2"  # type: ignore[arg-type]


def test_the_allow_list_takes_host_qualified_names_and_host_patterns() -> None:
    c1, c2 = b"1" * 40, b"2" * 40
    server = ServerCurve(
        KeyPair(b"w" * 40, b"s" * 40),
        {c1: ("track_b@c1", "supervisor@c1"), c2: ("*@c2",)},
    )
    assert server.may_send(c1.decode(), "track_b@c1")
    assert not server.may_send(c1.decode(), "track_b@c2")
    assert not server.may_send(c1.decode(), "track_b")  # the unqualified name is another source
    assert server.may_send(c2.decode(), "track_b@c2") and server.may_send(c2.decode(), "load@c2")
    assert not server.may_send(c2.decode(), "track_b@c1")
    assert not server.may_send(c2.decode(), "track_b@c2x")


def test_a_source_belongs_to_the_first_key_that_sends_as_it() -> None:
    keys = SourceKeys()
    assert keys.claim("k1", ["track_b@c1"]) is None
    assert keys.claim("k1", ["track_b@c1"]) is None  # its own, again
    assert keys.claim("k2", ["track_b@c2"]) is None
    assert keys.claim("k2", ["gap_recovery@c2", "track_b@c1"]) == "track_b@c1"
    assert keys.claim("k1", ["gap_recovery@c2"]) is None  # the refused frame took nothing
    first = keys.refusal("k2", "track_b@c1")
    assert first is not None and first.code == "bus_source_two_keys"
    assert first.context == {"key": "k2", "owner": "k1", "source": "track_b@c1"}
    assert keys.refusal("k2", "track_b@c1") is None  # alerted once per key


def _gap(gap_id: str) -> GapDetected:
    return GapDetected(
        gap_id=gap_id, symbol="005930", start_ns=1, end_ns=2, reason="disconnect", account="a"
    )


# Who detected each gap: hosts c1 and c2, an unnamed host, and c22 (which ends like c2).
DETECTED = [
    ("track_b@c1", "g1"),
    ("track_b@c2", "g2"),
    ("gap_recovery@c2", "g3"),
    ("track_b", "g4"),
    ("track_b@c22", "g5"),
]


def test_a_named_host_sweeps_the_gaps_its_own_sources_detected(store: Store) -> None:
    store.apply(
        decode_parts(encode_frame([Envelope(source, 1, 10 + n, _gap(gap_id))]))
        for n, (source, gap_id) in enumerate(DETECTED)
    )
    with store.engine.connect() as conn:
        assert [r.gap_id for r in open_gaps(conn)] == ["g1", "g2", "g3", "g4", "g5"]
        assert [r.gap_id for r in open_gaps(conn, "c2")] == ["g2", "g3"]
        assert [r.gap_id for r in open_gaps(conn, "c1")] == ["g1"]


def test_a_named_host_reconciles_the_symbols_its_own_track_b_watched(store: Store) -> None:
    def allocate(symbol: str) -> SlotDecision:
        return SlotDecision(
            account="a",
            action="allocate",
            symbol=symbol,
            slot=0,
            trigger="volume_surge",
            score=Decimal(1),
            reason="",
            expires_ns=10**18,
        )

    store.apply(
        decode_parts(encode_frame([Envelope(source, 1, 100 + n, allocate(symbol))]))
        for n, (source, symbol) in enumerate(
            [("track_b@c1", "000001"), ("track_b@c2", "000002"), ("track_b", "000003")]
        )
    )
    with store.engine.connect() as conn:
        assert [e[1] for e in slot_events_between(conn, 0, 10**18)] == [
            "000001",
            "000002",
            "000003",
        ]
        assert [e[1] for e in slot_events_between(conn, 0, 10**18, "c2")] == ["000002"]


class Feed:
    """The feed's envelopes, one batch per ``recv``."""

    def __init__(self, *batches: list[Envelope]) -> None:
        self.batches = list(batches)

    def recv(self, _timeout: int) -> list[Envelope] | None:
        return self.batches.pop(0) if self.batches else None


@pytest.mark.parametrize(("host", "taken"), [("c2", ["g2", "g3"]), ("", ["g1", "g2", "g3", "g4"])])
def test_gap_recovery_takes_the_gaps_of_the_feed_its_host_detected(
    host: str, taken: list[str]
) -> None:
    settings = Settings(supervisor=SupervisorSettings(host=host))
    now = 1_800_000_000 * 10**9
    worker = GapRecovery(
        settings, ManualClock(now), Producer.__new__(Producer), Heartbeat(None), asyncio.Event()
    )
    gap = GapDetected(
        gap_id="", symbol="005930", start_ns=now, end_ns=now + 3 * 10**9, reason="disconnect"
    )
    feed = Feed(
        [Envelope(s, 1, now, msgspec.structs.replace(gap, gap_id=g)) for s, g in DETECTED[:2]],
        [Envelope(s, 1, now, msgspec.structs.replace(gap, gap_id=g)) for s, g in DETECTED[2:4]],
    )
    worker._drain(feed)  # type: ignore[arg-type]
    assert sorted(worker.jobs) == taken


def test_a_hosts_status_line_names_its_address_and_its_name() -> None:
    named = Reply(ok=True, data={"host_name": "c2"})
    assert _host_label("10.0.0.3:5703", named) == "10.0.0.3:5703 (c2) "
    assert _host_label("10.0.0.2:5703", Reply(ok=True, data={"host_name": ""})) == "10.0.0.2:5703 "
    assert _host_label(None, Reply(ok=True)) == ""
    assert _host_label(None, named) == "(c2) "


def test_a_named_hosts_resolution_ends_only_its_own_hosts_alerts() -> None:
    fatal = ("critical", "program_fatal", "track_b", "FATAL")
    records = AlertRecords(
        alerts=[
            ("supervisor@c1", 1, 100, *fatal),
            ("supervisor@c2", 1, 100, *fatal),
            ("supervisor_collectors", 1, 100, *fatal),
        ],
        resolutions=[("supervisor@c2", 2, 200, "critical", "program_fatal", "track_b", "ok")],
        acks=[],
        deliveries=[],
    )
    states = {s.notice.id: s.state for s in alert_states(records)}
    # c1's track_b is still down; an unnamed host's alert is resolved as before.
    assert states == {
        "supervisor@c1:1": "open",
        "supervisor@c2:1": "resolved",
        "supervisor_collectors:1": "resolved",
    }
