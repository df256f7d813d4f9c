"""A demo-like trading morning on two hosts: the real workers, the simulator, the link cut.

Host A (namespace ``day-a-*``) runs the KIS simulator on its loopback and ``observer
supervise --role collectors`` with the shipped programs of that role (token, master files,
universe, ETF list, Track A, Track B, gap recovery), configured as ``observer demo``
configures them; host B (``day-b-*``) runs ``observer supervise --role store`` (writer,
notifier) with the SQLite database. The bus and the control sockets are tcp+CURVE across the
veth pair. All three share one accelerated clock (``--clock``). During the session B's link
is cut for ``OBSERVER_TEST_CUT_S`` wall seconds and restored: what A's workers produced
meanwhile waits in A's outboxes and is delivered once.

The store is PostgreSQL, as a deployment's: the writer on B reaches it by its Unix socket
(the server listens on the root namespace's loopback only), and the collectors read it
(the universe, Track A's resume, Track B's read-back, gap recovery's sweeps) over the link,
through a forwarder on B's address. So the cut takes their reads away too: each fails
within the reader pool's timeout (`observer.db.readers`), and the day goes on.
Ports 5711-5714 and 5720, and the ``day-`` namespaces, keep clear of
tests/cluster/test_multihost.py running at the same time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bus.curve import generate_key_pair
from harness.demo import DemoOptions, demo_config, track_b_summary
from observer.calendar.clock import SimulatedClock, now_utc
from observer.calendar.phases import KST
from observer.db.engine import make_engine
from tests.cluster.test_multihost import (
    CUT_S,
    HOST_A,
    HOST_B,
    Hosts,
    HostSupervisor,
    ctl_in,
    in_namespace,
    namespaces,
    outboxed,
    stop_hosts,
)
from tests.db.test_readers_link import FORWARDER, SERVER_SOCKET, start_in, stop_process
from tests.support import (
    ROOT,
    assert_exactly_once,
    audit,
    audit_command,
    db_rows,
    timing_over,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DAY = date(2026, 11, 20)  # a Friday session
# A Track A cycle (600 simulated s) in 10 wall seconds. At 120x, beside the suite's other
# workers on 2 cores, Track B reads its feed minutes of clock time late and times out
# registrations whose answers it has not read yet; at 60x it keeps up beside three busy
# loops at the same priority.
SPEED = 60.0
START = clock_time(8, 5)  # the start-up jobs (universe: ~16 wall s under load) done by 09:00
# 480x from 08:35 to 08:55, when the start-up jobs are done and nothing runs but Track B's
# sessions. The universe was done by 08:11 here, by 08:54 beside two busy loops with 08:25.
# 40x from 09:25, through Track B's streams (from 09:30): at 60x, on a slower machine, with
# the suite's other tests at their lower priority, Track B read its feed minutes late and
# 44,000 of 177,000 ticks were owed to released registrations (delivery_lag gaps).
STREAM_SPEED = 40.0
QUIET = (
    (clock_time(8, 35), 480.0),
    (clock_time(8, 55), SPEED),
    (clock_time(9, 25), STREAM_SPEED),
)
LEAD_S = 20.0  # wall seconds for the simulator and both supervisors to start by START
# A start this much later still leaves the start-up jobs their hour (the suite's first test,
# beside the other worker's start on a fresh checkout, has taken 11 and 17 s to start its
# simulator).
LATE_START = timedelta(minutes=10)
CUT_AT = clock_time(9, 32)  # Track B streams from 09:30
UNTIL = clock_time(9, 45)  # at least: Track A's 09:00-09:40 cycles, ten minutes of ticks
PORT = 5711  # the writer's ingest; its feed 5712, both supervisors' control 5713
DB_PORT = 5714  # PostgreSQL on B's address (the forwarder to the server's socket)
SIM_PORT = 5720
STATS = f"http://127.0.0.1:{SIM_PORT}/_sim/stats"
# The simulated market (the universe takes about 2 in 5): 300 as the short demo day's test
# has it; nothing asserted here needs 600 (the saving in CPU was below the machine's noise).
STOCKS = 300
COLLECTOR_SOURCES = (  # what the collectors' key may send as: the shipped collectors' sources
    '["supervisor_collectors", "track_a", "track_b", "gap_recovery", "gap_verify", '
    '"universe", "master_file", "token", "readiness", "enrich", "etf", "investor", "flows"]'
)


@pytest.fixture
def day_hosts() -> Iterator[Hosts]:
    with namespaces("day") as both:
        yield both


def _at(at: clock_time) -> datetime:
    return datetime.combine(DAY, at, tzinfo=KST)


def _sim(namespace: str, clock: SimulatedClock, log: Path) -> subprocess.Popen[bytes]:
    args = [
        *in_namespace(namespace, "observer"),
        *("sim", "--host", "127.0.0.1", "--port", str(SIM_PORT), "--clock", clock.spec),
        *("--seed", "1", "--calls-per-second", "400", "--stocks", str(STOCKS)),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def _sim_stats(namespace: str) -> dict[str, Any]:
    """The simulator's /_sim/stats, asked from inside host A (its loopback)."""
    fetch = "import sys, httpx; print(httpx.get(sys.argv[1], timeout=10).text)"
    shown = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", fetch, STATS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    stats: dict[str, Any] = json.loads(shown.stdout)
    return stats


