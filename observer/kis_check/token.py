"""The account's token and approval key, from the cache when one is valid.

A token issuance notifies the account holder and KIS allows one a minute, so the check uses
the cached token whenever it is valid (the token manager's own rule); only without one does
it issue, and then the expiry KIS states is read as the client reads it.
"""

from __future__ import annotations

from pathlib import Path

from observer.errors import KisError
from observer.kis.auth import TokenManager
from observer.kis.credentials import Secret
from observer.kis.token_cache import cached_validity
from observer.kis_check.report import MISMATCH, NOT_MEASURED, OK, Report

__all__ = ["check_token"]

_NS = 1_000_000_000


async def check_token(
    tokens: TokenManager, token_dir: Path, alias: str, environment: str, report: Report
) -> Secret | None:
    """Add the token's and the approval key's findings; return the approval key, if had."""
    before = tokens.issued
    try:
        await tokens.token()
    except KisError as exc:
        report.add("token", MISMATCH, f"no access token: {exc}")
        return None
    validity = cached_validity(token_dir, alias, environment)
    lasting = f"valid {(validity[1] - validity[0]) / 3600 / _NS:.1f} h" if validity else ""
    if tokens.issued == before:
        report.add("token", OK, f"the cached token was used (no issuance spent); {lasting}")
        report.add(
            "token expiry format",
            NOT_MEASURED,
            "a valid token was cached: its expiry is read only when one is issued",
        )
    else:
        report.add("token", OK, f"issued (no valid token was cached); {lasting}")
        report.add(
            "token expiry format", OK, "access_token_token_expired read as YYYY-MM-DD HH:MM:SS"
        )
    try:
        key = await tokens.approval_key()
    except KisError as exc:
        report.add("approval key", MISMATCH, f"no approval key: {exc}")
        return None
    report.add("approval key", OK, "had (cached or issued)")
    return key
