"""Checks that span several settings tables: what one table cannot see of another.

`observer.config.load.load_settings` runs them when a file is loaded, so that an operator's slip (a
phase out of order, a rule naming no program, a heartbeat slower than its timeout, a job's
command that does not exist) stops the start with the key's name instead of failing hours
later, at 09:00 or at 21:00, or never firing at all. Each raises ValueError, which the
loader reports with the file's path.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import itertools
import os
import shutil
from datetime import date
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from observer.alerts.settings import ENRICHMENT_RUN_FIGURES, default_rules, enrichment_rules
from observer.calendar.timeline import timeline_from
from observer.calendar.trading import TradingCalendar
from observer.errors import ConfigError
from observer.kis.settings import env_prefix

if TYPE_CHECKING:
    from observer.calendar.settings import CalendarSettings, PhaseSettings
    from observer.config.tree import Settings
    from observer.supervisor.settings import ProgramSettings

__all__ = ["check_settings"]

# The process kinds whose share of each account's REST budget a program's command uses
# (`observer.kis.session.rate_limits`), by the command's first word.
_SHARE_OF_COMMAND = {
    "track-a": "track_a",
    "gap-recovery": "gap_recovery",
    "gaps": "gap_recovery",
    "token": "jobs",
    "readiness": "jobs",
    "enrich": "jobs",
}
# The commands that call KIS with the accounts' tokens.
_KIS_COMMANDS = frozenset(
    {"track-a", "track-b", "gap-recovery", "gaps", "universe", "readiness", "enrich", "etf"}
)
# The daemons that read the database on their event loop, between heartbeats (Track A's
# universe and resume; Track B's context sync at 09:29:50): each read blocks at most about
# 1.1 x reader_pool_timeout_s (`observer.db.readers`, tests/db/test_readers_link.py: a network
# cut included).
_READS_ON_ITS_LOOP = frozenset({"track-a", "track-b"})
_READ_BLOCKS = 1.25
_PHASE_ORDER = ("warmup", "track_a_only", "full_operation", "track_a_closing", "shutdown", "idle")
# What a threshold rule may name besides ``<program>.<counter>`` (`observer.supervisor.rules`):
# the ages of data and each region's enrichment figures that the supervisor reads
# (`observer.supervisor.readings`; its run figures are asked for there only when named).
_DATA_AGES = ("age_h.master_file", "age_h.enrichment")
_REGION_FIGURES = ("coverage_pct", "age_h")
# The commands of `observer.cli.main`'s own app; a test keeps them in step with it. Named here
# because every process loads the configuration, the writer without the CLI framework: the
# app is not imported to check a program's command. The workers' commands are entry points.
_OWN_COMMANDS = frozenset(
    {
        "audit",
        "capture",
        "config",
        "ctl",
        "data",
        "db",
        "export",
        "hosts",
        "journal",
        "keys",
        "kis",
        "replay",
        "report",
        "supervise",
        "writer",
    }
)
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL


def check_settings(settings: Settings) -> None:
    """Raise ValueError for the first setting that contradicts another."""
    _check_sockets(settings)
    _check_addresses(settings)
    _check_dependencies(settings.programs)
    _check_shares(settings)
    _check_accounts(settings)
    _check_phases(settings.phases, settings.calendar)
    _check_programs(settings)
    _check_orders(settings)
    _check_rules(settings)


def _check_sockets(settings: Settings) -> None:
    """Every Unix socket's path fits a socket address (107 bytes), as it will be bound."""
    sockets = [("supervisor.control_socket", settings.control_socket)]
    for name, endpoint in (
        ("ingest", settings.bus.ingest_endpoint),
        ("feed", settings.bus.feed_endpoint),
    ):
        if not endpoint:  # ipc under the run directory
            sockets.append((f"paths.run_dir ({name})", settings.paths.run / f"{name}.sock"))
        elif endpoint.startswith("ipc://"):
            sockets.append((f"bus.{name}_endpoint", Path(endpoint.removeprefix("ipc://"))))
    for name, path in sockets:
        if len(os.fsencode(path)) > _SOCKET_PATH_MAX:
            raise ValueError(
                f"{name}: the socket {path} is {len(os.fsencode(path))} bytes, more than a "
                f"Unix socket's {_SOCKET_PATH_MAX}: choose a shorter folder"
            )


