"""The alerts of a market's file that a later check ends, and ending them.

Each has the market as subject. What the server serves (`SUSPECT`, `STALE`, `SIZE_CHANGE`)
is over once a check of the market gets through; what a file holds (`QUALITY_LOW`,
`MALFORMED`) once a downloaded file without it is applied. Only an open alert is resolved,
never one this run raised again, and only when the database can say which are open.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from bus.events import AlertResolved
from observer.cli.support import open_alert_subjects
from observer.reference.instruments import MASTER_FILES, MasterFile
from workers.master_file import SOURCE
from workers.master_file.context import Services
from workers.master_file.decide import STALE
from workers.master_file.outcome import FileOutcome

__all__ = ["MALFORMED", "NEW_CODES", "QUALITY_LOW", "SIZE_CHANGE", "SUSPECT", "Settle", "Through"]

SUSPECT = "master_remote_suspect"  # critical: the server reports a 0-byte file
SIZE_CHANGE = "master_size_change"  # warning: a large increase, or a decrease verified
QUALITY_LOW = "master_quality_low"  # warning: too few complete rows
MALFORMED = "master_records_malformed"  # warning: records held back, left as stored
NEW_CODES = "master_new_codes"  # info, once per finding: codes or columns the layout lacks

# Code -> the severity of its alerts (a resolution is routed like them).
_REMOTE = {SUSPECT: "critical", STALE: "warning", SIZE_CHANGE: "warning"}
_CONTENTS = {QUALITY_LOW: "warning", MALFORMED: "warning"}

# How a market's check went: a download applied, the file found unchanged, or neither.
Through = Literal["applied", "unchanged", ""]


def _ends(code: str, through: Through) -> bool:
    return through == "applied" or (through == "unchanged" and code in _REMOTE)


class Settle:
    """One update run's view of the open alerts of `Services`'s source, and their ends."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.open: dict[str, set[str] | None] = {}  # code -> open subjects; None: unknown
        self.through: dict[str, Through] = {}  # market -> how its check went, this run

    async def load(self) -> None:
        """Read which alerts are open (in a thread: a slow database is no hung job)."""
        settings = self.services.settings
        self.open = {
            code: await asyncio.to_thread(open_alert_subjects, settings, SOURCE, code)
            for code in (*_REMOTE, *_CONTENTS)
        }
        self.through.clear()

    def market(self, file: MasterFile, through: Through, outcome: FileOutcome) -> None:
        """End the open alerts of ``file``'s market that its check this run ended."""
        self.through[file.market] = through
        for code, severity in (*_REMOTE.items(), *_CONTENTS.items()):
            if not _ends(code, through) or (code, file.market) in self.services.raised:
                continue
            if file.market not in (self.open.get(code) or ()):
                continue
            self.services.publish(
                AlertResolved(
                    code=code,
                    severity=severity,  # type: ignore[arg-type]
                    subject=file.market,
                    message=f"{file.name} checked again ({outcome.action}: {outcome.reason})",
                )
            )

    def unnamed(self) -> None:
        """End such an alert raised before it named its market, once every market's is over.

        It could be any file's: it ends when this run checked every file and each check
        ended that condition.
        """
        for code, severity in (*_REMOTE.items(), *_CONTENTS.items()):
            if "" not in (self.open.get(code) or ()):
                continue
            if all(
                _ends(code, self.through.get(f.market, ""))
                and (code, f.market) not in self.services.raised
                for f in MASTER_FILES
            ):
                self.services.publish(
                    AlertResolved(
                        code=code,
                        severity=severity,  # type: ignore[arg-type]
                        message="every master file's check got through",
                    )
                )
