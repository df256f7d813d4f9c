"""The demo's live status view (rich) and its closing summary.

The live view fits an 80-column terminal: the day's progress and phases, Track A's cycle in
progress, Track B's slots per account, the flow of ticks and events, gaps, the programs and
the newest alerts. Without a terminal it prints one line per phase change instead.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.demo import BUSY, RUSH, DemoState
from observer.calendar.clock import now_utc
from observer.calendar.phases import KST

__all__ = ["DemoView", "render"]

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}
_STATE_STYLE = {"running": "green", "exited": "dim", "stopped": "dim", "fatal": "bold red"}


class DemoView:
    """A live view on a terminal; one line per phase change otherwise."""

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
        if self._live is not None:
            self._live.update(render(state))
            return
        phase = state.status.get("phase")
        if phase != self._phase:
            self._phase = phase
            at = now_utc(state.clock).astimezone(KST).strftime("%Y-%m-%d %H:%M:%S")
            self.console.print(f"{at} KST  phase {phase}  events {state.committed}")

    def print_summary(self, summary: dict[str, Any]) -> None:
        """The closing summary, for people."""
        for line in summary_lines(summary):
            self.console.print(line, highlight=False)


def render(state: DemoState) -> RenderableType:
    """The whole live view for one refresh."""
    now = now_utc(state.clock)
    return Group(
        _header(state, now),
        _phases(state, now),
        Text(""),
        _workload(state, now),
        Text(""),
        _programs(state),
        *_alerts(state),
    )


def _hhmm(at: datetime) -> str:
    return at.astimezone(KST).strftime("%H:%M")


def _header(state: DemoState, now: datetime) -> RenderableType:
    span = (state.end - state.begin).total_seconds()
    done = min(max((now - state.begin).total_seconds() / span, 0.0), 1.0) if span else 1.0
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True)
    title = Text.assemble(
        ("observer demo ", "bold"),
        now.astimezone(KST).strftime("%Y-%m-%d %H:%M:%S KST"),
        f"  x{state.clock.speed_now():g}",
    )
    grid.add_row(title, ProgressBar(total=1.0, completed=done), f"{done:4.0%} of the day")
    return grid


def _phases(state: DemoState, now: datetime) -> Text:
    """The day's phases, the one in force highlighted."""
    current = state.status.get("phase")
    line = Text("phases  ", style="bold")
    shown = [(at, phase) for at, phase in state.phases if at < state.end]
    for n, (at, phase) in enumerate(shown):
        if n:
            line.append(" > ", style="dim")
        style = "reverse bold" if phase == current else ("" if at <= now else "dim")
        line.append(f"{_hhmm(at)} {phase}", style=style)
    return line


