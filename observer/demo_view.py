"""The demo's live status view (rich) and its closing summary."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from observer.clock import now_utc
from observer.demo import DemoState
from observer.phases import KST

__all__ = ["DemoView"]


class DemoView:
    """A live table on a terminal; one line per phase change otherwise."""

    def __init__(self, live: bool) -> None:
        self.console = Console(stderr=not live)
        self._live = Live(console=self.console, refresh_per_second=4) if live else None
        self._phase: str | None = None

    def __enter__(self) -> DemoView:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)

    def update(self, state: DemoState) -> None:
        """Show the state (called about twice a second)."""
        status = state.status
        sim_time = now_utc(state.clock).astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")
        if self._live is None:
            if status.get("phase") != self._phase:
                self._phase = status.get("phase")
                self.console.print(f"{sim_time} KST  phase {self._phase}  events {state.committed}")
            return
        header = Text(
            f"{sim_time} KST (x{state.clock.speed_now():g})   phase {status.get('phase')}   "
            f"events committed {state.committed:,} ({state.rate:,.0f}/s)   "
            f"faults injected {state.faults_injected}"
        )
        table = Table(box=None, header_style="bold")
        for column in ("program", "kind", "state", "pid", "restarts", "cpu %", "rss MiB", "detail"):
            table.add_column(column)
        for p in status.get("programs", []):
            table.add_row(
                p["name"], p["kind"], p["state"], str(p["pid"] or "-"), str(p["restarts"]),
                f"{p['cpu_percent']:.0f}", f"{p['rss_bytes'] / 2**20:.0f}", p["detail"][:40],
            )  # fmt: skip
        self._live.update(Group(header, table))

    def print_summary(self, summary: dict[str, Any]) -> None:
        """The closing summary, for people."""
        console = self.console
        console.print(
            f"observer demo: {summary['date']} at x{summary['speed']:g} "
            f"(x{summary['idle_speed']:g} outside 09:00-15:40) in {summary['wall_s']} s"
        )
        console.print("phases: " + ", ".join(f"{p['at']} {p['phase']}" for p in summary["phases"]))
        for name, proc in summary["processes"].items():
            console.print(f"  {name}: {proc['state']}, {proc['restarts']} restarts")
        universe = summary["universe"]
        console.print(
            f"universe: {universe['members']:,} symbols (closes of {universe['based_on']})"
        )
        track_a, rest = summary["track_a"], summary["rest"]
        console.print(
            f"track A: {track_a['complete']} of {track_a['cycles']} cycles complete, "
            f"{track_a['snapshots']:,} snapshots, {track_a['overran']} cut off, longest "
            f"{track_a['longest_s']} s of 600; REST {rest['calls']:,} calls, busiest second "
            f"{rest['busiest_second']} of {rest['limit_per_second']} allowed, "
            f"{rest['egw00201']} EGW00201"
        )
        b, gaps = summary["track_b"], summary["gaps"]
        console.print(
            f"track B: up to {b['slots_peak']} slots held, {b['allocations']} allocations, "
            f"{b['replacements']} replacements, {b['overflows']} overflowed "
            f"({b['overflow_pct']}%); {b['ticks_stored']:,} ticks stored of "
            f"{b['ticks_sent']:,} sent, {b['symbols_streamed']} symbols"
        )
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(gaps["by_reason"].items())) or "none"
        states = ", ".join(f"{n} {s}" for s, n in sorted(gaps["by_state"].items())) or "none"
        console.print(
            f"gaps: {gaps['detected']} detected ({reasons}); {states}; "
            f"{gaps['recovered_bars']} minute bars recovered, queue peak {gaps['queue_peak']}; "
            f"gaps <= 60 s recovered "
            f"{gaps['short_success_pct']}%, p99 detection to recovered "
            f"{gaps['detect_to_recovered_p99_s']} simulated s"
        )
        listings = summary["listings"]
        console.print(
            f"listings: {listings['instruments']:,} instruments; detected +{listings['new']} new, "
            f"~{listings['changed']} changed, -{listings['removed']} removed; "
            f"{listings['reviews_held']} held for review"
        )
        console.print(
            f"events committed: {summary['events_committed']:,}; "
            f"{'healthy' if summary['healthy'] else 'UNHEALTHY'}"
        )
