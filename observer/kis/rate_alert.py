"""KIS refusing a process's calls as over an account's rate limit (EGW00201), told to people.

Every REST call keeps to its process's share of its account's budget (`observer.kis.session.
rate_limits`); KIS refusing more than `REFUSED_SHARE` of them, `REFUSED_MIN` at least, says
that budget is above the account's at KIS (its notices lowered it in 2026, and no notice text
confirms the figures: kis-market-2026-09.md §5), or that another program uses the app key.
Nothing is lost: a refused call is retried at a slower pace (`observer.kis.pacing`), so the
work takes longer and spends more calls. Track A judges each of its cycles itself
(``track_a_rate_limited``); the other REST users judge what they sent since their last
judgement with a `RateWatch`: a job at its end, a daemon as it goes; a job whose alerts end by
its own rules (the ETF jobs, the enrichment) sends `rate_alerts` of its run's `refusals` and
resolves the accounts it `judged` clear.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from bus.events import Alert, Event
from observer.alerts.book import AlertBook
from observer.kis.settings import KisSettings

if TYPE_CHECKING:  # the client (httpx) loads where accounts open, not where alerts are judged
    from observer.kis.session import KisAccount

__all__ = [
    "KIS_RATE_LIMITED",
    "REFUSED_MIN",
    "REFUSED_SHARE",
    "RateWatch",
    "judged",
    "rate_alerts",
    "refusals",
    "refused_message",
    "refused_too_often",
    "refused_within",
]

KIS_RATE_LIMITED = "kis_rate_limited"
REFUSED_MIN = 3  # fewer refusals say nothing of a budget: a second's burst at a boundary
REFUSED_SHARE = 0.05  # of the calls sent since the last judgement


def refused_too_often(sent: int, refused: int) -> bool:
    """Whether KIS refusing ``refused`` of ``sent`` calls says the budget is wrong."""
    return refused >= REFUSED_MIN and refused > sent * REFUSED_SHARE


def refused_within(sent: int, refused: int) -> bool:
    """Whether ``sent`` calls with ``refused`` of them refused say the budget is right.

    No more than `REFUSED_SHARE` refused. Between the two (more than that share, fewer than
    `REFUSED_MIN`: 2 of 2 calls) neither is said.
    """
    return sent > 0 and refused <= sent * REFUSED_SHARE


def refused_message(process: str, alias: str, sent: int, refused: int, budget: float) -> str:
    """`KIS_RATE_LIMITED`'s message: ``process``'s calls as ``alias`` at ``budget`` a second."""
    return (
        f"KIS answered {refused} of {process}'s {sent} calls as account {alias} with EGW00201 "
        "(over its rate limit); they were retried at a slower pace. Is its rest_per_second "
        f"({budget:g}/s) above its budget at KIS (a key's first 3 days: 3/s), or does another "
        "program use its app key?"
    )


def rate_alerts(
    kis: KisSettings,
    send: Callable[[Event], object],
    process: str,
    refusals: Mapping[str, tuple[int, int]],
) -> set[tuple[str, str]]:
    """`KIS_RATE_LIMITED` of each account KIS refused too often, sent; returns their conditions.

    ``refusals``: account alias -> (calls sent, calls refused) of ``process``'s run
    (`refusals`); an account that sent calls and is not among the conditions
    returned was judged clear (`judged`).
    """
    present: set[tuple[str, str]] = set()
    budgets = {a.alias: kis.budget(a) for a in kis.accounts}
    for alias, (sent, refused) in refusals.items():
        if refused_too_often(sent, refused):
            present.add((KIS_RATE_LIMITED, alias))
            send(
                Alert(
                    severity="warning",
                    code=KIS_RATE_LIMITED,
                    subject=alias,
                    message=refused_message(process, alias, sent, refused, budgets[alias]),
                    context={"process": process, "sent": str(sent), "refused": str(refused)},
                )
            )
    return present


def judged(refusals: Mapping[str, tuple[int, int]]) -> set[str]:
    """The accounts whose `KIS_RATE_LIMITED` a run judged.

    Those refused too often, and those within the budget's share (`refused_within`); a run
    between the two says nothing either way.
    """
    return {
        alias
        for alias, (sent, refused) in refusals.items()
        if refused_too_often(sent, refused) or refused_within(sent, refused)
    }


def refusals(accounts: Sequence[KisAccount]) -> dict[str, tuple[int, int]]:
    """Each account's (calls sent, calls refused with EGW00201) since its client opened."""
    return {a.alias: (a.client.requests, a.client.rate_limited) for a in accounts}


class RateWatch:
    """One process's EGW00201 answers per account, judged since the previous judgement.

    ``process`` names the process in the alert (its program: ``investor``, ...).
    """

    def __init__(self, kis: KisSettings, accounts: Sequence[KisAccount], process: str) -> None:
        self._budgets = {a.alias: kis.budget(a) for a in kis.accounts}
        self._accounts = accounts
        self._process = process
        self._seen = {a.alias: (0, 0) for a in accounts}  # (sent, refused) when last judged

    def judge(self, alerts: AlertBook, at_least: int = 1) -> None:
        """Raise `KIS_RATE_LIMITED` of each account KIS refused too often, resolve the others.

        Over the calls each account sent since the last judgement; one that sent fewer than
        ``at_least`` is left to the next (too few calls to say either way), and so is one
        whose calls say neither (`judged`: they are counted on with the next).
        """
        for account in self._accounts:
            alias, client = account.alias, account.client
            was_sent, was_refused = self._seen[alias]
            sent, refused = client.requests - was_sent, client.rate_limited - was_refused
            if sent < at_least or alias not in judged({alias: (sent, refused)}):
                continue
            self._seen[alias] = (client.requests, client.rate_limited)
            if not refused_too_often(sent, refused):
                alerts.resolve(KIS_RATE_LIMITED, alias, f"KIS refused {refused} of {sent} calls")
                continue
            alerts.raise_(
                KIS_RATE_LIMITED,
                alias,
                "warning",
                refused_message(self._process, alias, sent, refused, self._budgets[alias]),
                {"process": self._process, "sent": str(sent), "refused": str(refused)},
            )