def _workload(state: DemoState, now: datetime) -> Table:
    """Track A's cycle, Track B's slots, the flow, gaps: one labelled row each."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    a = state.counters("track_a")
    size, done = int(a.get("cycle_size", 0)), int(a.get("cycle_done", 0))
    if size:
        running = bool(a.get("cycle_running"))
        late = int(a.get("overran", 0))
        status = "in progress" if running else f"done in {a.get('last_cycle_s', 0):g} s"
        grid.add_row(
            "Track A",
            Text.assemble(
                f"cycle {done:,} / {size:,} symbols, {status}; {int(a.get('cycles', 0))} cycles, ",
                (f"{late} late", "bold red") if late else ("all on time", "green"),
            ),
        )
    else:
        grid.add_row("Track A", Text("waiting for the universe and 09:00", style="dim"))
    b = state.counters("track_b")
    capacity = int(b.get("capacity_per_account", 41))
    slots = "  ".join(
        f"{alias} {int(b.get(f'slots.{alias}', 0))} symbols "
        f"{int(b.get(f'registrations.{alias}', 0))}/{capacity}"
        for alias in state.accounts
    )
    grid.add_row("Track B", f"registrations {slots}")
    grid.add_row(
        "flow",
        f"{state.tick_rate:,.0f} ticks/s   {state.rate:,.0f} events/s   "
        f"{state.committed:,} committed   faults {state.faults_injected}",
    )
    g = state.counters("gap_recovery")
    grid.add_row(
        "gaps",
        f"{int(g.get('gaps_detected', 0))} detected, {int(g.get('queue_depth', 0))} open, "
        f"{int(g.get('gaps_recovered', 0))} recovered, "
        f"{int(g.get('gaps_unrecoverable', 0))} unrecoverable",
    )
    return grid


def _programs(state: DemoState) -> Table:
    programs = state.status.get("programs", [])
    table = Table(box=None, header_style="bold", pad_edge=False)
    widest = max((len(p["name"]) for p in programs), default=7)
    # Fixed widths: only the detail gives way on a narrow terminal (never "track…").
    table.add_column("program", no_wrap=True, min_width=widest)
    table.add_column("state", no_wrap=True, min_width=8)
    table.add_column("restarts", justify="right", no_wrap=True, min_width=8)
    table.add_column("cpu %", justify="right", no_wrap=True, min_width=5)
    table.add_column("MiB", justify="right", no_wrap=True, min_width=4)
    table.add_column("detail", overflow="ellipsis", no_wrap=True, ratio=1)
    for p in programs:
        table.add_row(
            p["name"],
            Text(p["state"], style=_STATE_STYLE.get(p["state"], "")),
            str(p["restarts"]),
            f"{p['cpu_percent']:.0f}",
            f"{p['rss_bytes'] / 2**20:.0f}",
            p["detail"],
        )
    return table


def _alerts(state: DemoState) -> list[RenderableType]:
    lines: list[RenderableType] = [Text(""), Text("latest alerts", style="bold")]
    for produced_ns, severity, code, message in state.alerts:
        at = datetime.fromtimestamp(produced_ns / 1e9, KST).strftime("%H:%M")
        line = Text.assemble(f"{at} ", (code, _SEVERITY_STYLE.get(severity, "")), f" {message}")
        line.no_wrap, line.overflow = True, "ellipsis"  # one line each, cut at the edge
        lines.append(line)
    return lines if state.alerts else []


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The closing summary as lines of text."""
    after = summary.get("after_speed", summary["idle_speed"])
    rush = summary.get("rush_speed", summary["speed"])
    lines = [
        f"observer demo: {summary['date']} at x{summary['speed']:g} "
        f"(x{summary['idle_speed']:g} before {BUSY[0]:%H:%M}, x{rush:g} "
        f"{RUSH[0]:%H:%M}-{RUSH[1]:%H:%M}, x{after:g} after {BUSY[1]:%H:%M}) "
        f"in {summary['wall_s']} s",
        "phases: " + ", ".join(f"{p['at']} {p['phase']}" for p in summary["phases"]),
    ]
    cpu = summary.get("cpu_s", {})
    for name, proc in summary["processes"].items():
        replaced = ", ".join(f"{n} {c}" for c, n in proc.get("replaced", {}).items() if n)
        lines.append(
            f"  {name}: {proc['state']}, {proc['restarts']} restarts, "
            + (f"replaced ({replaced}), " if replaced else "")
            + f"{cpu.get(name, 0.0):g} s CPU"
        )
    if "replaced" in summary:  # each hung or crashed program started again by the supervisor
        causes = ", ".join(f"{n} {cause}" for cause, n in summary["replaced"].items())
        lines.append(f"  programs replaced after a hang or a crash: {causes}")
    others = ", ".join(f"{n} {cpu[n]:g} s" for n in ("simulator", "supervisor") if n in cpu)
    if others:
        lines.append(f"  CPU of the {others}")
    if "load_average" in summary:
        loads = " ".join(f"{x:g}" for x in summary["load_average"])
        lines.append(f"  load average at the end {loads} on {summary['cpus']} CPUs")
    universe = summary["universe"]
    nxt = universe.get("nxt", {})
    lines.append(
        f"universe: {universe['members']:,} symbols (closes of {universe['based_on']}); "
        f"Nextrade trades {nxt.get('eligible', 0):,} of them"
        + (f", {nxt['unknown']:,} not known" if nxt.get("unknown") else "")
    )
    track_a, rest = summary["track_a"], summary["rest"]
    lines.append(
        f"track A: {track_a['complete']} of {track_a['cycles']} cycles complete, "
        f"{track_a['snapshots']:,} snapshots, {track_a['overran']} cut off, longest "
        f"{track_a['longest_s']} s of 600, {track_a['rate_limit_errors']} rate-limit errors; "
        f"REST {rest['calls']:,} calls, busiest second {rest['busiest_second']} of "
        f"{rest['limit_per_second']} allowed, {rest['egw00201']} EGW00201"
    )
    for venue, cycles in sorted(track_a.get("by_venue", {}).items()):
        lines.append(
            f"  {venue}: {cycles['complete']} of {cycles['cycles']} cycles complete over up to "
            f"{cycles.get('members_max', 0):,} members, {cycles.get('snapshots', 0):,} snapshots"
        )
    for cut in track_a.get("cut_off", []):
        lines.append(
            f"  cycle {cut['cycle']} ({cut.get('venue', 'KRX')}) cut off: "
            f"{cut['succeeded']} answered, {cut['unfinished']} unfinished at "
            f"{cut['rate_per_s']:g} calls/s"
        )
    b, gaps = summary["track_b"], summary["gaps"]
    lines.append(
        f"track B: up to {b['max_slots_used']} symbols in "
        f"{b.get('registrations_peak', b['max_slots_used'])} of {b['capacity']} registrations, "
        f"{b['allocations']} allocations, {b['replacements']} replacements, "
        f"{b['overflow']} overflowed ({b['overflow_pct']}%); {b['ticks']:,} ticks stored of "
        f"{b['ticks_sent']:,} sent, {b['symbols_streamed']} symbols"
        + _by_venue(b.get("ticks_by_venue", {}))
        + _by_session(b.get("ticks_by_session", {}))
    )
    if records := b.get("records"):
        kinds = ", ".join(f"{n} {kind}" for kind, n in b.get("registrations_by_kind", {}).items())
        lines.append(
            f"track B kept beside the trades: {records['market_status']:,} market-status records "
            f"({b['halts_seen']} halted, {b['vis_seen']} VIs), {records['program_trades']:,} "
            f"program-trading records; registrations at the peak: {kinds}"
        )
        lines.append(
            f"the auctions: {records.get('auction_expected', 0):,} expected matches stored "
            f"({b.get('auction_sent', 0):,} sent) of {b.get('auction_names', 0)} names at KRX's "
            f"opening, {b.get('closing_auction_names', 0)} at its close, "
            f"{b.get('nxt_auction_names', 0)} at Nextrade's after-market opening"
        )
        lines.append(
            f"the market's VIs: {records.get('vi_notices', 0):,} starts and ends stored "
            f"({b.get('vi_sent', 0):,} sent) of {b.get('vi_stocks', 0)} stocks on one "
            f"registration; {b.get('vi_unheard', 0)} of the flows job's VIs not heard live "
            f"(and {b.get('vi_unheard_in_outages', 0)} while its session was down)"
        )
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(gaps["by_reason"].items())) or "none"
    lines.append(
        f"gaps: {gaps['detected']} detected ({reasons}); {gaps['recovered']} recovered, "
        f"{gaps['unrecoverable']} unrecoverable; {gaps['recovered_bars']} minute bars "
        f"and {gaps.get('recovered_trades', 0):,} of the exchange's trades "
        f"({gaps.get('trade_volume', 0):,} shares, {gaps.get('by_trades', 0)} gaps) "
        f"recovered, queue peak {gaps['queue_peak']}; gaps <= 60 s recovered "
        f"{gaps['short_success_pct']}%, p99 detection to recovered "
        f"{gaps['detect_to_recovered_p99_s']} simulated s"
    )
    if "reconciliation" in summary:
        lines.append(_reconciliation_line(summary["reconciliation"]))
    if journal := summary.get("journal"):
        kept = ", ".join(
            f"{name} {p['records']:,}" for name, p in sorted(journal["by_process"].items())
        )
        ratio = journal["raw_bytes"] / journal["bytes"] if journal["bytes"] else 0.0
        lines.append(
            f"journal: {journal['records']:,} frames and answers from KIS kept raw ({kept}), "
            f"{journal['bytes'] / 1e6:.1f} MB ({ratio:.1f}x smaller than received)"
            + (f"; DAMAGED: {journal['problems']}" if journal["problems"] else "")
        )
    listings = summary["listings"]
    lines.append(
        f"listings: {listings['instruments']:,} instruments; detected +{listings['new']} new, "
        f"~{listings['changed']} changed, -{listings['removed']} removed; "
        f"{listings['reviews_held']} held for review"
    )
    if investor := summary.get("investor"):
        postings = ", ".join(f"{at} {n}" for at, n in investor["stocks_by_posting"].items())
        lines.append(
            f"investor estimates: {investor['estimates']:,} stored (stocks per posting: "
            f"{postings or 'none'})"
        )
    if flows := summary.get("flows"):
        kinds = "; ".join(
            f"{kind}: " + (", ".join(f"{n} {venue}" for venue, n in by_venue.items()) or "none")
            for kind, by_venue in flows.items()
        )
        lines.append(f"final flows of the day, stocks per venue: {kinds}")
    etf = summary.get("etf")
    if etf:
        lines.append(
            f"ETFs: {etf['listed']:,} listed, {etf['collected']:,} collected for the day "
            f"({etf['coverage_pct']}%){'; STALE' if etf['stale'] else ''}"
        )
    if summary.get("enrichment"):
        lines.append(_enrichment_line(summary["enrichment"]))
    health = "healthy" if summary["healthy"] else "UNHEALTHY: " + "; ".join(summary["problems"])
    lines.append(f"events committed: {summary['events_committed']:,}; {health}")
    return lines


