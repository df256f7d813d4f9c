"""Whether to download a master file: by its size and validators, never missing a change.

Ignoring small size changes (under 0.1 %, say) would miss listings: one new listing
changes a 1 MB archive by less than that, so here any size change downloads. Same size
with a different ETag or Last-Modified downloads too (a rename can keep the size). Without
validators, same size is trusted until the weekly forced refresh compares contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from observer.config import MasterFileSettings
from observer.kis.master import RemoteFile
from workers.master_file.files import Current

__all__ = ["Decision", "decide"]

Action = Literal["skip", "download", "hold"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one file, why, and how loudly."""

    action: Action  # hold: download, but apply nothing until an operator approves
    reason: str
    severity: Severity = "info"


def decide(
    current: Current | None, remote: RemoteFile, limits: MasterFileSettings, *, force: bool
) -> Decision:
    """Apply the decision table to the archive in use and what HEAD says of the remote."""
    if remote.size == 0:
        return Decision("skip", "the server reports 0 bytes", "critical")
    if current is None:
        return Decision("download", "initial download")
    if force:
        return Decision("download", "forced refresh: contents will be compared")
    change = 100 * (remote.size - current.size) / current.size
    if change > limits.growth_alert_pct:
        return Decision("download", f"large increase ({change:+.1f}%)", "warning")
    if change > 0:
        return Decision("download", f"grew {change:+.2f}%")
    if change < -limits.shrink_hold_pct:
        return Decision("hold", f"major decrease ({change:+.1f}%)", "critical")
    if change < 0:
        return Decision("download", f"minor decrease ({change:+.2f}%): verifying", "warning")
    if remote.etag and current.etag and remote.etag != current.etag:
        return Decision("download", "same size, new ETag")
    if (
        remote.last_modified
        and current.last_modified
        and (remote.last_modified != current.last_modified)
    ):
        return Decision("download", "same size, new Last-Modified")
    return Decision("skip", "unchanged")
