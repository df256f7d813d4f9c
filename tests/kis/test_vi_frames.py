"""Volatility-interruption frames (H0STVIC0, H0NXVIC0, H0UNVIC0), decoded.

Their layouts are the 2026-09 export's; KIS gives no example payload, so these records are
built from its field lists. Any field may be hostile: a record decodes to values its columns
hold, or is refused alone, its frame's others standing.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from decimal import Decimal

from hypothesis import given

from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.realtime import RealtimeDecoder
from tests.kis.test_parsers_storable import assert_storable, mutated
from tests.samples import T0

# A static VI in force on 삼성전자 (KRX's layout) and the combined feed's lifting of it on
# Nextrade: date, code, name, market, Y/N, lifted at, started at, kind, price, static base
# and move, dynamic base and move, count, (venue,) ETP.
STARTED = "20261120^005930^삼성전자^0^Y^000000^100510^1^80900^73500^10.07^0^0.00^1^N"
LIFTED = "20261120^005930^삼성전자^0^N^100710^100510^1^80900^73500^10.07^0^0.00^1^2^N"


def _at(hhmmss: str) -> int:
    return (
        int(datetime.strptime(f"20261120{hhmmss}", "%Y%m%d%H%M%S").replace(tzinfo=KST).timestamp())
        * 10**9
    )


def test_a_vi_s_start_and_its_lifting_read_by_name() -> None:
    decoder = RealtimeDecoder("acct1")
    (started,) = decoder.decode(f"0|H0STVIC0|001|{STARTED}", T0).vis
    assert (started.symbol, started.trade_date, started.applies) == (
        "005930",
        date(2026, 11, 20),
        True,
    )
    assert (started.started_ns, started.ended_ns) == (_at("100510"), 0)  # not lifted yet
    assert (started.kind, started.price, started.static_base) == ("1", 80_900, 73_500)
    assert started.static_move_pct == Decimal("10.07") and started.count == 1
    assert (started.venue, started.exchange, started.etp) == ("KRX", None, False)
    assert (started.received_ns, started.account) == (T0, "acct1")
    frame = RealtimeDecoder("acct2").decode(f"0|H0UNVIC0|002|{LIFTED}^{LIFTED}", T0)
    lifted = frame.vis[0]
    assert len(frame.vis) == 2 and not frame.errors
    assert (lifted.applies, lifted.ended_ns, lifted.started_ns) == (
        False,
        _at("100710"),
        _at("100510"),
    )
    assert (lifted.venue, lifted.exchange) == ("combined", "2")  # the venue it names: Nextrade
    (nxt,) = decoder.decode(f"0|H0NXVIC0|001|{STARTED}", T0).vis
    assert nxt.venue == "NXT"


def test_a_record_with_a_bad_date_is_refused_alone() -> None:
    bad = STARTED.replace("20261120", "20261340", 1)
    frame = RealtimeDecoder("acct1").decode(f"0|H0STVIC0|002|{bad}^{STARTED}", T0)
    assert len(frame.vis) == 1 and len(frame.errors) == 1
    assert frame.errors[0].symbol == "005930" and "BSOP_DATE" in str(frame.errors[0].error)


@given(mutated(STARTED.split("^")))
def test_hostile_fields_are_storable_or_refuse_their_record_alone(record: list[str]) -> None:
    decoder = RealtimeDecoder("acct1")
    hostile = "^".join(value.replace("^", "") for value in record)  # the same fields
    with contextlib.suppress(KisProtocolError):  # a frame refused whole is an answer too
        frame = decoder.decode(f"0|H0STVIC0|003|{STARTED}^{hostile}^{STARTED}", T0)
        assert len(frame.vis) + len(frame.errors) == 3 and len(frame.vis) >= 2
        for event in frame.vis:
            assert_storable(event)