def _sim_ready(log: Path) -> bool:
    return any(line.startswith("observer sim ready") for line in log.read_text().splitlines())


def _on_the_demos(host: HostSupervisor, url: str, database: str = "") -> None:
    """The host's configuration over the demo's (the shipped one, changed as a demo does)."""
    sim_url = f"http://127.0.0.1:{SIM_PORT}"
    (host.root / "demo.toml").write_text(demo_config(DemoOptions(data_dir=host.root), sim_url))
    own = host.config.read_text()
    host.config.write_text('extends = "demo.toml"\n' + own)
    # What the host's programs read they read from the store's database. Nextrade's
    # pre-market is not this test's: at 480x its streams crowd the quiet spell of 08:35-08:55.
    day = host.root / "day.toml"
    day.write_text(
        f'extends = "{host.config.name}"\n[track_b.feeds]\nnxt_pre_market = []\n'
        f'[database]\nurl = "{url}"\n{database}'
    )
    host.config = day


def _committed(url: str) -> dict[str, int]:
    """Each source's committed mark (cheap: polled while the writer catches up)."""
    try:
        return dict(db_rows(url, "select source, seq from bus_offsets"))
    except Exception:  # the writer has not created the schema yet
        return {}


def _held(outboxes: Path, committed: dict[str, int]) -> dict[str, int]:
    """Per source of A: events written to its outbox beyond what the store has committed."""
    written = {box.name: outboxed(box) for box in sorted(outboxes.iterdir())}
    return {
        source: last - committed.get(source, 0)
        for source, last in written.items()
        if last > committed.get(source, 0)
    }


def _track_a_cycles(url: str) -> list[tuple[Any, ...]]:
    """KRX's cycles (Nextrade's of 08:00-08:40 come before, on a universe that may be late)."""
    return [
        tuple(row)
        for row in db_rows(
            url,
            "select cycle_id, universe_size, succeeded, carried, failed, unfinished, overran "
            "from track_a_cycles where venue = 'KRX' order by cycle_id",
        )
    ]


