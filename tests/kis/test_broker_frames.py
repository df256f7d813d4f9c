"""Brokers' trading records (H0STMBC0, H0NXMBC0, H0UNMBC0): read by name, ranks by side, an
empty rank left out, a hostile field refusing its record alone, every value storable."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from bus.events import BrokerTrade
from harness.sim.brokers import BROKERS, Unfilled, broker_record
from observer.db import models as m
from observer.kis.realtime import RealtimeDecoder
from observer.kis.schemas import H0STMBC0_FIELDS
from tests.kis.test_parsers_storable import assert_fits, mutated
from tests.samples import T0

RECORD = broker_record("005930", 1_000_000, 400)
AT = {name: i for i, name in enumerate(H0STMBC0_FIELDS)}


def _decoded(*records: str, tr_id: str = "H0STMBC0") -> tuple[list[BrokerTrade], int]:
    frame = RealtimeDecoder("acct1").decode(f"0|{tr_id}|{len(records):03d}|{'^'.join(records)}", T0)
    return frame.brokers, len(frame.errors)


def test_the_simulator_s_record_reads_back_as_it_was_drawn() -> None:
    """78 fields: ranks by side, largest first, each share of the volume; the foreign totals
    (all four foreign brokers', ranked or not)."""
    assert len(RECORD.split("^")) == len(H0STMBC0_FIELDS) == 78
    (trade,), refused = _decoded(RECORD)
    assert not refused and (trade.symbol, trade.venue, trade.received_ns) == ("005930", "KRX", T0)
    assert [(r.side, r.rank) for r in trade.ranks] == [
        (side, rank) for side in ("sell", "buy") for rank in range(1, 6)
    ]
    sellers = [r for r in trade.ranks if r.side == "sell"]
    assert [r.qty for r in sellers] == sorted((r.qty for r in sellers), reverse=True)
    assert all(r.share_pct == Decimal(f"{100 * r.qty / 1_000_000:.2f}") for r in trade.ranks)
    assert trade.foreign_net_qty == trade.foreign_buy_qty - trade.foreign_sell_qty
    assert trade.foreign_sell_qty >= sum(r.qty for r in sellers if r.foreign_broker)
    assert {(r.broker, r.name, r.name_en) for r in trade.ranks} <= {x[:3] for x in BROKERS}
    (nxt,), _ = _decoded(RECORD, tr_id="H0NXMBC0")
    assert nxt.venue == "NXT" and nxt.ranks == trade.ranks


def test_a_rank_sent_empty_or_as_zeros_is_left_out() -> None:
    fields = RECORD.split("^")
    fields[AT["SELN_MBCR_NO5"]] = ""
    fields[AT["SELN_MBCR_NO4"]] = "00000"
    fields[AT["TOTAL_SELN_QTY5"]] = ""  # an empty rank's figures are not read
    (trade,), refused = _decoded("^".join(fields))
    assert not refused
    assert [r.rank for r in trade.ranks if r.side == "sell"] == [1, 2, 3]
    assert [r.rank for r in trade.ranks if r.side == "buy"] == [1, 2, 3, 4, 5]


@given(st.integers(0, 60), st.sampled_from(["empty", "zeros", "filled"]))
def test_each_way_of_sending_an_unfilled_rank_reads_as_the_brokers_who_traded(
    volume: int, unfilled: Unfilled
) -> None:
    """A quiet name's record (some brokers not traded yet), in each way the simulator can send
    a rank no broker fills: "empty" and "zeros" leave the rank out; "filled" ranks the
    untraded brokers with 0 shares. A rank read is always a traded broker's or a 0."""
    (trade,), refused = _decoded(broker_record("005930", volume, volume, unfilled))
    (every,), _ = _decoded(broker_record("005930", volume, volume, "filled"))
    assert not refused
    assert len(every.ranks) == 10  # five a side, traded or not
    traded = tuple(r for r in every.ranks if r.qty > 0)
    assert trade.ranks == (every.ranks if unfilled == "filled" else traded)
    for side in ("sell", "buy"):
        ranks = [r.rank for r in trade.ranks if r.side == side]
        assert ranks == list(range(1, len(ranks) + 1))
    if volume == 0:
        assert not traded


def test_a_hostile_field_refuses_its_record_alone() -> None:
    fields = RECORD.split("^")
    fields[AT["TOTAL_SHNU_QTY2"]] = "1e3"
    trades, refused = _decoded(RECORD, "^".join(fields), RECORD)
    assert len(trades) == 2 and refused == 1


def _assert_storable(trade: BrokerTrade) -> None:
    """Every value fits its column of ``broker_trades``: the record's and each rank's."""
    header = {k: v for k, v in msgspec.structs.asdict(trade).items() if k != "ranks"}
    for row in (header, *(msgspec.structs.asdict(rank) for rank in trade.ranks)):
        assert_fits(m.BrokerTradeRow, row)


@given(mutated(RECORD.split("^")))
def test_a_decoded_record_is_storable_or_refused(record: list[str]) -> None:
    """Hostile fields among good records: an event whose values fit, or one refusal."""
    hostile = "^".join(value.replace("^", "").replace("|", "") for value in record)
    trades, refused = _decoded(RECORD, hostile)
    assert len(trades) + refused == 2 and len(trades) >= 1
    for trade in trades:
        _assert_storable(trade)
