"""The ETF rows' parsers and the health's judgement, against independent statements."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert

from bus.events import EtfDaily, EtfListing
from harness.sim.config import Faults
from harness.sim.krx import etf_daily_rows
from observer.calendar.clock import ManualClock
from observer.calendar.phases import KST
from observer.calendar.trading import TradingCalendar
from observer.config.tree import Settings
from observer.config.workers import EtfSettings
from observer.db.etf_queries import etf_history
from observer.db.models import EtfDailyRow
from observer.errors import KrxProtocolError
from observer.kis.etf import from_price
from observer.kis.schemas import EtfPriceOutput
from observer.krx.schemas import KrxEtfDailyRow
from tests.krx.test_krx import MARKET
from workers.etf import collect
from workers.etf.details import mismatch_message, premium_mismatches
from workers.etf.health import due_session, health, is_due
from workers.etf.metrics import range_52w
from workers.etf.rows import from_krx, merged, replaces

DAY = date(2026, 11, 20)
SUNDAY = ManualClock(int(datetime(2026, 11, 22, 21, 0, tzinfo=KST).timestamp() * 1e9))
numbers = st.one_of(
    st.sampled_from(["0", "", "-", "0.00", "-12.5", "abc", "1e400", "NaN", " 1,234 "]),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
)


@given(price=numbers, nav=numbers, dprt=numbers, ntas=numbers)
def test_a_missing_nav_is_never_zero(price: str, nav: str, dprt: str, ntas: str) -> None:
    out = EtfPriceOutput(stck_prpr=price, nav=nav, dprt=dprt, etf_ntas_ttam=ntas)
    row = from_price("069500", DAY, out, 100_000_000)
    assert (row.nav is None) == (not row.nav_final)
    if row.nav is None:  # not published: no premium, no net assets, never a 0
        assert row.premium_pct is row.premium_calc_pct is row.net_assets_krw is None
    else:
        assert row.nav > 0
    assert row.close is None or row.close > 0
    if row.premium_calc_pct is not None:
        assert row.close is not None and row.nav is not None
        exact = (Decimal(row.close) - row.nav) / row.nav * 100
        assert abs(exact - row.premium_calc_pct) <= Decimal("0.00005")


@given(
    kis_nav=st.one_of(st.none(), st.decimals(1, 10**5, places=2)),
    krx_nav=st.one_of(st.none(), st.decimals(1, 10**5, places=2)),
    same_close=st.booleans(),
)
def test_krx_only_fills_what_kis_lacks(
    kis_nav: Decimal | None, krx_nav: Decimal | None, same_close: bool
) -> None:
    kis = EtfDaily(trade_date=DAY, symbol="A", close=10_000, nav=kis_nav, nav_final=bool(kis_nav))
    krx = EtfDaily(
        trade_date=DAY,
        symbol="A",
        close=10_000 if same_close else 9_990,
        nav=krx_nav,
        net_assets_krw=5 * 10**9,
        origin="krx",
    )
    row = merged(kis, krx)
    assert row.close == 10_000 and row.origin == "kis"
    if kis_nav is not None:
        assert row.nav == kis_nav
    elif same_close and krx_nav is not None:  # the same session's figures: taken
        assert row.nav == krx_nav and row.nav_final and row.premium_calc_pct is not None
    else:  # another close is another moment: nothing taken
        assert row.nav is None and not row.nav_final and row.net_assets_krw is None


@given(
    ohlc=st.tuples(*[st.sampled_from(["0", "-", "", "00", "10,010", "9,990"])] * 3),
    volume=st.sampled_from(["0", "1,234", "-"]),
)
def test_krx_prices_of_0_are_missing_never_a_low_of_0(
    ohlc: tuple[str, str, str], volume: str
) -> None:
    """A day without trades: KRX's open, high and low are "0"; they stay missing in the row,
    the merged row and the 52-week range, while a volume of "0" is a volume."""
    krx = from_krx(
        DAY,
        KrxEtfDailyRow(
            ISU_SRT_CD="0005G0",
            TDD_CLSPRC="10,050",
            NAV="10,049.12",
            TDD_OPNPRC=ohlc[0],
            TDD_HGPRC=ohlc[1],
            TDD_LWPRC=ohlc[2],
            ACC_TRDVOL=volume,
            INVSTASST_NETASST_TOTAMT="5,024,560,000",
            LIST_SHRS="500,000",
        ),
    )
    parsed = [None if text.strip("0,-") == "" else int(text.replace(",", "")) for text in ohlc]
    assert [krx.open, krx.high, krx.low] == parsed
    assert krx.volume == {"0": 0, "1,234": 1234, "-": None}[volume]
    quote = EtfPriceOutput(stck_prpr="10050", nav="10049.12", acml_vol="0", lstn_stcn="500000")
    row = merged(from_price("0005G0", DAY, quote, 10**8), krx)
    assert [row.open, row.high, row.low] == parsed
    sessions = TradingCalendar().sessions_before(DAY + timedelta(days=1), 260)
    history = {
        d: EtfDaily(trade_date=d, symbol="0005G0", close=10_000, high=10_020, low=9_980)
        for d in sessions[-250:-1]
    } | {DAY: row}
    span = range_52w({d: (r.high, r.low, r.close) for d, r in history.items()}, DAY, sessions)
    assert span is not None and span.low == 9_980  # the lowest price traded, never a 0


@given(active=st.integers(1, 300), share=st.floats(0, 1))
def test_stale_below_the_coverage_floor(active: int, share: float) -> None:
    symbols = [f"{i:06d}" for i in range(active)]
    listings = {s: EtfListing(change="new", symbol=s) for s in symbols}
    collected = int(active * share)
    rows = {s: EtfDaily(trade_date=DAY, symbol=s, close=1) for s in symbols[:collected]}
    judged = health(DAY, True, listings, (), rows, {}, EtfSettings())
    assert judged.stale == (collected < math.ceil(0.95 * active - 1e-9))
    assert judged.collected == collected


@pytest.mark.parametrize(
    ("now", "session", "due_today"),
    [
        (datetime(2026, 11, 20, 16, 59, tzinfo=KST), date(2026, 11, 19), False),  # Fri, early
        (datetime(2026, 11, 20, 17, 0, tzinfo=KST), date(2026, 11, 20), True),  # Fri 17:00
        (datetime(2026, 11, 22, 12, 0, tzinfo=KST), date(2026, 11, 20), False),  # Sunday
        (datetime(2026, 11, 23, 9, 0, tzinfo=KST), date(2026, 11, 20), False),  # Monday
        (datetime(2026, 10, 12, 8, 0, tzinfo=KST), date(2026, 10, 8), False),  # Hangul Day
    ],
)
def test_the_due_session_is_session_aware(now: datetime, session: date, due_today: bool) -> None:
    assert due_session(now, TradingCalendar(), "17:00") == session
    assert is_due(session, now, "17:00")  # the judged session is always due
    assert is_due(now.date(), now, "17:00") == due_today


def test_a_late_days_rows_are_due_later_by_its_shift() -> None:
    # The CSAT day closes at 16:30 and its ETF run comes at 17:10: at 17:05 its rows are not
    # due yet, and the day before's are judged.
    csat, shifted = date(2026, 11, 19), {date(2026, 11, 19): timedelta(minutes=60)}
    early = datetime(2026, 11, 19, 17, 5, tzinfo=KST)
    assert due_session(early, TradingCalendar(), "17:00", shifted) == date(2026, 11, 18)
    assert not is_due(csat, early, "17:00", shifted)
    assert is_due(csat, datetime(2026, 11, 19, 18, 0, tzinfo=KST), "17:00", shifted)


def test_the_list_against_the_masters_and_coverage_per_field() -> None:
    symbols = [f"{i:06d}" for i in range(200)]
    listings = {s: EtfListing(change="new", symbol=s, manager="M") for s in symbols}
    rows = {s: EtfDaily(trade_date=DAY, symbol=s, close=1) for s in symbols}
    settings = EtfSettings()
    same = health(DAY, True, listings, set(symbols), rows, {}, settings)
    assert not any(c.code == "etf_universe_mismatch" for c in same.conditions)
    two_off = health(DAY, True, listings, set(symbols[2:]), rows, {}, settings)  # 1 %: fine
    assert not any(c.code == "etf_universe_mismatch" for c in two_off.conditions)
    three_off = health(DAY, True, listings, set(symbols[3:]), rows, {}, settings)
    assert [c.severity for c in three_off.conditions if c.code == "etf_universe_mismatch"] == [
        "warning"
    ]
    # No details yet: aum, premium_20d and high_52w uncovered; issuer known; fee not.
    low = {c.subject for c in same.conditions if c.code == "etf_coverage_low"}
    # Each names its field and the session (another session's judgement cannot end it).
    assert low == {f"{f} {DAY}" for f in ("fee", "aum", "premium_20d", "high_52w")}
    assert not same.stale
    early = health(DAY, False, listings, set(), {}, {}, settings)  # not due yet: no verdict
    assert early.conditions == [] and not early.stale


# ------------------------------------------------------------ a day's rows, in order


def stored(rows: Sequence[EtfDaily]) -> EtfDaily:
    """What `etf_history` reads back for ``DAY`` after ``rows`` were written in order."""
    engine = create_engine("sqlite://")
    EtfDailyRow.__table__.create(engine)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for seq, row in enumerate(rows, 1):
            values = msgspec.structs.asdict(row)
            conn.execute(
                insert(EtfDailyRow).values(source="etf", seq=seq, produced_ns=seq, **values)
            )
    with engine.connect() as conn:
        return etf_history(conn, DAY, DAY)["069500"][DAY]


@settings(max_examples=40, deadline=None)
@given(finals=st.lists(st.booleans(), min_size=1, max_size=6))
def test_a_row_without_a_final_nav_never_replaces_one_with_it(finals: list[bool]) -> None:
    rows = [
        EtfDaily(
            trade_date=DAY,
            symbol="069500",
            close=40_000,
            volume=n,  # which row was read back
            nav=Decimal("39990.12") if final else None,
            nav_final=final,
        )
        for n, final in enumerate(finals)
    ]
    last_final = max((n for n, f in enumerate(finals) if f), default=None)
    expected = len(finals) - 1 if last_final is None else last_final
    assert stored(rows).volume == expected
    # The run's own rule agrees with the read: it sends only what the read would take.
    kept = rows[0]
    for row in rows[1:]:
        kept = row if replaces(row, kept) else kept
    assert kept.volume == expected


def test_a_same_day_rerun_without_krx_keeps_the_nav() -> None:
    """KIS's NAV "0" (not yet out) and KRX's table failed: the day's NAV stays."""
    good = from_price("069500", DAY, EtfPriceOutput(stck_prpr="40000", nav="39990.12"), 10**8)
    worse = merged(
        from_price("069500", DAY, EtfPriceOutput(stck_prpr="40000", nav="0"), 10**8), None
    )
    assert not worse.nav_final and not replaces(worse, good)
    read = stored([good, worse])
    assert read.nav == Decimal("39990.12") and read.nav_final