def _check_addresses(settings: Settings) -> None:
    """The metrics host is a bare host, and each base URL has its scheme and host."""
    host = settings.supervisor.metrics_host
    if not _bare_host(host):
        raise ValueError(
            f"supervisor.metrics_host ({host!r}) must be a bare host name or IP address, "
            "without a scheme or port (the port is supervisor.metrics_port)"
        )
    for name, url, optional in (
        ("kis.sim_url", settings.kis.sim_url, False),  # its WebSocket: http -> ws
        ("kis.master_url", settings.kis.master_url, True),
        ("krx.url", settings.krx.url, False),
        ("enrich.fallback_url", settings.enrich.fallback_url, True),
    ):
        if optional and not url:
            continue
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # an unclosed [ of an IPv6 host
            ok = False
        if not ok:
            raise ValueError(
                f"{name} ({url!r}) must be an http:// or https:// URL with a host, "
                "such as http://127.0.0.1:8800"
            )


def _bare_host(host: str) -> bool:
    """True for a host name or an IP address (IPv6 unbracketed), without scheme or port."""
    if "://" in host or "/" in host or "@" in host:
        return False
    if ":" not in host:
        return True
    try:  # a colon only in an IPv6 address
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def _check_dependencies(programs: dict[str, ProgramSettings]) -> None:
    """Every dependency exists and is enabled, and they form no cycle."""
    for name, program in programs.items():
        for dep in program.depends_on:
            if dep not in programs or not programs[dep].enabled:
                raise ValueError(f"programs.{name}.depends_on: no enabled program {dep!r}")
            if programs[dep].kind == "job":
                raise ValueError(f"programs.{name}.depends_on: {dep!r} is a job")
        for job in program.after:
            if job not in programs or programs[job].kind != "job" or job == name:
                raise ValueError(f"programs.{name}.after: {job!r} is not another job")
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"programs depend on each other in a cycle: {' -> '.join(path)}")
        if name not in done:
            for dep in programs[name].depends_on:
                visit(dep, (*path, name))
            done.add(name)

    for name in programs:
        visit(name, ())


def _check_shares(settings: Settings) -> None:
    """Each share a job or program will ask for is in ``kis.process_share``."""
    shares = settings.kis.process_share
    total = sum(shares.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"kis.process_share adds up to {total:.2f} > 1 of each account")
    share_of = {
        **_SHARE_OF_COMMAND,
        "universe": settings.universe.share_of,
        "etf": settings.etf.share_of,
    }
    wanted = {}
    for name, program in settings.programs.items():
        kind = share_of.get(_subcommand(program))
        if program.enabled and kind is not None:
            wanted[f"programs.{name}"] = kind
    for who, kind in wanted.items():
        if kind not in shares:
            raise ValueError(
                f"{who} uses the {kind!r} share of each account's REST budget, which "
                f"kis.process_share does not list (it has {', '.join(sorted(shares)) or 'none'})"
            )


def _check_accounts(settings: Settings) -> None:
    """Two accounts never read the same credentials (one app key is one session at KIS)."""
    aliases = [a.alias for a in settings.kis.accounts]
    if len(set(aliases)) != len(aliases):
        raise ValueError(f"kis.accounts repeat an alias: {aliases}")
    sources: dict[str, str] = {}
    for account in settings.kis.accounts:
        # Without a file the keys come from variables named after the alias, where - is _.
        source = account.credentials_file or f"${env_prefix(account.alias)}*"
        other = sources.setdefault(source, account.alias)
        if other != account.alias:
            raise ValueError(
                f"kis.accounts {other!r} and {account.alias!r} read the same credentials "
                f"({source}): one app key is one account"
            )


