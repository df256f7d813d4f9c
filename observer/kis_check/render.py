"""The report as a rich table, for a person at a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from observer.kis_check.report import MISMATCH, OK, Report

__all__ = ["print_table"]

_STYLES = {OK: "green", MISMATCH: "bold red"}


def print_table(report: Report, console: Console) -> None:
    """Print one row per finding (item, outcome, layout, finding) and a verdict line."""
    table = Table(
        title=f"observer kis check: {report.account} ({report.environment}), {report.symbol}",
        show_lines=False,
    )
    for column in ("TR / item", "outcome", "layout", "finding"):
        table.add_column(column, overflow="fold")
    for f in report.findings:
        style = _STYLES.get(f.outcome, "yellow")
        # Text cells: a finding naming "[track_b] ..." is not markup
        table.add_row(Text(f.item), Text(f.outcome, style=style), Text(f.layout), Text(f.finding))
    console.print(table)
    count = len(report.mismatches)
    console.print("no mismatch" if not count else f"{count} mismatch(es): see docs/kis.md")
