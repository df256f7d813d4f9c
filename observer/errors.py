"""The product's exception tree; foreign exceptions are re-raised as these at the boundary.

::

    ObserverError
    ├── ConfigError        bad or missing configuration (names the path)
    ├── StoreError         the database cannot be reached, read or written
    └── WriterLocked       another writer already serves this database or endpoint
    BusError (bus.errors; the bus imports nothing from observer)
    ├── FrameError, CaptureError
    └── OutboxError → OutboxLocked, OutboxBehindWriter

The KIS client adds ``KisError`` and its children.
"""

from __future__ import annotations

from bus.errors import BusError, CaptureError, FrameError, OutboxError

__all__ = [
    "BusError",
    "CaptureError",
    "ConfigError",
    "FrameError",
    "ObserverError",
    "OutboxError",
    "StoreError",
    "WriterLocked",
]


class ObserverError(Exception):
    """Base of the product's own failures."""


class ConfigError(ObserverError):
    """Configuration that cannot be used; the message names the offending path."""


class StoreError(ObserverError):
    """The database cannot be reached, read or written; retryable once it is back."""

    retryable = True


class WriterLocked(ObserverError):
    """Another writer holds the lock on this database or endpoint."""
