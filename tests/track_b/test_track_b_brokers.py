"""Brokers' trading (H0STMBC0, H0NXMBC0) as a feed kind: a ``[track_b.feeds]`` row holding
``brokers`` registers it beside the trades on each venue, and every record the simulator
sends is stored, a row per ranked broker, and read back through `observer.data`."""

from __future__ import annotations

import signal
from pathlib import Path

import pyarrow as pa

from harness.sim.brokers import BROKERS
from observer.data import Catalog
from tests.support import wait_until
from tests.track_b.test_track_b import rows, stored_as_sent
from tests.track_b.test_track_b_after_market import DAY, NXT, UNIVERSE, VENUES, sim_day

FEEDS = 'feeds.regular = ["trades", "brokers"]\n'


def test_a_row_with_brokers_streams_them_and_each_record_is_stored_rank_by_rank(
    tmp_path: Path,
) -> None:
    """10:30-10:31 at 10x, then 60x: the universe's four names hold trades and brokers on
    KRX (the two Nextrade names on Nextrade's too: 12 registrations, 6 on each of the two
    accounts); each brokers' record sent is stored as its ten ranked brokers, the foreign
    totals on each row, with its venue and session."""
    with sim_day(tmp_path, VENUES, "10:30", "10:31", registrations=6, track_b=FEEDS) as day:
        url, sim, proc = day.url, day.sim, day.start()
        realtime = sim.sim.realtime
        records = "select count(distinct source || ':' || seq) from broker_trades"

        def stored() -> bool:
            assert proc.poll() is None, day.log.read_text()[-2000:]
            return realtime.records_sent["H0NXMBC0"] >= 10 and rows(url, records)[0][0] >= 10

        wait_until(stored, 120, "Nextrade's brokers' records sent and stored")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert realtime.registered["H0STMBC0"] == len(UNIVERSE)
        assert realtime.registered["H0NXMBC0"] == len(NXT)
        sent = realtime.records_sent
        stored_as_sent(
            url,
            {"KRX": sent["H0STMBC0"], "NXT": sent["H0NXMBC0"]},
            "broker_trades",
            "count(distinct source || ':' || seq)",
        )
        ranks = rows(
            url,
            "select source, seq, group_concat(side || rank, ','), min(trading_session), "
            "min(foreign_net_qty = foreign_buy_qty - foreign_sell_qty) from broker_trades "
            "group by source, seq",
        )
        every = ",".join(f"{side}{rank}" for side in ("sell", "buy") for rank in range(1, 6))
        assert {tuple(sorted(r[2].split(","))) for r in ranks} == {tuple(sorted(every.split(",")))}
        assert {r[3] for r in ranks} == {"regular"} and all(r[4] for r in ranks)
        names = {name for _, name, _, _ in BROKERS}
        assert {r[0] for r in rows(url, "select distinct name from broker_trades")} <= names
        with Catalog(url, tmp_path / "archive") as catalog:
            read = catalog.broker_trades(UNIVERSE, DAY)
        assert read.num_rows == rows(url, "select count(*) from broker_trades")[0][0]
        assert read.schema.field("received_time").type == pa.timestamp("ns", tz="Asia/Seoul")
        assert read.schema.field("share_pct").type == pa.float64()