class Table:
    """A KRX client whose daily table has ``rows``."""

    def __init__(self, rows: Sequence[KrxEtfDailyRow]) -> None:
        self.rows, self.requests = list(rows), 0

    async def etf_daily(self, day: date) -> list[KrxEtfDailyRow]:
        self.requests += 1
        return self.rows


def table_of(rows: Sequence[KrxEtfDailyRow], day: date, listed: Sequence[str]) -> Any:
    krx: Any = Table(rows)
    return asyncio.run(collect.krx_table(krx, day, listed, 0.9))


def daily_table(day: date) -> list[KrxEtfDailyRow]:
    now = datetime(2026, 11, 20, 16, 10, tzinfo=KST)
    return msgspec.convert(etf_daily_rows(MARKET, day, now, Faults()), list[KrxEtfDailyRow])


def test_an_empty_or_short_krx_table_has_failed() -> None:
    day = date(2026, 11, 19)
    full = daily_table(day)
    listed = [r.ISU_SRT_CD for r in full]
    assert set(table_of(full, day, listed)) == set(listed)
    keep = math.ceil(0.9 * len(listed))
    assert len(table_of(full[:keep], day, listed)) == keep  # 90 %: enough
    cases = {"is empty": [], f"answers for {keep - 1} of the {len(listed)}": full[: keep - 1]}
    for message, rows in cases.items():
        with pytest.raises(KrxProtocolError, match=message):
            table_of(rows, day, listed)


