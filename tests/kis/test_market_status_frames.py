"""Market-operation (H0STMKO0, H0NXMKO0) and program-trading (*PGM0) frames, decoded.

KIS's own examples read as documented; any field may be hostile: a record decodes to values
its columns hold, or is refused alone, its frame's others standing.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from hypothesis import given

from observer.calendar.phases import KST
from observer.errors import KisProtocolError
from observer.kis.realtime import RealtimeDecoder
from tests.kis.test_parsers_storable import assert_storable, mutated
from tests.samples import T0

# KIS's examples (the reference's H0STMKO0, without EXCH_CLS_CODE, and H0STPGM0).
STATUS_EXAMPLE = "396300^N^(null)^^311^^^55^N^N"
STATUS = "005930^Y^거래정지 사유^164^^^^58^N^N^1"
PROGRAM = (
    "005930^092237^1413444^109159646900^1189408^91931710200^-224036^-17227936700^65033^15475^-49558"
)


def test_kis_s_examples_read_as_documented() -> None:
    decoder = RealtimeDecoder("acct1")
    (example,) = decoder.decode(f"0|H0STMKO0|001|{STATUS_EXAMPLE}", T0).statuses
    assert (example.symbol, example.halted, example.halt_reason) == ("396300", False, "")
    assert (example.operation, example.expected_operation, example.status) == ("", "311", "55")
    assert (example.vi, example.overtime_vi, example.exchange) == ("N", "N", None)
    (halted,) = decoder.decode(f"0|H0NXMKO0|001|{STATUS}", T0).statuses
    assert halted.halted and halted.halt_reason == "거래정지 사유" and halted.venue == "NXT"
    assert (halted.operation, halted.status, halted.exchange) == ("164", "58", "1")
    assert halted.received_ns == T0 and halted.account == "acct1"
    frame = decoder.decode(f"0|H0UNPGM0|002|{PROGRAM}^{PROGRAM}", T0)
    first = frame.programs[0]
    assert len(frame.programs) == 2 and first.venue == "combined"
    assert (first.sell_qty, first.buy_qty, first.net_qty) == (1_413_444, 1_189_408, -224_036)
    assert (first.net_value, first.net_residual) == (-17_227_936_700, -49_558)
    # 09:22:37 on the KST day of receipt
    day = datetime.fromtimestamp(T0 / 1e9, KST).date()
    assert (
        first.exchange_ns
        == int(datetime(*day.timetuple()[:3], 9, 22, 37, tzinfo=KST).timestamp()) * 10**9
    )


@given(mutated(STATUS.split("^")), mutated(PROGRAM.split("^")))
def test_hostile_fields_are_storable_or_refuse_their_record_alone(
    status: list[str], program: list[str]
) -> None:
    decoder = RealtimeDecoder("acct1")
    for tr_id, good, record in (("H0STMKO0", STATUS, status), ("H0STPGM0", PROGRAM, program)):
        hostile = "^".join(value.replace("^", "") for value in record)  # the same fields
        with contextlib.suppress(KisProtocolError):  # a frame refused whole is an answer too
            frame = decoder.decode(f"0|{tr_id}|003|{good}^{hostile}^{good}", T0)
            events = [*frame.statuses, *frame.programs]
            assert len(events) + len(frame.errors) == 3 and len(events) >= 2
            for event in events:
                assert_storable(event)
