"""The account's REST budget at KIS, measured: calls at the configured budget, EGW00201 heard.

KIS's budgets per kind of key (18/s real, 1/s paper, 3/s for a key's first 3 days) come from
its notices as quoted publicly (`observer.kis.settings.REST_PER_SECOND`); the notice of
2026-09-16 itself was never read. ``observer kis check --budget S`` sends current-price calls
for S seconds at the whole of the account's usable budget (`KisSettings.usable_per_second`):
none refused is the budget confirmed; a refusal says KIS allows this key less. It uses the
whole budget, so it is for a morning before the processes start, never beside them.
"""

from __future__ import annotations

import asyncio
import time

from observer.calendar.clock import Clock
from observer.errors import KisError
from observer.kis.client import RateLimits
from observer.kis.session import open_account
from observer.kis.settings import KisSettings
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["BUDGET_ITEM", "check_budget"]

BUDGET_ITEM = "REST budget"
_IN_FLIGHT = 4  # concurrent calls: the pace, not the round trip, sets the rate


async def check_budget(
    kis: KisSettings, alias: str, symbol: str, seconds: float, clock: Clock, report: Report
) -> None:
    """Calls at ``alias``'s usable budget for ``seconds`` (wall): its row in ``report``."""
    account_settings = next(a for a in kis.accounts if a.alias == alias)
    budget = kis.budget(account_settings)
    usable = kis.usable_per_second(account_settings)
    kind = "paper" if kis.paper else "real"
    if budget < account_settings.rest_per_second:
        kind = f"new key from {account_settings.key_issued}"
    account = open_account(kis, alias, clock, RateLimits({alias: usable}), issuer=True)
    client = account.client
    deadline = time.monotonic() + seconds
    failed: list[str] = []

    async def caller() -> None:
        while time.monotonic() < deadline:
            try:
                await client.current_price(symbol)
            except KisError as exc:
                failed.append(type(exc).__name__)

    try:
        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(_IN_FLIGHT)))
        elapsed = time.monotonic() - started
    finally:
        await account.aclose()
    sent, refused = client.requests, client.rate_limited
    rate = sent / elapsed if elapsed else 0.0
    measured = (
        f"{sent} calls in {elapsed:.1f} s ({rate:.1f}/s) at {usable:g}/s usable of the "
        f"configured {budget:g}/s ({kind}): {refused} EGW00201"
    )
    if refused:
        report.add(
            BUDGET_ITEM,
            MISMATCH,
            f"{measured}: KIS allows this key less; set [[kis.accounts]] rest_per_second "
            "(or key_issued, for a key in its first 3 days)",
        )
    elif failed and len(failed) * 2 >= max(sent, 1):
        report.add(BUDGET_ITEM, NOT_MEASURED, f"{measured}; most calls failed: {failed[0]}")
    else:
        report.add(BUDGET_ITEM, OK, measured)
