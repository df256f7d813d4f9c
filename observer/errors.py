"""The product's exception tree; foreign exceptions are re-raised as these at the boundary.

Retryability is the class attribute ``retryable``, never worked out from message text, and
exceptions carry codes and tr_ids, never credentials. Each class says when it is raised::

    ObserverError
    ├── ConfigError, StoreError (→ NoDatabase), WriterLocked, ArchiveError, BackupError, WaitFailed
    ├── KisError
    │   ├── KisTransportError, KisProtocolError, MasterFileError, KisPaperRefused
    │   └── KisApiError(msg_cd, msg1, tr_id, status)
    │       └── KisRateLimited, KisServerError, KisAuthError, KisTokenThrottled
    ├── KrxError → KrxLoginError(code), KrxLoggedOut, KrxServerError, KrxTransportError,
    │              KrxProtocolError
    └── FallbackError → FallbackRateLimited, FallbackServerError, FallbackTransportError,
                        FallbackProtocolError, BreakerOpen
    BusError and its subclasses (`bus.errors`; the bus imports nothing from observer)
"""

from __future__ import annotations

from bus.errors import BusError, CaptureError, FrameError, OutboxError

__all__ = [
    "ArchiveError",
    "BackupError",
    "BreakerOpen",
    "BusError",
    "CaptureError",
    "ConfigError",
    "FallbackError",
    "FallbackProtocolError",
    "FallbackRateLimited",
    "FallbackServerError",
    "FallbackTransportError",
    "FrameError",
    "JournalError",
    "KisApiError",
    "KisAuthError",
    "KisError",
    "KisLayoutUnknown",
    "KisPaperRefused",
    "KisProtocolError",
    "KisRateLimited",
    "KisServerError",
    "KisTokenThrottled",
    "KisTransportError",
    "KrxError",
    "KrxLoggedOut",
    "KrxLoginError",
    "KrxProtocolError",
    "KrxServerError",
    "KrxTransportError",
    "MasterFileError",
    "ObserverError",
    "OutboxError",
    "StoreError",
    "WaitFailed",
    "WriterLocked",
]


class ObserverError(Exception):
    """Base of the product's own failures."""


class ConfigError(ObserverError):
    """Configuration that cannot be used; the message names the offending path."""


class StoreError(ObserverError):
    """The database cannot be reached, read or written; retryable once it is back."""

    retryable = True


class NoDatabase(StoreError):
    """No SQLite file where the configuration says: a path to correct, not an outage.

    A command says so with exit 2, as it does for an unusable URL; a database that refuses
    is exit 1. A worker retries it as any `StoreError` (the writer may not have made it yet).
    """


class BackupError(ObserverError):
    """A backup could not be made, failed its verification, or cannot be restored there."""


class JournalError(ObserverError):
    """A file of the raw journal of KIS's frames cannot be read as records (damage)."""


class ArchiveError(ObserverError):
    """A day archive could not be written, or a file does not match its record."""


class WriterLocked(ObserverError):
    """Another writer holds the lock on this database or endpoint."""


class WaitFailed(ObserverError):
    """A child process died, or a condition we waited for did not hold in time."""


class KisError(ObserverError):
    """Base of every failure talking to KIS."""

    retryable = False


class KisApiError(KisError):
    """KIS answered with an error code (``msg_cd``), whatever the HTTP status."""

    def __init__(self, msg_cd: str, msg1: str, tr_id: str = "", status: int = 0) -> None:
        self.msg_cd = msg_cd
        self.msg1 = msg1.strip()
        self.tr_id = tr_id
        self.status = status
        super().__init__(f"{tr_id or 'KIS'}: {msg_cd} {self.msg1} (HTTP {status})")


class KisRateLimited(KisApiError):
    """EGW00201: the per-second call budget was exceeded."""

    retryable = True


class KisServerError(KisApiError):
    """A temporary gateway or server error (EGW00001/00002/00202/00203, bare 5xx)."""

    retryable = True


class KisAuthError(KisApiError):
    """The access token is invalid, unknown or expired: refresh it, then retry once."""


class KisTokenThrottled(KisApiError):
    """EGW00133: tokens may be issued once a minute per app key."""


class KisTransportError(KisError):
    """The request did not get an answer: timeout, refused or dropped connection."""

    retryable = True


class KisProtocolError(KisError):
    """An answer or real-time frame that does not follow the protocol."""


class KisLayoutUnknown(KisProtocolError):
    """A real-time frame whose record width no known layout of its TR has: refused whole.

    ``width`` is the frame's fields divided by its record count, None when they do not
    divide (then no width can be read at all).
    """

    def __init__(self, tr_id: str, width: int | None, total: int, count: int) -> None:
        self.tr_id = tr_id
        self.width = width
        self.total = total
        self.count = count
        what = f"records {width} fields wide" if width is not None else "no whole records"
        super().__init__(
            f"{tr_id}: {total} fields in {count} record{'s' * (count > 1)} make {what}, "
            "a layout the client does not know: the frame is refused whole"
        )

    @property
    def width_text(self) -> str:
        """The width as an alert subject names it: digits, or ``uneven``."""
        return "uneven" if self.width is None else str(self.width)


class MasterFileError(KisError):
    """A master file (or its zip) that is truncated, mis-encoded, malformed or unsafe."""


class KisPaperRefused(KisError):
    """A TR KIS offers on real accounts only was asked of a paper account; nothing was sent."""


class KrxError(ObserverError):
    """Base of every failure talking to the KRX data portal (data.krx.co.kr)."""

    retryable = False


class KrxLoginError(KrxError):
    """The portal refused the login: ``code`` is its ``_error_code`` (CD010: change password)."""

    def __init__(self, code: str, message: str = "") -> None:
        self.code = code
        super().__init__(f"KRX login refused: {code} {message}".rstrip())


class KrxLoggedOut(KrxError):
    """HTTP 400 ``LOGOUT``: the session is missing, expired, or killed by another login."""


class KrxServerError(KrxError):
    """The portal answered 5xx."""

    retryable = True


class KrxTransportError(KrxError):
    """The request got no answer: timeout, refused or dropped connection."""

    retryable = True


class KrxProtocolError(KrxError):
    """An answer that is not the portal's JSON (``{"output": [...]}``)."""


class FallbackError(ObserverError):
    """Base of every failure asking the fallback sector source (a quoteSummary API)."""

    retryable = False
    retry_after_s: float | None = None


class FallbackRateLimited(FallbackError):
    """HTTP 429 "Too Many Requests"; ``retry_after_s`` is its ``Retry-After`` if sent."""

    retryable = True

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FallbackServerError(FallbackError):
    """The source answered 5xx."""

    retryable = True


class FallbackTransportError(FallbackError):
    """The request got no answer: timeout, refused or dropped connection."""

    retryable = True


class FallbackProtocolError(FallbackError):
    """An answer that is not quoteSummary JSON."""


class BreakerOpen(FallbackError):
    """The circuit breaker is open: no call is made; the symbol waits for the next run."""