def test_an_empty_krx_table_sends_the_repair_through_kis(monkeypatch: pytest.MonkeyPatch) -> None:
    days = [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    symbols = ["069500", "102110"]
    asked: list[str] = []

    async def fan_out(*args: Any) -> None:
        asked.extend(args[2])

    monkeypatch.setattr(collect, "fan_out", fan_out)
    krx: Any = Table([])  # KRX answers {"output": []}: load shedding, a partial publish
    out = asyncio.run(collect.repair(Settings(), SUNDAY, symbols, days, {}, krx))
    assert "is empty" in out.krx_error and out.backfilled == []
    assert asked == symbols  # KIS's series for every ETF instead


def reformatted(rows: Sequence[KrxEtfDailyRow], field: str, k: int) -> list[KrxEtfDailyRow]:
    """``rows`` with ``field`` of the first ``k`` in a format the parsers cannot read."""
    odd = {"TDD_CLSPRC": "40.000 원", "NAV": "40.010,00 원"}[field]
    return [msgspec.structs.replace(r, **{field: odd}) if i < k else r for i, r in enumerate(rows)]


@settings(max_examples=25, deadline=None)
@given(field=st.sampled_from(["TDD_CLSPRC", "NAV"]), share=st.floats(0, 1), nav_due=st.booleans())
def test_a_krx_table_whose_numbers_do_not_read_has_failed(
    field: str, share: float, nav_due: bool
) -> None:
    """Every key there, every NAV unreadable (read as missing): the table passed, the repair
    mended nothing and fell back to nothing. Closes always count; NAVs once published."""
    day = date(2026, 11, 19)
    full = daily_table(day)
    listed = [r.ISU_SRT_CD for r in full]
    unreadable = math.floor(share * len(full))
    rows = reformatted(full, field, unreadable)
    krx: Any = Table(rows)
    judged = nav_due or field == "TDD_CLSPRC"
    if judged and len(full) - unreadable < 0.9 * len(full):
        with pytest.raises(KrxProtocolError, match="its number format changed"):
            asyncio.run(collect.krx_table(krx, day, listed, 0.9, nav_due))
    else:
        assert len(asyncio.run(collect.krx_table(krx, day, listed, 0.9, nav_due))) == len(full)


def test_a_repair_whose_table_does_not_read_goes_through_kis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    days = [date(2026, 11, 19), date(2026, 11, 20)]
    asked: list[str] = []

    async def fan_out(*args: Any) -> None:
        asked.extend(args[2])

    monkeypatch.setattr(collect, "fan_out", fan_out)
    table = daily_table(days[0])
    krx: Any = Table(reformatted(table, "NAV", len(table)))  # every NAV: "40.010,00 원"
    symbols = [r.ISU_SRT_CD for r in krx.rows]
    pending = {s: {d: EtfDaily(trade_date=d, symbol=s, close=1) for d in days} for s in symbols}
    out = asyncio.run(collect.repair(Settings(), SUNDAY, symbols, days, pending, krx))
    assert "a readable nav in 0 of" in out.krx_error and out.backfilled == []
    assert asked == symbols  # KIS's series for every ETF instead


def test_premiums_off_kis_dprt_are_counted_worst_first() -> None:
    def row(symbol: str, nav: str, dprt: str) -> EtfDaily:
        quote = EtfPriceOutput(stck_prpr="40000", nav=nav, dprt=dprt)
        return from_price(symbol, DAY, quote, 10**8)

    rows = [
        row("000001", "40000.00", "-6.00"),  # KIS's 괴리율 of another moment
        row("000002", "39990.12", "0.02"),  # 0.0247 computed: 0.0047 off, rounding
        row("000003", "39990.12", "0.05"),  # 0.0253 off
        row("000004", "0", "0.00"),  # no NAV: not judged
    ]
    found = premium_mismatches(rows)
    assert [s for s, _, _ in found] == ["000001", "000003"]
    assert found[0] == ("000001", Decimal("0.0000"), Decimal("-6.00"))
    message = mismatch_message(found, len(rows), DAY)
    assert message.startswith("2 of 4 ETFs") and message.index("000001") < message.index("000003")