def _check_phases(phases: PhaseSettings, calendar: CalendarSettings) -> None:
    """The phases start in their order; a late day is a session and ends before midnight."""
    times = [(name, _minutes(getattr(phases, name))) for name in _PHASE_ORDER]
    for (before, starts), (after, then) in itertools.pairwise(times):
        if starts >= then:
            raise ValueError(
                f"phases.{after} ({getattr(phases, after)}) must be later than "
                f"phases.{before} ({getattr(phases, before)})"
            )
    both = set(calendar.extra_closed) & set(calendar.extra_open)
    if both:
        raise ValueError(f"calendar: {min(both)} is in both extra_closed and extra_open")
    seen: set[object] = set()
    sessions = TradingCalendar(calendar.extra_closed, calendar.extra_open)
    for late in calendar.late_days:
        if late.day in seen:
            raise ValueError(f"calendar.late_days: {late.day} is listed twice")
        seen.add(late.day)
        if not _is_session(sessions, late.day):
            raise ValueError(
                f"calendar.late_days: {late.day} is not a session (a weekend, a holiday or "
                "in calendar.extra_closed), so its shift would never apply"
            )
    timeline_from(phases, calendar)  # each late day's phases in order, within its day


def _check_programs(settings: Settings) -> None:
    """Heartbeats, grace periods and the token job agree with the programs' settings."""
    interval = settings.supervisor.heartbeat_interval_s
    role = settings.supervisor.role
    for name, program in settings.programs.items():
        if program.enabled:  # run on this host (`roles.runs_here`): its command is here
            _check_command(name, program, here=role in ("all", program.host_role))
        if program.heartbeat_timeout_s < 2 * interval:
            raise ValueError(
                f"programs.{name}.heartbeat_timeout_s ({program.heartbeat_timeout_s:g}) must "
                f"be at least two of supervisor.heartbeat_interval_s ({interval:g})"
            )
        blocking = _READ_BLOCKS * settings.database.reader_pool_timeout_s + interval
        if _subcommand(program) in _READS_ON_ITS_LOOP and program.heartbeat_timeout_s < blocking:
            raise ValueError(
                f"programs.{name}.heartbeat_timeout_s ({program.heartbeat_timeout_s:g}) must be "
                f"at least {_READ_BLOCKS:g} x database.reader_pool_timeout_s plus "
                f"supervisor.heartbeat_interval_s ({blocking:g}): a read the database does not "
                "answer holds its heartbeats that long, and it would be killed for it"
            )
        if program.backoff_initial_s > program.backoff_max_s:
            raise ValueError(f"programs.{name}: backoff_initial_s is above backoff_max_s")
        # What a program may still be doing when asked to stop: it needs that long to end.
        needs = {
            "writer": ("writer.drain_s", settings.writer.drain_s),
            "notifier": ("notifier.send_timeout_s", settings.notifier.send_timeout_s),
        }.get(_subcommand(program))
        if needs is not None and program.stop_grace_s < needs[1]:
            raise ValueError(
                f"programs.{name}.stop_grace_s ({program.stop_grace_s:g}) must be at least "
                f"{needs[0]} ({needs[1]:g}), or it is killed before it is done"
            )
    enabled = [_subcommand(p) for p in settings.programs.values() if p.enabled]
    if (
        settings.kis.token_issuer == "job"  # noqa: S105 - a mode, not a secret
        and _KIS_COMMANDS.intersection(enabled)
        and "token" not in enabled
    ):
        raise ValueError(
            'kis.token_issuer = "job", but no enabled program runs `observer token`: '
            "the programs that call KIS would wait for tokens nobody issues"
        )


def _check_command(name: str, program: ProgramSettings, *, here: bool) -> None:
    """The program's command exists: found when the file loads, not when it is first due.

    A leading ``observer`` names one of its commands, ``python`` is this interpreter (as
    `observer.supervisor.spawn` runs them); any other command of a program this host runs
    (``here``) is looked up as the supervisor will start it: on the program's PATH, or as a
    path from the working folder. Another host's command may exist only there.
    """
    command, key = program.command, f"programs.{name}.command"
    word = command[0]
    if word == "observer":
        sub = command[1] if len(command) > 1 else ""
        known = _observer_commands(sub)
        if sub not in known:
            close = difflib.get_close_matches(sub, sorted(known), n=1)
            hint = f"did you mean `observer {close[0]}`?" if close else ", ".join(sorted(known))
            what = f"`observer {sub}` is no" if sub else "`observer` alone names no"
            raise ValueError(f"{key}: {what} observer command ({hint})")
    elif word == "python" or not here or os.environ.get("OBSERVER_PROGRAM"):
        # A program the supervisor started: the supervisor found the commands where it starts
        # them, and this process's PATH may be another (its program's `env`).
        return
    elif "/" in word:
        path = Path(word)  # a relative one from the working folder, where programs start
        if not path.exists():
            raise ValueError(f"{key}: no such file {word}")
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ValueError(f"{key}: {word} is not an executable file")
    elif shutil.which(word, path=program.env.get("PATH")) is None:
        raise ValueError(f"{key}: no command {word!r} on the PATH")


