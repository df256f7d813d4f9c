"""The check's findings: one row per TR or assumption, rendered as a table or as JSON."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["MISMATCH", "NOT_MEASURED", "OK", "Finding", "Outcome", "Report"]

Outcome = Literal["ok", "mismatch", "not measured"]
OK: Outcome = "ok"
MISMATCH: Outcome = "mismatch"
NOT_MEASURED: Outcome = "not measured"


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """What one item (a TR, a real-time layout, a measured assumption) showed.

    ``finding`` is plain text for a person; it never holds a credential, a token or a key.
    """

    item: str
    outcome: Outcome
    layout: str = ""  # the real-time layout generation seen, or a paging note
    finding: str = ""


class Report(msgspec.Struct, kw_only=True):
    """The whole check: where it ran and what each item showed, in the order checked."""

    account: str
    environment: str
    symbol: str
    seconds: float
    findings: list[Finding] = msgspec.field(default_factory=list)

    @property
    def mismatches(self) -> list[Finding]:
        """The findings that disagree with what the client assumes (exit 1 when any)."""
        return [f for f in self.findings if f.outcome == MISMATCH]

    def add(self, item: str, outcome: Outcome, finding: str = "", layout: str = "") -> Finding:
        """Record one finding and return it."""
        found = Finding(item=item, outcome=outcome, layout=layout, finding=finding)
        self.findings.append(found)
        return found

    def to_json(self) -> bytes:
        """The report as one JSON document (the same rows as the table)."""
        return msgspec.json.encode(self)