@pytest.mark.timeout(300 + int(CUT_S) * 2)
@pytest.mark.exclusive
def test_a_trading_morning_on_two_hosts_survives_the_store_hosts_link_cut(
    day_hosts: Hosts, tmp_path: Path, pg_url: str
) -> None:
    hosts = day_hosts
    keys = tmp_path / "keys"
    for name in ("writer", "collectors", "alice"):
        generate_key_pair(keys, name)
    clients = f'[bus.curve.clients]\ncollectors = {COLLECTOR_SOURCES}\nwriter = ["*"]\n'
    store = HostSupervisor(tmp_path / "host-b", keys, "writer", HOST_B, clients, port=PORT)
    collectors = HostSupervisor(tmp_path / "host-a", keys, "collectors", HOST_A, "", port=PORT)
    url = pg_url  # the tests' view of the store, from this machine's loopback
    database = make_url(pg_url).database
    socket_dir = Path(SERVER_SOCKET).parent
    _on_the_demos(store, f"postgresql+psycopg://postgres@/{database}?host={socket_dir}")
    # A read waits 2 s at most, so the cut fails the collectors' reads (10 s by default).
    remote = f"postgresql+psycopg://postgres@{HOST_B}:{DB_PORT}/{database}"
    _on_the_demos(collectors, remote, "reader_pool_timeout_s = 2\n")
    forwarder = start_in(hosts.b, FORWARDER, HOST_B, str(DB_PORT), SERVER_SOCKET)
    anchor = time.time_ns() + int(LEAD_S * 1e9)
    quiet = tuple((int(_at(at).timestamp()) * 1_000_000_000, speed) for at, speed in QUIET)
    clock = SimulatedClock(int(_at(START).timestamp()) * 1_000_000_000, SPEED, anchor, quiet)
    sim_log = tmp_path / "sim.log"
    sim = _sim(hosts.a, clock, sim_log)
    started = time.monotonic()
    try:
        store.start(hosts.b, "store", "--clock", clock.spec)
        collectors.start(hosts.a, "collectors", "--clock", clock.spec)
        wait_until(lambda: _sim_ready(sim_log), 60, "the simulator")
        late = now_utc(clock) - _at(START)
        assert late <= LATE_START, (
            f"the simulator was ready {late} after the day began; raise LEAD_S"
        )

        # Trading: Track A's cycles since 09:00, Track B's ticks since 09:30 stored.
        wait_until(lambda: now_utc(clock) >= _at(CUT_AT), 120, "the session")
        wait_until(lambda: db_rows(url, "select count(*) from trade_ticks")[0][0] > 0, 60, "ticks")
        hosts.link(up=False)
        cut_at = time.monotonic()
        cut_sim = now_utc(clock)
        at_cut = _committed(url)
        outboxes = collectors.root / "run" / "outbox"
        # The collectors go on: Track B's ticks (and Track A's cycles) wait in A's outboxes.
        wait_until(
            lambda: time.monotonic() - cut_at >= CUT_S and _held(outboxes, at_cut),
            CUT_S + 60,
            "the cut",
        )
        held = _held(outboxes, at_cut)
        in_outboxes = {source: at_cut.get(source, 0) + n for source, n in held.items()}
        assert "track_b" in held, held
        # Track B's ticks of the cut wait on A; a source that sent its last event just before
        # the cut may have had it committed since `at_cut` was read, never more.
        now = _committed(url)
        assert now.get("track_b", 0) < in_outboxes["track_b"], (now, in_outboxes)
        assert all(now.get(s, 0) <= n for s, n in in_outboxes.items()), (now, in_outboxes)
        # An operator on A sees the backlog: Track B's heartbeat carries its outbox's.
        shown = ctl_in(hosts.a, collectors.config, "--json", "status")
        programs = {p["name"]: p for p in json.loads(shown.stdout)["programs"]}
        assert programs["track_b"]["counters"]["bus_pending"] > 0, programs["track_b"]
        hosts.link(up=True)
        down_s = time.monotonic() - cut_at
        restored_at, restored_sim = time.monotonic(), now_utc(clock)
        wait_until(
            lambda: all(_committed(url).get(s, 0) >= n for s, n in in_outboxes.items()),
            120 + CUT_S,
            "the outboxes delivered",
        )
        drain_s = time.monotonic() - restored_at
        # The day goes on past the cut: a Track A cycle begun after the link came back ends.
        end = max(_at(UNTIL), restored_sim + timedelta(minutes=12))
        wait_until(lambda: now_utc(clock) >= end, 120 + CUT_S, "the day's end")
    finally:
        stopped = stop_hosts(collectors, store)
        try:
            # After the stop: Track B took ticks until its sessions closed.
            gateway = _sim_stats(hosts.a) if sim.poll() is None else {}
        finally:
            sim.terminate()
            sim.wait(30)
            stop_process(forwarder)
    wall_s = time.monotonic() - started
    timing_over()  # the day is over: what follows reads what it stored
    logs = store.log.read_text()[-2000:] + collectors.log.read_text()[-2000:]
    assert stopped == [0, 0], logs
    # Every collectors' source was admitted (a refused one would wait in its outbox).
    assert "refused frames" not in (store.root / "log" / "writer.log").read_text()
    checked = audit_command(store.config)
    assert checked.returncode == 0, checked.stdout
    found = {source: a.max_seq for source, a in audit(url).items()}
    assert {"supervisor", "supervisor_collectors", "track_a", "track_b", "universe"} <= set(
        found
    ), found
    assert_exactly_once(url, found, real=True)  # 0 lost, 0 duplicated
    # What A held at the restore was delivered, and A's workers went on sending after it.
    assert all(found[source] > n for source, n in in_outboxes.items() if source.startswith("track"))

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ticks = track_b_summary(conn, gateway.get("records_sent", {}))
    finally:
        engine.dispose()
    gaps = db_rows(url, "select reason, count(*) from gaps group by reason")
    if dict(gaps).get("delivery_lag"):
        # A machine too loaded for Track B to keep up: the feed read as behind, and what was
        # pushed to slots released (or held at the stop) meanwhile was never read, said in
        # those gaps (the demo's 10:30 fault's case).
        assert 0 < ticks["ticks_stored"] <= ticks["ticks_sent"], (ticks, gaps)
    else:
        assert ticks["ticks_stored"] == ticks["ticks_sent"] > 0, (ticks, gaps)

    # The collectors' reads crossed the link: the cut failed some (gap recovery sweeps every
    # few seconds), each within the pool's 2 s, and each reader went on.
    failed_reads = sum(
        '"logger": "observer.db.outages"' in line
        for log in (collectors.root / "log").glob("*.log")
        for line in log.read_text().splitlines()
    )
    assert failed_reads > 0, "no read of the collectors failed during the cut"
    cycles = _track_a_cycles(url)
    complete = [c for c in cycles if c[1] > 0 and c[4] == 0 and c[5] == 0 and c[2] + c[3] == c[1]]
    assert len(cycles) >= 4 and cycles[0][0].endswith("-0900") and complete == cycles, cycles
    print(
        f"\nlink down {down_s:.1f}s ({cut_sim.astimezone(KST):%H:%M}-"
        f"{restored_sim.astimezone(KST):%H:%M} KST); outboxes held "
        f"{sum(held.values())} events beyond the last commits ({held}); delivered "
        f"{drain_s:.1f}s after the link came back; ticks stored/sent "
        f"{ticks['ticks_stored']}/{ticks['ticks_sent']}; Track A cycles "
        f"{len(complete)}/{len(cycles)} complete; {failed_reads} reads failed by the cut; "
        f"{sum(found.values())} events; "
        f"{wall_s:.0f}s wall"
    )
