"""Whether to download a master file: by its size and validators, never missing a change.

Any size change downloads (one new listing changes a 1 MB archive by under 0.1 %); same size
with a different ETag or Last-Modified too; without validators to compare, same size
downloads and the archive's sha256 decides (`FileDecision.by_hash`): a same-size change is
never skipped, an unchanged archive never applied again. ``force`` only turns "unchanged,
skip" into a download: a major decrease is held for review either way. A remote
Last-Modified older than the file in use's (a stale mirror) is skipped, unless an operator
allows a rollback by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from observer.config.workers import MasterFileSettings
from observer.kis.master import RemoteFile
from workers.master_file.files import Current

__all__ = ["STALE", "FileDecision", "decide", "without_head"]

Action = Literal["skip", "download", "hold"]
Severity = Literal["info", "warning", "critical"]

STALE = "master_stale_file"  # the alert of a file older than the one in use


@dataclass(frozen=True, slots=True)
class FileDecision:
    """What to do with one file, why, and how loudly."""

    action: Action  # hold: download, but apply nothing until an operator approves
    reason: str
    severity: Severity = "info"
    alert: str = ""  # the alert's code when not the action's usual one
    # download, then skip as unchanged if the archive's sha256 is the one in use's
    by_hash: bool = False


def without_head(current: Current | None) -> FileDecision:
    """The decision when the host answers no HEAD: download, and let the sha256 tell."""
    if current is None:
        return FileDecision("download", "initial download")
    return FileDecision("download", "no HEAD: downloaded, compared by sha256", by_hash=True)


def _when(http_date: str) -> datetime | None:
    """An HTTP date, or None when absent or unreadable."""
    try:
        return parsedate_to_datetime(http_date) if http_date else None
    except (TypeError, ValueError):
        return None


def _older(remote: str, current: str) -> bool:
    """True if the remote Last-Modified is strictly older than the one of the file in use."""
    then, now = _when(remote), _when(current)
    try:
        return then is not None and now is not None and then < now
    except TypeError:  # one naive, one aware: not comparable, not judged
        return False


def decide(
    current: Current | None,
    remote: RemoteFile,
    limits: MasterFileSettings,
    *,
    force: bool,
    allow_rollback: bool = False,
) -> FileDecision:
    """Apply the decision table to the archive in use and what HEAD says of the remote."""
    if remote.size == 0:
        return FileDecision("skip", "the server reports 0 bytes", "critical")
    if current is None:
        return FileDecision("download", "initial download")
    if not allow_rollback and _older(remote.last_modified, current.last_modified):
        why = (
            f"the server's file (Last-Modified {remote.last_modified}) is older than the one "
            f"in use ({current.last_modified}): a stale copy, not applied"
        )
        return FileDecision("skip", why, "warning", STALE)
    change = 100 * (remote.size - current.size) / current.size
    if change > limits.growth_alert_pct:
        return FileDecision("download", f"large increase ({change:+.1f}%)", "warning")
    if change > 0:
        return FileDecision("download", f"grew {change:+.2f}%")
    if change < -limits.shrink_hold_pct:
        return FileDecision("hold", f"major decrease ({change:+.1f}%)", "critical")
    if change < 0:
        return FileDecision("download", f"minor decrease ({change:+.2f}%): verifying", "warning")
    if remote.etag and current.etag and remote.etag != current.etag:
        return FileDecision("download", "same size, new ETag")
    if (
        remote.last_modified
        and current.last_modified
        and (remote.last_modified != current.last_modified)
    ):
        return FileDecision("download", "same size, new Last-Modified")
    if not (remote.etag and current.etag) and not (remote.last_modified and current.last_modified):
        why = "same size, no validators: compared by sha256"
        return FileDecision("download", why, by_hash=True)
    if force:
        return FileDecision("download", "forced refresh: contents will be compared")
    return FileDecision("skip", "unchanged")
