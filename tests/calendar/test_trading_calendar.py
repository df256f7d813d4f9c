"""KRX sessions from tables of dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from observer.calendar import trading as trading_calendar
from observer.calendar.trading import TradingCalendar
from observer.errors import ConfigError

CALENDAR = TradingCalendar()


@pytest.mark.parametrize(
    ("day", "session"),
    [
        (date(2026, 11, 20), True),  # Friday
        (date(2026, 11, 21), False),  # Saturday
        (date(2026, 6, 3), False),  # local election: missing from XKRX, configured
        (date(2026, 1, 1), False),  # New Year
        (date(2026, 12, 25), False),  # Christmas
    ],
)
def test_sessions(day: date, session: bool) -> None:
    assert CALENDAR.is_session(day) is session


def test_previous_and_next_sessions_skip_weekends_and_holidays() -> None:
    assert CALENDAR.previous_session(date(2026, 11, 23)) == date(2026, 11, 20)
    assert CALENDAR.next_session(date(2026, 6, 2)) == date(2026, 6, 4)
    assert CALENDAR.sessions_before(date(2026, 11, 23), 3) == [
        date(2026, 11, 18),
        date(2026, 11, 19),
        date(2026, 11, 20),
    ]


def test_configured_corrections_win() -> None:
    calendar = TradingCalendar(extra_closed=[date(2026, 11, 20)], extra_open=[date(2026, 6, 3)])
    assert not calendar.is_session(date(2026, 11, 20))
    assert calendar.is_session(date(2026, 6, 3))


def test_dates_beyond_the_library_are_refused() -> None:
    with pytest.raises(ConfigError, match="outside"):
        CALENDAR.is_session(date(2099, 1, 5))


def test_the_sessions_are_cached_and_a_bad_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OBSERVER_CACHE_DIR", str(tmp_path))
    trading_calendar._xkrx_sessions.cache_clear()
    try:
        assert TradingCalendar().is_session(date(2026, 11, 20))
        (cache,) = (tmp_path / "observer").iterdir()
        assert cache.stat().st_mode & 0o777 == 0o600
        whole = cache.read_text()
        # Torn or edited files are not trusted: the sessions are built again and rewritten.
        # A power cut's: empty, or zeros. Each is said in the log; a cache raises no alert.
        torn = ("", "\x00" * 4096, whole[: len(whole) // 3])
        for bad in (*torn, "2026-11-20\n" * 2000, "not a date\n"):
            caplog.clear()
            cache.write_text(bad)
            trading_calendar._xkrx_sessions.cache_clear()
            calendar = TradingCalendar()
            assert calendar.is_session(date(2026, 11, 20))
            assert not calendar.is_session(date(2026, 11, 21))
            assert cache.read_text() == whole
            (warned,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
            assert warned.startswith(f"the calendar cache {cache} ")
            assert warned.endswith(": built again")
    finally:
        trading_calendar._xkrx_sessions.cache_clear()
