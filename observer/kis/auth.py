"""Access tokens and WebSocket approval keys of one account in one environment.

Every issuance notifies the account holder and KIS allows one a minute per app key (kis-api.md
§2), so a token is cached on disk (owner-only), shared by the account's processes, refreshed
after 23 h and never requested twice within 60 s. An issuance holds the account's `InstanceLock`
and re-reads the cache first, taking a token another process issued meanwhile; a reader
(``issuer=False``) waits for the issuer's (`TokenManager`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from bus.events import Alert, TokenRefreshed
from bus.lock import InstanceLock, LockHeld
from observer.calendar.clock import Clock
from observer.errors import (
    KisApiError,
    KisAuthError,
    KisProtocolError,
    KisServerError,
    KisTokenThrottled,
    KisTransportError,
)
from observer.kis.credentials import Credentials, Secret
from observer.kis.endpoints import APPROVAL_PATH, TOKEN_PATH
from observer.kis.parse import decode_answer
from observer.kis.schemas import ApprovalAnswer, TokenAnswer
from observer.kis.token_cache import (
    Cached,
    cache_path,
    cached_validity,
    load_cached,
    newer_than,
    other_key,
    other_than,
    save_cached,
)

__all__ = ["TokenManager", "cache_path", "cached_validity"]

log = logging.getLogger(__name__)

_NS = 1_000_000_000
_KST = timezone(timedelta(hours=9))
_READER_POLL_S = 0.05  # wall seconds between looks at the cache or the issuance lock
# A fresh token in memory is used without looking at its file for this long (wall seconds):
# one stat a call was 5 % of Track A's CPU at 440 calls/s. Another process's newer token
# waits at most this long; the one in memory stays valid meanwhile, and a rejected one is
# looked up again at once (`refresh_token`).
RELOOK_S = 1.0


class TokenManager:
    """Issue, cache and refresh one account's access token and approval key.

    A token lives about a day; asked again within 6 h, KIS answers with the same token (kept
    as the earlier issuance: `_kept`). An emergency refresh within KIS's minute waits. A
    reader (the workers under ``[kis] token_issuer = "job"``) uses any unexpired cached token;
    with none it waits on the cache, alerting once (``on_unavailable``) until a valid one is
    there (``on_available``), and fails after the wait. When KIS refuses the cached token
    itself (an emergency refresh) or the cached approval key (`refresh_approval` with
    ``stale``), nothing works until a new one is issued, so a reader issues it too, under the
    lock. A cache file that does not read is set aside and alerted
    (`observer.kis.token_cache.load_cached`): an issuer issues anew, a reader waits.

    Parameters
    ----------
    http:
        The client to send token requests with (its base URL is the REST host).
    credentials:
        The account's app key and secret.
    clock:
        Time for validity, refresh age and the once-a-minute guard.
    cache_dir:
        Owner-only folder for ``<alias>-<environment>-token.json`` files.
    environment:
        ``real``, ``paper`` or ``sim``: tokens are never shared between them.
    refresh_after_s, min_issue_interval_s:
        Age at which a token is replaced (23 h); least time between two requests (60 s).
    approval_ttl_s:
        How long an approval key is reused (KIS does not say; configurable).
    on_issued:
        Called with a `TokenRefreshed` event (no secret in it) after each issuance.
    issuer:
        False: never issue; wait for the issuer's token in the cache instead.
    reader_wait_s, reader_wait_wall_s:
        How long a reader waits for a token in the cache: this much clock time and at
        least that much wall time (a fast simulated clock is not a slow issuer).
    on_unavailable:
        Called with ``(kind, message)`` once when a reader starts waiting for a token.
    on_available:
        Called with ``(kind, message)`` when, after that, every kind waited for is valid again
        (taken from the cache or issued): the alert the wait raised is over.
    on_unreadable:
        Called with the ``state_file_unreadable`` alert of a cache file set aside.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: Credentials,
        clock: Clock,
        cache_dir: Path,
        environment: str,
        *,
        refresh_after_s: float = 23 * 3600,
        min_issue_interval_s: float = 60,
        approval_ttl_s: float = 23 * 3600,
        on_issued: Callable[[TokenRefreshed], None] | None = None,
        issuer: bool = True,
        reader_wait_s: float = 300.0,
        reader_wait_wall_s: float = 30.0,
        on_unavailable: Callable[[str, str], None] | None = None,
        on_available: Callable[[str, str], None] | None = None,
        on_unreadable: Callable[[Alert], object] | None = None,
        relook_s: float = RELOOK_S,
    ) -> None:
        self.issuer = issuer
        self._on_unreadable = on_unreadable
        self._relook_s = relook_s
        self._reader_wait_ns = int(reader_wait_s * _NS)
        self._reader_wait_wall_s = reader_wait_wall_s
        self._on_unavailable = on_unavailable
        self._on_available = on_available
        self._unavailable: set[str] = set()  # kinds waited for in vain, alerted: until valid
        self._http = http
        self._credentials = credentials
        self._clock = clock
        self._refresh_after_ns = int(refresh_after_s * _NS)
        self._min_interval_ns = int(min_issue_interval_s * _NS)
        self._approval_ttl_ns = int(approval_ttl_s * _NS)
        self._on_issued = on_issued
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._paths = {
            kind: cache_path(cache_dir, credentials.alias, environment, kind)
            for kind in ("access_token", "approval_key")
        }
        locks = cache_dir / "locks"  # issuance locks, one per account and kind
        locks.mkdir(mode=0o700, exist_ok=True)
        self._lock_paths = {
            kind: locks / path.with_suffix(".lock").name for kind, path in self._paths.items()
        }
        self._versions: dict[str, tuple[int, int] | None] = dict.fromkeys(self._paths)
        self._cached: dict[str, Cached | None] = dict.fromkeys(self._paths)
        self._looked: dict[str, float] = dict.fromkeys(self._paths, -math.inf)  # monotonic
        for kind in self._paths:
            self._reload(kind)
        self._locks = {kind: asyncio.Lock() for kind in self._paths}
        self._answered_ns = dict.fromkeys(self._paths, 0)  # kind -> KIS's last answer
        self.issued = 0

    def __repr__(self) -> str:
        return f"<TokenManager {self._credentials.alias} issued={self.issued}>"

    async def token(self, *, lasting_s: float = 0.0) -> Secret:
        """A valid access token: the cached one unless it is older than the refresh age.

        With ``lasting_s``, one that would reach the refresh age sooner is replaced first
        (the token job makes the day's token last the day).
        """
        max_age = self._refresh_after_ns - int(lasting_s * _NS)
        return self._valid("access_token", await self._get("access_token", "proactive", max_age))

    async def approval_key(self, *, lasting_s: float = 0.0) -> Secret:
        """A WebSocket approval key, reused for ``approval_ttl_s``.

        With ``lasting_s``, a key that would not stay usable that much longer is replaced
        first: the pre-market renewal, so that no key ages out during the session.
        """
        max_age = self._approval_ttl_ns - int(lasting_s * _NS)
        reason = "premarket" if lasting_s else "scheduled"
        return self._valid("approval_key", await self._get("approval_key", reason, max_age))

    def approval_key_now(self) -> Secret | None:
        """The approval key at hand, without waiting or asking KIS; None without a valid one.

        Where `approval_key` would issue or wait for the token job, None (a reader takes any
        unexpired key, as there): a caller that must not wait leaves that to one that may.
        """
        cached, now = self._reload("approval_key"), self._clock.now_ns()  # a stat, no more
        if cached is None or not (
            self._fresh(cached, self._approval_ttl_ns)
            or (not self.issuer and now < cached.expires_ns)
        ):
            return None
        return self._valid("approval_key", Secret(cached.value))

    async def refresh(self, reason: str, *, stale: Secret | None = None) -> Secret:
        """Issue a new access token now (``premarket``, ``emergency``, ...).

        With ``stale``, only if the cached token is still that one: concurrent callers that
        all saw a token-expired error refresh once, not once each.
        """
        return self._valid("access_token", await self._refresh(reason, stale))

    async def _refresh(self, reason: str, stale: Secret | None) -> Secret:
        async with self._locks["access_token"]:
            cached = self._reload("access_token")
            if stale is not None and cached is not None and cached.value != stale.reveal():
                return Secret(cached.value)
            if stale is None:
                if not self.issuer:
                    return await self._await_issuer("access_token", newer_than(cached))
                return await self._issue("access_token", reason)
            # KIS refused the token itself: only a new issuance helps, and every call fails
            # until then, so even a reader issues (the seed's emergency refresh), once for
            # all processes: under the lock, a token another process got meanwhile is taken.
            if not self.issuer:
                log.warning(
                    "%s: KIS refused the cached token: an emergency issuance",
                    self._credentials.alias,
                )
            return await self._issue("access_token", reason, other_than(stale.reveal()))

    async def refresh_approval(self, reason: str, *, stale: bytes | None = None) -> Secret:
        """Issue a new WebSocket approval key now (a session restarts on it).

        With ``stale``, the `key_digest` of a key KIS refused: only if the cache still holds
        that key (another unexpired one is taken as it is), and even by a reader, as for a
        refused token, under the lock, taking one another process got meanwhile.
        """
        async with self._locks["approval_key"]:
            cached = self._reload("approval_key")
            if stale is None:
                if not self.issuer:
                    newer = await self._await_issuer("approval_key", newer_than(cached))
                    return self._valid("approval_key", newer)
                return self._valid("approval_key", await self._issue("approval_key", reason))
            other = other_key(stale, self._clock.now_ns())
            if cached is not None and other(cached):
                return self._valid("approval_key", Secret(cached.value))
            log.warning(
                "%s: KIS refused the cached approval key: an emergency issuance",
                self._credentials.alias,
            )
            return self._valid("approval_key", await self._issue("approval_key", reason, other))

    # ------------------------------------------------------------------ internals

    def _valid(self, kind: str, secret: Secret) -> Secret:
        """``secret``, a valid ``kind``; the last kind waited for in vain ends the alert."""
        if kind in self._unavailable:
            self._unavailable.discard(kind)
            if not self._unavailable:
                message = f"{self._credentials.alias}: a valid {kind} is in the token cache again"
                log.info("%s", message)
                if self._on_available is not None:
                    self._on_available(kind, message)
        return secret

    def _fresh(self, cached: Cached | None, max_age_ns: int) -> bool:
        now = self._clock.now_ns()
        return (
            cached is not None and now < cached.expires_ns and now - cached.issued_ns < max_age_ns
        )

    async def _get(self, kind: str, reason: str, max_age_ns: int) -> Secret:
        async with self._locks[kind]:
            cached = self._cached[kind]
            if time.monotonic() - self._looked[kind] >= self._relook_s or not self._fresh(
                cached, max_age_ns
            ):
                cached = self._reload(kind)
            if self._fresh(cached, max_age_ns):
                assert cached is not None
                return Secret(cached.value)
            if not self.issuer:  # any unexpired token will do: renewing it is the issuer's
                return await self._await_issuer(kind, lambda c: True)
            return await self._issue(
                kind,
                reason if cached is not None else "scheduled",
                lambda c: self._fresh(c, max_age_ns),
            )

    def _reload(self, kind: str) -> Cached | None:
        """The cached entry, read again from its file if another process replaced it."""
        path = self._paths[kind]
        self._looked[kind] = time.monotonic()
        try:
            info = path.stat()
        except FileNotFoundError:
            return self._cached[kind]
        version = (info.st_ino, info.st_mtime_ns)  # replaced atomically: a new inode
        if version != self._versions[kind]:
            self._versions[kind] = version
            loaded = load_cached(path, self._lock_paths[kind], self._on_unreadable)
            current = self._cached[kind]
            if loaded is not None and (current is None or loaded.issued_ns >= current.issued_ns):
                self._cached[kind] = loaded
        return self._cached[kind]

    async def _await_issuer(self, kind: str, accept: Callable[[Cached], bool]) -> Secret:
        """A reader's wait for an unexpired ``kind`` in the cache that ``accept`` takes.

        Raises
        ------
        KisAuthError
            None came within the wait (``NO_TOKEN``).
        """
        clock_deadline = self._clock.now_ns() + self._reader_wait_ns
        wall_deadline = time.monotonic() + self._reader_wait_wall_s
        alerted = False
        while True:
            cached = self._reload(kind)
            if cached is not None and self._clock.now_ns() < cached.expires_ns and accept(cached):
                if alerted:
                    log.info("%s: the issuer's %s is in the cache", self._credentials.alias, kind)
                return Secret(cached.value)
            if self._clock.now_ns() >= clock_deadline and time.monotonic() >= wall_deadline:
                raise KisAuthError(
                    "NO_TOKEN", f"no valid {kind} in the cache: the token job issues it", "oauth2"
                )
            if not alerted:
                alerted = True
                message = (
                    f"{self._credentials.alias}: no valid {kind} in the token cache; waiting "
                    "for the token job (workers do not issue)"
                )
                log.error("%s", message)
                if kind not in self._unavailable:  # once, until a valid one is there again
                    self._unavailable.add(kind)
                    if self._on_unavailable is not None:
                        self._on_unavailable(kind, message)
            await asyncio.sleep(_READER_POLL_S)

    @contextlib.asynccontextmanager
    async def _issuing(self, kind: str) -> AsyncIterator[None]:
        """Hold the account's issuance lock for ``kind``, shared by every process."""
        while True:
            try:
                lock = InstanceLock(self._lock_paths[kind])
                break
            except LockHeld:  # another process issues now: it takes one request's time
                await asyncio.sleep(_READER_POLL_S)
        try:
            yield
        finally:
            lock.close()

    async def _issue(
        self, kind: str, reason: str, accept: Callable[[Cached], bool] | None = None
    ) -> Secret:
        """Issue ``kind`` under the lock, unless another process issued one ``accept`` takes."""
        async with self._issuing(kind):
            cached = self._reload(kind)
            if cached is not None and accept is not None and accept(cached):
                return Secret(cached.value)  # issued by another process meanwhile
            return await self._issue_locked(kind, reason, cached)

    async def _issue_locked(self, kind: str, reason: str, cached: Cached | None) -> Secret:
        if cached is not None:  # its issuance, or our last request KIS answered with it
            last = max(cached.issued_ns, self._answered_ns[kind])
            wait_ns = last + self._min_interval_ns - self._clock.now_ns()
            if wait_ns > 0:
                log.info(
                    "%s: waiting %.0fs before issuing a new %s (KIS allows one a minute)",
                    self._credentials.alias,
                    wait_ns / _NS,
                    kind,
                )
                await self._clock.sleep(wait_ns / _NS)
        try:
            value, expires_ns = await self._request(kind)
        except KisTokenThrottled:
            # Another holder of this key (a process with an empty cache) asked within KIS's
            # minute: wait it out once, instead of failing every call until then.
            log.warning(
                "%s: KIS refused a %s within its minute (EGW00133); retrying in %.0fs",
                self._credentials.alias,
                kind,
                self._min_interval_ns / _NS,
            )
            await self._clock.sleep(self._min_interval_ns / _NS)
            value, expires_ns = await self._request(kind)
        # KIS counts the minute from when it issued, which is after we asked: count from the
        # answer, so the next request can never arrive early.
        now = self._answered_ns[kind] = self._clock.now_ns()
        if cached is not None and value == cached.value:
            return self._kept(kind, cached, expires_ns)
        fresh = Cached(value=value, issued_ns=now, expires_ns=expires_ns)
        self._cached[kind] = fresh
        save_cached(self._paths[kind], fresh)
        self._reload(kind)  # our own write is no news
        self.issued += 1
        log.info("%s: issued a new %s (%s)", self._credentials.alias, kind, reason)
        if self._on_issued is not None:
            self._on_issued(
                TokenRefreshed(
                    account=self._credentials.alias,
                    kind=kind,  # type: ignore[arg-type]
                    reason=reason,
                    issued_ns=now,
                    expires_ns=expires_ns,
                )
            )
        return Secret(value)

    def _kept(self, kind: str, cached: Cached, expires_ns: int) -> Secret:
        """KIS answered with the token it issued before (it does within 6 h): no new one.

        Its issuance time stays the first one's, so its age, and the renewal it is due for,
        are the truth; nothing is counted or reported as issued.
        """
        kept = Cached(cached.value, cached.issued_ns, min(cached.expires_ns, expires_ns))
        self._cached[kind] = kept
        save_cached(self._paths[kind], kept)
        self._reload(kind)
        issued = datetime.fromtimestamp(kept.issued_ns / _NS, _KST).strftime("%m-%d %H:%M")
        alias, why = self._credentials.alias, "no new one within 6 h"
        log.warning(
            "%s: KIS answered with the %s it issued at %s KST (%s)", alias, kind, issued, why
        )
        return Secret(kept.value)

    async def _request(self, kind: str) -> tuple[str, int]:
        sent = self._clock.now_ns()
        if kind == "access_token":
            return await self._request_token(sent)
        return await self._request_approval(sent)

    async def _post(self, path: str, body: dict[str, str]) -> tuple[int, bytes]:
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise KisTransportError(f"{path}: {type(exc).__name__}") from None
        return response.status_code, response.content

    async def _request_token(self, now: int) -> tuple[str, int]:
        status, content = await self._post(
            TOKEN_PATH,
            {
                "grant_type": "client_credentials",
                "appkey": self._credentials.app_key.reveal(),
                "appsecret": self._credentials.app_secret.reveal(),
            },
        )
        answer = decode_answer(content, status, TokenAnswer, "oauth2", TOKEN_PATH)
        if answer.error_code or not answer.access_token:
            raise _token_error(answer.error_code, answer.error_description, status)
        expires = now + answer.expires_in * _NS if answer.expires_in > 0 else now + 86400 * _NS
        if answer.access_token_token_expired:
            try:
                stated = datetime.strptime(answer.access_token_token_expired, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                raise KisProtocolError("token expiry is not YYYY-MM-DD HH:MM:SS") from None
            expires = min(expires, int(stated.replace(tzinfo=_KST).timestamp()) * _NS)
        return answer.access_token, expires

    async def _request_approval(self, now: int) -> tuple[str, int]:
        status, content = await self._post(
            APPROVAL_PATH,
            {
                "grant_type": "client_credentials",
                "appkey": self._credentials.app_key.reveal(),
                "secretkey": self._credentials.app_secret.reveal(),  # sic: not "appsecret"
            },
        )
        answer = decode_answer(content, status, ApprovalAnswer, "oauth2", APPROVAL_PATH)
        if answer.error_code or not answer.approval_key:
            raise _token_error(answer.error_code, answer.error_description, status)
        return answer.approval_key, now + self._approval_ttl_ns


def _token_error(code: str, description: str, status: int) -> KisApiError:
    cls: type[KisApiError] = KisAuthError
    if code == "EGW00133":
        cls = KisTokenThrottled
    elif status >= 500:  # the gateway failed, the credentials were not judged: retryable
        cls = KisServerError
    return cls(code or "NO_TOKEN", description, "oauth2", status)
