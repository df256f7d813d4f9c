"""A Track B host with ``[track_b] shard = "1/2"``: it never takes a symbol of shard 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from harness.sim.server import SimConfig
from observer.cluster.shards import shard_of
from observer.process.heartbeat import HEARTBEAT_ENV, NOTIFY_FD_ENV
from tests.support import (
    SimThread,
    WriterProcess,
    sim_accounts_config,
    start_on_sim_clock,
    wait_until,
)
from tests.track_b.test_track_b import (
    MARKET,
    MOVERS,
    NINE,
    UNIVERSE,
    publish_morning,
    rows,
    shut_down,
)
from workers.track_b.cli import app
from workers.track_b.pins import slots_path, write_pins

OURS = [s for s in UNIVERSE if shard_of(s, 2) == 1]
THEIRS = [s for s in UNIVERSE if shard_of(s, 2) == 2]


class Beats:
    """The heartbeats a process writes to its notify pipe, read without blocking."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        self.buffer = b""
        self.last: dict[str, float] = {}

    def counters(self) -> dict[str, float]:
        try:
            while chunk := os.read(self.read, 65536):
                self.buffer += chunk
        except BlockingIOError:
            pass
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            notice: dict[str, Any] = json.loads(line)
            if notice.get("counters"):
                self.last = notice["counters"]
        return self.last

    def close(self) -> None:
        os.close(self.read)
        os.close(self.write)


def test_a_host_of_shard_1_of_2_never_takes_a_symbol_of_shard_2(tmp_path: Path) -> None:
    assert OURS and THEIRS and set(MOVERS) & set(THEIRS)  # the split leaves it movers to skip
    url = f"sqlite:///{tmp_path / 'observer.db'}"
    writer = WriterProcess(tmp_path, url).start()
    data = tmp_path / "data"
    sim = SimThread(MARKET, NINE + timedelta(minutes=29), SimConfig(), speed=20)
    beats = Beats()
    proc: subprocess.Popen[bytes] | None = None
    try:
        publish_morning(writer, tmp_path / "outbox")
        config = sim_accounts_config(
            tmp_path,
            sim,
            writer,
            '[supervisor]\nhost = "c1"\n'
            "[kis.stream]\nmax_registrations = 3\n"
            '[track_b]\nsilence_tolerance_s = 600\nshard = "1/2"\n',
        )
        # A pin of shard 2's already in the file (written before the shard was set): ignored.
        write_pins(data, {THEIRS[0]})
        proc = start_on_sim_clock(
            ["track-b", "run", "--config", str(config)],
            sim,
            tmp_path / "track_b.log",
            env={NOTIFY_FD_ENV: str(beats.write), HEARTBEAT_ENV: "0.2"},
            pass_fds=(beats.write,),
        )
        allocated = wait_until(
            lambda: (
                (r := rows(url, "select symbol, source from slot_events where action = 'allocate'"))
                and len(r) >= 6
                and r
            ),
            60,
            "six allocations",
        )
        assert {source for _, source in allocated} == {"track_b@c1"}
        # The movers of shard 1 first (the context sync), the rest of the slots by market cap.
        assert set(MOVERS) & set(OURS) <= {s for s, _ in allocated} <= set(OURS)
        # The movers of shard 2 fired their triggers here: counted, not taken.
        wait_until(lambda: beats.counters().get("other_shard", 0) > 0, 60, "other_shard")
        # An operator pins a symbol of shard 2 here: refused, naming its shard.
        refused = CliRunner().invoke(app, ["slots", "--config", str(config), "pin", THEIRS[1]])
        assert refused.exit_code == 1 and 'to shard "2/2"' in refused.output
        wait_until(lambda: rows(url, "select count(*) from trade_ticks")[0][0] > 0, 60, "ticks")
        # Another evaluation: still no symbol of shard 2, streamed or held.
        first = json.loads(slots_path(data).read_text())["at_ns"]
        wait_until(
            lambda: json.loads(slots_path(data).read_text())["at_ns"] > first, 60, "evaluation"
        )
        held = {s["symbol"] for s in json.loads(slots_path(data).read_text())["slots"]}
        assert len(held) == 6 and held <= set(OURS)
        assert {r[0] for r in rows(url, "select distinct symbol from slot_events")} <= set(OURS)
        assert {r[0] for r in rows(url, "select distinct symbol from trade_ticks")} <= set(OURS)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        shut_down(proc, writer, sim)
        beats.close()
