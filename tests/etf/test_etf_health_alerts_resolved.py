"""The ETF health alerts end only when a judgement finds them cleared, for their session.

Each story runs the ETF commands (in this process, as `tests.etf.test_etf_jobs` does) against
the real simulator, restarted at each moment of the story with its clock there, and a real
writer process; what is checked is what the writer stored: the alerts raised, resolved
and open. A run that judged nothing (before ``stale_at``) resolves nothing: ``etf_stale`` of
a day still missing stays open, ``etf_coverage_low`` is neither resolved nor raised again
until it clears, ``etf_list_missing`` stays open while the masters stand in, and an empty
universe (no list, no ETF in the masters) is stale and fails the daily run.
"""

from __future__ import annotations

from tests.etf.conftest import Story


def test_a_stale_session_stays_open_until_its_rows_are_filled(story: Story) -> None:
    """11-19's KIS calls all fail: stale at 17:00. The 11-20 16:10 run (not due, KIS still
    failing) resolved it; now only the run that fills 11-19 (asked again through KIS's
    series) ends it, and with it 11-19's ``etf_daily_failures``."""
    h, n = story, len(story.etfs)
    h.at(2026, 11, 18, 16, 10)
    h.etf("list", "--json")
    assert h.etf("daily", "--json")["collected"] == n
    h.at(2026, 11, 19, 16, 10, http_5xx=10**6)
    assert h.etf("daily", "--json", code=1)["failures"] == n
    h.at(2026, 11, 19, 17, 5)
    assert "2026-11-19: 0 of 6 collected STALE" in h.etf("check")["out"]
    assert len(h.open_subjects("etf_stale")) == 1
    h.at(2026, 11, 20, 16, 10, http_5xx=10**6)  # before stale_at: 11-20 is not judged
    h.etf("daily", "--json", code=1)
    assert h.resolved("etf_stale") == []  # it was: nothing judged, 11-19 still missing
    assert h.open_subjects("etf_stale") == ["2026-11-19"]  # the session it is about
    assert h.open_subjects("etf_daily_failures") == ["2026-11-19", "2026-11-20"]
    h.at(2026, 11, 20, 16, 20)
    filled = h.etf("daily", "--json")
    assert filled["failures"] == 0 and filled["backfilled_rows"] >= n  # 11-19 asked again
    day = "SELECT COUNT(DISTINCT symbol) FROM etf_daily WHERE trade_date = '2026-11-19'"
    assert h.rows(day) == [(n,)]
    assert h.open_subjects("etf_stale") == [] and h.resolved("etf_stale") == ["2026-11-19"]
    assert h.open_subjects("etf_daily_failures") == []
    h.at(2026, 11, 20, 17, 5)
    assert h.etf("check", "--date", "2026-11-19", "--json")["stale"] is False


def test_low_coverage_is_neither_resolved_nor_raised_again_until_it_clears(story: Story) -> None:
    """No KRX list (its login refused): issuer and fee unknown for every ETF. The alerts
    were resolved by each 16:10 run and raised again by each 17:00 check."""
    h = story
    h.masters_hold_the_etfs()
    h.at(2026, 11, 19, 16, 10, krx_password_change=True)
    h.etf("daily", "--json")
    h.at(2026, 11, 19, 17, 5, krx_password_change=True)
    h.etf("check")

    def fields() -> set[str]:
        return {s.split()[0] for s in h.open_subjects("etf_coverage_low")}

    assert {"issuer", "fee"} <= fields()
    h.at(2026, 11, 20, 16, 10, krx_password_change=True)
    h.etf("daily", "--json")
    assert h.resolved("etf_coverage_low") == []  # it was, by a run that judged nothing
    h.at(2026, 11, 20, 17, 5, krx_password_change=True)
    h.etf("check")
    assert {"issuer", "fee"} <= fields() and h.resolved("etf_coverage_low") == []
    low = {"issuer 2026-11-19", "fee 2026-11-19"}  # the session it was found on
    assert low <= set(h.open_subjects("etf_coverage_low"))
    # Still low on 11-20: the alert found on 11-19 stands for it (not raised again).
    raised = [s for s in h.raised("etf_coverage_low") if s.split()[0] in ("issuer", "fee")]
    assert sorted(raised) == sorted(low)
    # The list comes: a due judgement of a later session finds them known, and ends them.
    h.at(2026, 11, 20, 17, 10)
    assert h.etf("list", "--json")["applied"]
    h.etf("check")
    assert not low & set(h.open_subjects("etf_coverage_low"))
    assert sorted(h.resolved("etf_coverage_low")) == sorted(low)


def test_the_list_missing_stays_open_while_the_masters_stand_in(story: Story) -> None:
    h = story
    h.masters_hold_the_etfs()
    h.at(2026, 11, 20, 16, 10)
    assert h.etf("daily", "--json")["collected"] == len(h.etfs)
    assert h.open_subjects("etf_list_missing") == [""]
    assert h.resolved("etf_list_missing") == []  # it was resolved by the run that raised it
    h.at(2026, 11, 20, 16, 20)
    assert h.etf("list", "--json")["applied"]  # a list held: the alert is over
    assert h.open_subjects("etf_list_missing") == [] and h.resolved("etf_list_missing") == [""]


def test_an_empty_universe_is_stale_and_fails_the_daily_run(story: Story) -> None:
    """No list applied (KRX refuses the login) and no ETF in the masters: 0 active ETFs
    read as 100 % covered; the run exited 0 and nothing ever alerted."""
    h = story
    h.at(2026, 11, 20, 16, 10, krx_password_change=True)
    out = h.etf("daily", "--json", code=1)
    assert (out["listed"], out["stale"]) == (0, True)
    assert h.open_subjects("etf_stale") == ["2026-11-20"]
    h.at(2026, 11, 20, 17, 5, krx_password_change=True)
    status = h.etf("status", "--json", code=1)
    assert status["stale"] is True and status["active"] == 0
    assert status["coverage_pct"]["issuer"] == 0.0
