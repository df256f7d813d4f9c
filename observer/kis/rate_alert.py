"""KIS refusing a process's calls as over an account's rate limit (EGW00201), told to people.

Every REST call keeps to its process's share of its account's budget (`observer.kis.session.
rate_limits`); KIS refusing more than `REFUSED_SHARE` of them, `REFUSED_MIN` at least, says
that budget is above the account's at KIS (its notices lowered it in 2026, and no notice text
confirms the figures: kis-market-2026-09.md §5), or that another program uses the app key.
Nothing is lost: a refused call is retried at a slower pace (`observer.kis.pacing`), so the
work takes longer and spends more calls. Track A judges each of its cycles itself
(``track_a_rate_limited``); the other REST users judge what they sent since their last
judgement with a `RateWatch`: a job at its end, a daemon as it goes.
"""

from __future__ import annotations

from collections.abc import Sequence

from observer.alerts.book import AlertBook
from observer.kis.session import KisAccount
from observer.kis.settings import KisSettings

__all__ = ["KIS_RATE_LIMITED", "REFUSED_MIN", "REFUSED_SHARE", "RateWatch"]

KIS_RATE_LIMITED = "kis_rate_limited"
REFUSED_MIN = 3  # fewer refusals say nothing of a budget: a second's burst at a boundary
REFUSED_SHARE = 0.05  # of the calls sent since the last judgement


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
        ``at_least`` is left to the next (too few calls to say either way).
        """
        for account in self._accounts:
            alias, client = account.alias, account.client
            was_sent, was_refused = self._seen[alias]
            sent, refused = client.requests - was_sent, client.rate_limited - was_refused
            if sent < at_least:
                continue
            self._seen[alias] = (client.requests, client.rate_limited)
            if refused < REFUSED_MIN or refused <= sent * REFUSED_SHARE:
                alerts.resolve(KIS_RATE_LIMITED, alias, f"KIS refused {refused} of {sent} calls")
                continue
            alerts.raise_(
                KIS_RATE_LIMITED,
                alias,
                "warning",
                f"KIS answered {refused} of {self._process}'s {sent} calls as account {alias} "
                "with EGW00201 (over its rate limit); they were retried at a slower pace. Is "
                f"its rest_per_second ({self._budgets[alias]:g}/s) above its budget at KIS (a "
                "key's first 3 days: 3/s), or does another program use its app key?",
                {"process": self._process, "sent": str(sent), "refused": str(refused)},
            )
