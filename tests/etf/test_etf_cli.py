"""``observer etf``'s commands around their work: which session they may collect, exit codes.

The work itself is faked (no KIS, KRX or writer): what is checked is what the command lets
run (a live answer is only ever the last completed session's) and how a failed weekly
repair ends (exit 1, an error, then resolved by a repair that works).
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import create_engine, insert

import workers.etf.collect as collect
from bus.events import Alert, AlertResolved, EtfListing, EtfRun
from observer.calendar.phases import KST
from observer.db.models import AlertRow, Base, Etf
from observer.errors import KisApiError
from observer.kis.schemas import EtfNavDailyRow
from tests.etf.conftest import AFTER_CLOSE, IN_SESSION, SYMBOLS, Commands


@pytest.mark.parametrize("command", ["daily", "holdings"])
def test_a_live_answer_is_never_stamped_on_a_past_session(commands: Commands, command: str) -> None:
    """KIS's quote (and constituents) after the close are the last session's, nothing else's.

    ``--date`` of a past session (or any day while a session is under way) is refused with
    one line naming the session to use and what serves past days; nothing is collected.
    """
    for clock, day in (
        (AFTER_CLOSE, "2026-11-18"),  # a past session: would replace its good row
        (AFTER_CLOSE, "2026-11-23"),  # a session not yet traded
        (IN_SESSION, "2026-11-19"),  # mid-session: the quote is today's, half done
    ):
        result = commands.etf(clock, command, "--date", day)
        assert result.exit_code == 2, (clock, day, result.output)
        assert commands.ran == [], (clock, day)
        said = [line for line in result.output.splitlines() if line.startswith("observer etf:")]
        assert len(said) == 1, result.output  # one line, with what to do instead
        message = said[0]
        if clock == AFTER_CLOSE:
            assert f"--date {day}" in message and "2026-11-20" in message
            assert ("backfill --date" in message) == (command == "daily")
    for args in ([command], [command, "--date", "2026-11-20"]):
        assert commands.etf(AFTER_CLOSE, *args).exit_code == 0
    assert commands.ran == [(command, date(2026, 11, 20))] * 2


class FailingSeries:
    """KIS accounts whose NAV series fails for ``failing`` and is empty for the others."""

    alias = "acct1"
    rate_limited = 0  # its failures are raised, not counted as EGW00201

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.requests = failing, 0

    async def etf_nav_daily(self, symbol: str, start: str, end: str) -> list[EtfNavDailyRow]:
        self.requests += 1
        if symbol in self.failing:
            raise KisApiError("EGW00201", "초당 거래건수를 초과하였습니다.", "FHPST02440200", 500)
        return []

    @property
    def client(self) -> FailingSeries:
        return self

    async def aclose(self) -> None:
        pass


def test_a_failed_repair_exits_1_and_a_working_one_resolves_its_alert(
    commands: Commands, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No KRX login: every ETF's series through KIS; all failing is a failed run.

    The database is real (the held list, the alerts the writer stored); KIS is faked.
    """
    engine = create_engine(commands.url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        for symbol in SYMBOLS:
            listing = EtfListing(change="new", symbol=symbol, listed_on=date(2020, 1, 2))
            fields = [f for f in EtfListing.__struct_fields__ if f in Etf.__table__.columns]
            values = {f: getattr(listing, f) for f in fields}
            values |= {"active": True, "listed_ns": 0, "updated_ns": 0}
            conn.execute(insert(Etf).values(**values))
    accounts = FailingSeries(set(SYMBOLS))
    monkeypatch.setattr(collect, "rate_limits", lambda settings, share: None)
    monkeypatch.setattr(collect, "open_account", lambda *args, **options: accounts)

    failed = commands.etf(AFTER_CLOSE, "backfill", "--json")
    assert failed.exit_code == 1, failed.output
    assert "3 ETFs failed" in failed.output.splitlines()[-1]
    assert accounts.requests == 3  # each ETF's series once
    alerts = [e for e in commands.producer.sent if isinstance(e, Alert)]
    assert {a.code for a in alerts} == {"etf_repair_failures", "krx_login_failed"}
    [alert] = [a for a in alerts if a.code == "etf_repair_failures"]
    assert alert.severity == "error"
    assert "3 of 3 ETFs" in alert.message and "EGW00201" in alert.message
    runs = [e for e in commands.producer.sent if isinstance(e, EtfRun)]
    assert [(r.job, r.failures) for r in runs] == [("etf_backfill", 3)]

    # The alert as the writer stores it; a repair where one ETF of three fails (33 %, over
    # the 5 % limit) keeps it open, one where none fails resolves it.
    at = int(datetime(2026, 11, 20, 16, 10, tzinfo=KST).timestamp() * 10**9)
    with engine.begin() as conn:
        conn.execute(
            insert(AlertRow).values(
                source="etf",
                seq=7,
                produced_ns=at,
                severity="error",
                code=alert.code,
                message=alert.message,
                context={},
                subject="",
            )
        )
    engine.dispose()
    commands.producer.sent.clear()
    accounts.failing = {SYMBOLS[0]}
    assert commands.etf(AFTER_CLOSE, "backfill").exit_code == 1
    assert not [e for e in commands.producer.sent if isinstance(e, AlertResolved)]
    commands.producer.sent.clear()
    accounts.failing = set()
    worked = commands.etf(AFTER_CLOSE, "backfill", "--json")
    assert worked.exit_code == 0, worked.output
    resolved = [e for e in commands.producer.sent if isinstance(e, AlertResolved)]
    assert [(r.code, r.subject) for r in resolved] == [("etf_repair_failures", "")]
    assert "etf_repair_failures" not in {
        e.code for e in commands.producer.sent if isinstance(e, Alert)
    }
