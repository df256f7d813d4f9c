"""A stream's answer to KIS refusing its approval key: one renewal per episode.

KIS refuses a registration carrying a key it does not accept with one of `KEY_REFUSALS`. The
cached key is still inside its reuse time, so every new session would be refused again until the
reconnect budget is spent; instead the next session first gets a new key (`KeyRenewal.renew`). A
key refused after its renewal is left to the stream's backoff and budget, until a connection on
which KIS took the key and refused none ends the episode.
"""

from __future__ import annotations

import logging

from observer.kis.auth import TokenManager
from observer.kis.parse import KEY_REFUSALS

__all__ = ["KeyRenewal"]

log = logging.getLogger(__name__)


class KeyRenewal:
    """The approval-key refusals of one stream's sessions, and their one renewal.

    Only digests of keys are kept, and nothing about a key is logged.

    Parameters
    ----------
    tokens:
        The account's token manager, which issues the new key.
    name:
        How the log names the stream (its account, or its URL).
    """

    def __init__(self, tokens: TokenManager, name: str) -> None:
        self._tokens = tokens
        self._name = name
        self._stale: bytes | None = None  # the digest of a refused key, to renew
        self._renewed = False  # this episode's renewal was made
        self._told = False  # that the renewed key is refused too was logged
        self._refused_now = False  # KIS refused the key on the current connection

    def refused(self, presented: bytes | None, code: str) -> None:
        """KIS refused the session with ``code`` (one of `SESSION_REFUSALS`).

        One of `KEY_REFUSALS` marks the key the connection presented (of digest
        ``presented``) for renewal before the next session, unless renewed this episode.
        """
        if code not in KEY_REFUSALS:
            return  # not the key (OPSP8996: in use elsewhere; a malformed message)
        self._refused_now = True
        if presented is None or self._stale is not None:
            return
        if self._renewed:
            if not self._told:
                self._told = True
                log.error(
                    "stream %s: KIS refused the renewed approval key too (%s): not renewed "
                    "again; the session retries within its reconnect budget",
                    self._name,
                    code,
                )
            return
        log.warning("stream %s: KIS refused the approval key (%s): renewing it", self._name, code)
        self._stale = presented

    async def renew(self) -> bool:
        """Before a session: a new key for the refused one, if one is pending; True.

        An emergency issuance by the account's `TokenManager`, even in a reader process, under
        the account's issuance lock, never while the cache already holds another key, and never
        within KIS's minute.

        Raises what `TokenManager.refresh_approval` raises; the key stays pending then, and
        the next session tries again.
        """
        stale = self._stale
        if stale is not None:
            await self._tokens.refresh_approval("emergency", stale=stale)
            self._stale, self._renewed = None, True
            log.warning("stream %s: the session presents a renewed approval key", self._name)
        return True

    def ended(self, taken: bool) -> None:
        """The connection ended; ``taken``: KIS took the key on it (`KisStream.identified`)."""
        if taken and not self._refused_now:
            self._renewed = self._told = False  # the episode is over
        self._refused_now = False