def _observer_commands(wanted: str = "") -> frozenset[str]:
    """The commands ``observer`` has: its own and, unless ``wanted`` is one, the workers'."""
    if wanted in _OWN_COMMANDS:
        return _OWN_COMMANDS  # the writer's, say: reading the entry points takes milliseconds
    return _OWN_COMMANDS | _entry_point_commands()


@functools.cache
def _entry_point_commands() -> frozenset[str]:
    """The commands of workers and of the harness, and their earlier names (`observer.cli.main`)."""
    groups = ("observer.commands", "observer.command_aliases")
    return frozenset(entry.name for group in groups for entry in entry_points(group=group))


def _check_orders(settings: Settings) -> None:
    """Pairs of bounds that must come in order."""
    gaps, track_b, notifier = settings.gap_recovery, settings.track_b, settings.notifier
    for name, low, high in (
        ("gap_recovery.backoff_initial_s", gaps.backoff_initial_s, gaps.backoff_max_s),
        ("track_b.refusal_retry_s", track_b.refusal_retry_s, track_b.refusal_retry_max_s),
        ("notifier.retry_initial_s", notifier.retry_initial_s, notifier.retry_max_s),
    ):
        if low > high:
            raise ValueError(f"{name} ({low:g}) is above its maximum ({high:g})")
    log_at, warn_at, critical_at = track_b.overflow_alert_pct
    if not log_at <= warn_at <= critical_at:
        raise ValueError("track_b.overflow_alert_pct is [log, warning, critical], in that order")


def _check_rules(settings: Settings) -> None:
    """Each rule has its own code and names a metric the supervisor has.

    What the configuration cannot know, a program's heartbeat counters, the supervisor
    checks as they arrive (`observer.supervisor.rule_counters`).
    """
    codes: set[str] = set()
    shipped = default_rules()  # they name the shipped programs, which a file may leave out
    for rule in (*settings.supervisor.rules, *enrichment_rules(settings.enrich)):
        if rule.code in codes:
            raise ValueError(f"supervisor.rules: two rules have the code {rule.code!r}")
        codes.add(rule.code)
        wrong = _unknown_metric(rule.metric, settings)
        if wrong and rule not in shipped:
            raise ValueError(f"supervisor.rules {rule.code!r}: {rule.metric!r} {wrong}")


def _unknown_metric(metric: str, settings: Settings) -> str:
    """Why nothing reports ``metric`` (see `observer.alerts.settings.ThresholdRule`), or ''."""
    prefix, _, rest = metric.partition(".")
    if prefix == "age_h":
        if metric not in _DATA_AGES:
            return f"is no age of data the supervisor reads ({', '.join(_DATA_AGES)})"
    elif prefix == "enrichment":
        figure, _, region = rest.partition(".")
        regions = sorted(r.lower() for r in settings.enrich.regions)
        figures = (*_REGION_FIGURES, *ENRICHMENT_RUN_FIGURES)
        if figure not in figures:
            return (
                f"names no enrichment figure (enrichment.<figure>.<region>: {', '.join(figures)})"
            )
        if region not in regions:
            return f"names no region of enrich.regions ({', '.join(regions) or 'none'})"
    elif prefix not in settings.programs:
        return f"names no program (nor {', '.join(_DATA_AGES)} or enrichment.<figure>.<region>)"
    return ""


def _is_session(sessions: TradingCalendar, day: date) -> bool:
    """Whether KRX trades on ``day``; beyond XKRX's range, whether it is a weekday."""
    try:
        return sessions.is_session(day)
    except ConfigError:  # extra_closed and extra_open were asked first
        return day.weekday() < 5


def _subcommand(program: ProgramSettings) -> str:
    """The first word after ``observer`` in the program's command ('' for another command)."""
    command = program.command
    return command[1] if len(command) > 1 and command[0] == "observer" else ""


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)
