"""``[krx]``: the KRX data portal's address, pace and retries (its login is never here)."""

from __future__ import annotations

from observer.setting_types import Positive, PositiveFloat, Seconds, Strict

__all__ = ["KrxSettings"]


class KrxSettings(Strict, frozen=True):
    """The KRX data portal (the ETF list and table). Its login is never here."""

    url: str = "https://data.krx.co.kr"  # with kis.environment = "sim": kis.sim_url
    # Owner-only TOML with member_id and password; empty: OBSERVER_KRX_ID / OBSERVER_KRX_PW.
    credentials_file: str = ""
    # The portal publishes no limit; heavy calling gets an IP blocked (pykrx #164).
    calls_per_second: PositiveFloat = 1.0
    session_ttl_s: Seconds = 3300.0  # pykrx: a session lasts 1 h; log in again 5 min before
    timeout_s: Seconds = 30.0
    attempts: Positive = 4  # per request, for 5xx and timeouts
    backoff_s: Seconds = 1.0
    backoff_cap_s: Seconds = 30.0
    # CD011 (logged in elsewhere): log in anyway with skipDup=Y, which ends the other session.
    skip_duplicate: bool = True
