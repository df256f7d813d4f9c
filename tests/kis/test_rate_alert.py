"""`RateWatch`: KIS's EGW00201 answers per account, judged over the calls since the last look."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from bus.events import Alert, AlertResolved, Event
from observer.alerts.book import AlertBook
from observer.kis.rate_alert import KIS_RATE_LIMITED, RateWatch, judged
from observer.kis.session import KisAccount
from observer.kis.settings import AccountSettings, KisSettings


@dataclass
class Client:
    requests: int = 0
    rate_limited: int = 0


@dataclass
class Account:
    alias: str
    client: Client = field(default_factory=Client)


def test_an_account_refused_over_its_share_is_alerted_and_a_later_clean_stretch_resolves_it() -> (
    None
):
    kis = KisSettings(
        accounts=(
            AccountSettings(alias="acct1", rest_per_second=18.0),
            AccountSettings(alias="acct2", rest_per_second=1.0),
        )
    )
    one, two = Account("acct1"), Account("acct2")
    sent: list[Event] = []
    book = AlertBook(sent.append, "gap_recovery")
    watch = RateWatch(kis, cast(list[KisAccount], [one, two]), "gap_recovery")
    one.client.requests, one.client.rate_limited = 100, 6  # 6 %: over
    two.client.requests, two.client.rate_limited = 100, 5  # 5 %: not over
    watch.judge(book, at_least=20)
    (alert,) = sent
    assert isinstance(alert, Alert)
    assert (alert.code, alert.subject, alert.severity) == (KIS_RATE_LIMITED, "acct1", "warning")
    assert "KIS answered 6 of gap_recovery's 100 calls as account acct1 with EGW00201" in (
        alert.message
    )
    assert "rest_per_second (18/s)" in alert.message
    # Open: refused again, not alerted again; too few calls since: not judged
    one.client.requests, one.client.rate_limited = 200, 20
    two.client.requests = 110
    sent.clear()
    watch.judge(book, at_least=20)
    assert sent == []
    # Two refused of a hundred since the last judgement: fewer than 3, resolved
    one.client.requests, one.client.rate_limited = 300, 22
    watch.judge(book, at_least=20)
    (resolved,) = sent
    assert isinstance(resolved, AlertResolved)
    assert (resolved.code, resolved.subject) == (KIS_RATE_LIMITED, "acct1")
    # acct2's 110 - 100 = 10 calls were too few: judged with the next ones
    two.client.requests, two.client.rate_limited = 130, 9
    sent.clear()
    watch.judge(book, at_least=20)
    (late,) = sent
    assert isinstance(late, Alert) and late.subject == "acct2"
    assert "4 of gap_recovery's 30 calls" in late.message


def test_calls_refused_over_the_share_but_too_few_to_alert_clear_nothing_and_are_counted_on() -> (
    None
):
    """More than 5 % refused but fewer than 3 (2 of 2 calls) is no verdict either way: an open
    alert stays open until the calls since it hold no more than 5 % refused."""
    found = judged({"a": (2, 2), "b": (16, 0), "c": (60, 3), "d": (3, 3), "e": (10, 1)})
    assert found == {"b", "c", "d"}
    kis = KisSettings(accounts=(AccountSettings(alias="acct1"),))
    one = Account("acct1")
    sent: list[Event] = []
    book = AlertBook(sent.append, "gap_recovery")
    watch = RateWatch(kis, cast(list[KisAccount], [one]), "gap_recovery")
    one.client.requests, one.client.rate_limited = 20, 5
    watch.judge(book, at_least=20)
    assert [type(e) for e in sent] == [Alert]
    one.client.requests, one.client.rate_limited = 42, 7  # 22 calls, 2 refused: no verdict
    watch.judge(book, at_least=20)
    assert [type(e) for e in sent] == [Alert]
    one.client.requests = 80  # 60 since the alert, 2 refused: clean
    watch.judge(book, at_least=20)
    assert [type(e) for e in sent] == [Alert, AlertResolved]
