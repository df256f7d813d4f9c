"""What one run did to one file (`FileOutcome`), and the `MasterFileChecked` event recording it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bus.events import MasterFileChecked
from workers.master_file.diff import Diff
from workers.master_file.files import Current

__all__ = ["SAMPLE", "FileOutcome", "sample"]

SAMPLE = 10  # listings shown per kind in reviews and dry runs


@dataclass(slots=True)
class FileOutcome:
    """What one run did to one file."""

    market: str
    file_name: str
    action: str  # skip | download | hold | dry-run | resync | approve | reject | restore | error
    reason: str
    records: int = 0
    added: int = 0
    modified: int = 0
    removed: int = 0
    complete_pct: Decimal | None = None
    review_id: str = ""
    error: str = ""
    duration_ms: int = 0
    changes: list[str] = field(default_factory=list)  # a sample, for people

    def checked(
        self,
        previous: Current | None,
        now: Current | None,
        *,
        remote_size: int,
        changed: bool,
        downloaded: bool,
        forced: bool = False,
    ) -> MasterFileChecked:
        """The check event: ``previous`` was in use before, ``now`` is in use after."""
        return MasterFileChecked(
            market=self.market,
            file_name=self.file_name,
            remote_size=remote_size,
            previous_size=previous.size if previous else 0,
            changed=changed,
            downloaded=downloaded,
            records=now.records if now else 0,
            sha256=now.sha256 if now else "",
            forced=forced,
            error=self.error,
            action=self.action,
            reason=self.reason,
            added=self.added,
            modified=self.modified,
            removed=self.removed,
            complete_pct=self.complete_pct,
            review_id=self.review_id,
            duration_ms=self.duration_ms,
        )


def sample(d: Diff) -> list[str]:
    """Up to `SAMPLE` listings of each kind of change, one line each, for people."""
    lines = [f"+ {x.symbol} {x.name or x.name_en}" for x in d.new[:SAMPLE]]
    lines += [f"~ {x.symbol} {', '.join(f)}: {x.name or x.name_en}" for x, f in d.changed[:SAMPLE]]
    lines += [f"- {x.symbol} {x.name or x.name_en}" for x in d.removed[:SAMPLE]]
    return lines