def _enrichment_line(enrichment: dict[str, Any]) -> str:
    """Sector coverage per region, and the day's runs with their calls and time."""
    coverage = ", ".join(
        f"{name} {r['coverage_pct']}% of {r['stocks']:,}"
        for name, r in enrichment["regions"].items()
    )
    runs = "; ".join(
        f"{run['mode']} run: {run['calls']:,} fallback + {run['kis_calls']:,} KIS calls, "
        f"{run['duration_ms'] / 1000:.0f} s, {run['deferred']:,} deferred, "
        f"{run['failed']:,} failed"
        for run in enrichment["runs"]
    )
    return f"sectors: {coverage}; {runs or 'no run today'}"


def _reconciliation_line(r: dict[str, Any]) -> str:
    """The day against the exchange's minute bars, by venue and session.

    Said when the reconciliation due by the day's end had not finished.
    """
    if not r.get("watched_minutes"):
        return "reconciliation: none yet (each venue's runs a minute after its stream ends)"
    pending = "" if r.get("settled", True) else "; still running when the day ended"
    return (
        f"reconciliation: {r['watched_minutes']:,} watched minutes, {r['completeness_pct']}% "
        f"complete ({r['stream_pct']}% from the stream alone), {r['short']:,} short "
        f"({r['misses']:,} found only here, {r['unexplained']:,} unexplained), "
        f"{r['excess']:,} excess, {r['calls']:,} REST calls"
        + _by_session(r.get("minutes_by_session", {}))
        + pending
        + _chain(r.get("chain"))
    )


def _chain(chain: dict[str, Any] | None) -> str:
    """The volume the cumulative-volume chain proves, trade by trade, beside the bars'."""
    if not chain or not chain.get("spans"):
        return ""
    return (
        f"; volume proven by the chain {chain['proven_pct']}% of {chain['chain_volume']:,} "
        f"shares ({chain['proven']} of {chain['spans']} watched spans)"
    )


def _by_session(counts: dict[str, int]) -> str:
    """``"; by session: KRX regular 576,867"`` (a session "" is outside the venue's hours)."""
    if not counts:
        return ""
    return "; by session: " + ", ".join(
        f"{name or 'none'} {n:,}" for name, n in sorted(counts.items())
    )


def _by_venue(counts: dict[str, list[int]]) -> str:
    """``"; by venue (stored/sent): KRX 500,000/500,000, NXT 90,000/90,000"``."""
    if not counts:
        return ""
    return "; by venue (stored/sent): " + ", ".join(
        f"{venue} {stored:,}/{sent:,}" for venue, (stored, sent) in counts.items()
    )
