"""``observer ctl``: the control socket's command line (a table, or ``--json``).

``--endpoint tcp://host:port`` talks to a supervisor's ``control_endpoint`` over CURVE
(``--key``, ``--server-key``); ``status`` takes several and shows one table. Exit codes: 0
healthy / done, 1 unhealthy / refused (or a silent host among several), 2 no supervisor
answered (no socket, no whole reply, no tcp connection within 5 s), always one line on
stderr, never a traceback.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from observer.cluster.settings import TCP_ENDPOINT
from observer.config.load import load_settings
from observer.errors import ConfigError
from observer.supervisor.control import NoReply, Reply, request

if TYPE_CHECKING:
    from rich.console import Console

    from bus.curve import ClientCurve

__all__ = ["ctl_app", "default_socket"]

ctl_app = typer.Typer(no_args_is_help=True, help="Talk to a running supervisor.")
JsonOpt = Annotated[bool, typer.Option("--json", help="print the reply as JSON")]
TIMEOUT_S = 60.0  # a start waits for READY (ready_timeout_s is 30 s by default)


class _Target:
    socket: Path | None = None
    data_dir: Path | None = None
    config: Path | None = None
    as_json = False
    remotes: list[tuple[str, ClientCurve]] = []  # (endpoint, keys) of --endpoint


_target = _Target()


def default_socket(data_dir: Path | None, config: Path | None) -> Path:
    """``<data-dir>/run/control.sock``, or where the configuration puts it."""
    if data_dir is not None:
        return data_dir / "run" / "control.sock"
    return load_settings(config).control_socket


@ctl_app.callback()
def _options(
    socket: Annotated[Path | None, typer.Option("--socket", help="control socket")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="use <DIR>/run/control.sock")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="a supervisor's tcp://host:port (repeat for status)"),
    ] = None,
    key: Annotated[
        str, typer.Option("--key", help="your operator key pair: NAME in keys_dir, or a path")
    ] = "operator",
    server_key: Annotated[
        list[str] | None,
        typer.Option("--server-key", help="its host's public key: NAME or path, per --endpoint"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    try:
        _target.remotes = _remotes(endpoint, key, server_key or [], config) if endpoint else []
        if not endpoint:
            _target.socket = socket or default_socket(data_dir, config)
        _target.data_dir, _target.config = data_dir, config
    except ConfigError as exc:
        _exit(f"observer ctl: {exc}", 2)
    _target.as_json = as_json


def _remotes(
    endpoints: list[str], key: str, server_keys: list[str], config: Path | None
) -> list[tuple[str, ClientCurve]]:
    """Each endpoint with the CURVE keys to reach it; plaintext tcp is refused."""
    # deferred: ZeroMQ (about 0.03 s) for a remote host only, never a local `ctl` (test_startup)
    from observer.cluster.transport import operator_curve

    for each in endpoints:
        if not TCP_ENDPOINT.match(each):
            raise ConfigError(f"--endpoint {each!r}: expected tcp://host:port")
    if len(server_keys) not in (1, len(endpoints)):
        raise ConfigError("give one --server-key for each --endpoint (or one for all)")
    names = [k for k in (key, *server_keys) if "/" not in k]
    keys_dir = Path(load_settings(config).bus.curve.keys_dir) if names else Path()
    servers = server_keys * len(endpoints) if len(server_keys) == 1 else server_keys
    return [(e, operator_curve(keys_dir, key, s)) for e, s in zip(endpoints, servers, strict=True)]


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _ask(endpoint: str, curve: ClientCurve, command: str, args: list[str]) -> Reply:
    answer = _answer_of(endpoint, curve, command, args)
    if isinstance(answer, str):
        _exit(f"observer ctl: {answer}", 2)
    return answer


def _answer_of(endpoint: str, curve: ClientCurve, command: str, args: list[str]) -> Reply | str:
    """The supervisor's reply, or why there is none (one line)."""
    # deferred: ZeroMQ (about 0.03 s) for a remote host only, never a local `ctl` (test_startup)
    from observer.supervisor.control_tcp import ControlRefused, request_tcp

    try:
        return request_tcp(endpoint, curve, command, args, TIMEOUT_S)
    except (ControlRefused, TimeoutError) as exc:
        return str(exc)
    except NoReply as exc:  # an answer that is no reply: as on the Unix socket
        return f"no supervisor answered at {endpoint}: {exc}"


def _send(command: str, args: list[str], as_json: bool) -> Reply:
    if _target.remotes:
        if len(_target.remotes) > 1:
            _exit(f"observer ctl: {command} takes one --endpoint", 2)
        reply = _ask(*_target.remotes[0], command, args)
    else:
        reply = _request_local(command, args)
    if as_json or _target.as_json:
        typer.echo(
            json.dumps({"ok": reply.ok, "reason": reply.reason, "code": reply.code, **reply.data})
        )
    return reply


def _request_local(command: str, args: list[str]) -> Reply:
    assert _target.socket is not None
    try:
        return request(_target.socket, command, args, TIMEOUT_S)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        _exit(f"observer ctl: no supervisor at {_target.socket} ({exc.strerror})", 2)
    except PermissionError as exc:
        _exit(f"observer ctl: {_target.socket}: {exc.strerror}", 2)
    except TimeoutError:
        _exit(f"observer ctl: {command} got no reply within {TIMEOUT_S:g}s", 2)
    except OSError as exc:  # not a directory, a path too long, no whole reply (NoReply) ...
        reason = exc.strerror or str(exc)
        _exit(f"observer ctl: no supervisor answered at {_target.socket}: {reason}", 2)


def _finish(reply: Reply, as_json: bool) -> NoReturn:
    if not (as_json or _target.as_json):
        line = reply.reason + (f" ({reply.code})" if not reply.ok else "")
        if "ready_s" in reply.data:
            line += f", ready in {reply.data['ready_s']:.3f}s"
        typer.echo(line, err=not reply.ok)
        if not reply.ok and reply.data.get("output"):  # what a refused job run printed
            typer.echo(textwrap.indent(str(reply.data["output"]), "  "), err=True)
    raise typer.Exit(0 if reply.ok else 1)


@ctl_app.command()
def status(as_json: JsonOpt = False) -> None:
    """Phase, programs (state, pid, restarts, CPU, memory) and accounts (exit 1 if unhealthy).

    Per program: the times it was replaced today after it hung or crashed (a stop or restart
    by a command, or by its phase, is none), by cause (``replaced`` in ``--json``).

    Per account: the stream's state and for how long, registrations held/wanted, the last
    tick's age, reconnects of the hour against the budget, the access token's age and
    expiry, REST errors in the last five minutes, and what makes it unhealthy. Unhealthy: a
    program parked fatal, a daemon or session worker that should run and does not, a job
    whose last run failed, a program that says it fails its work (the writer whose database
    refuses commits), an account that does not stream or is not ready; each is named. A
    daemon or session worker held by a command while it would run is named as a warning.
    """
    if len(_target.remotes) > 1:
        _status_of_hosts(as_json or _target.as_json)
    reply = _send("status", [], as_json)
    if not (as_json or _target.as_json):
        host = _target.remotes[0][0].removeprefix("tcp://") if _target.remotes else None
        _print_status([(host, reply)])
        if reply.data.get("elsewhere"):
            others = ", ".join(f"{n} ({r})" for n, r in sorted(reply.data["elsewhere"].items()))
            typer.echo(f"run by other hosts' roles: {others}")
    raise typer.Exit(0 if reply.ok and reply.data.get("healthy") else 1)


def _status_of_hosts(as_json: bool) -> NoReturn:
    """`status` of every --endpoint: one table with a host column; exit 1 if any is unhealthy.

    The hosts are asked at once, so a host cut off costs its connect time once, and the
    others' status is still shown, with the silent host named as unhealthy (exit 2 only
    when no host answers). A program that every host leaves to another role runs nowhere:
    named, and unhealthy (not judged while a host that might run it is silent).
    """
    with ThreadPoolExecutor(len(_target.remotes)) as pool:
        answers = list(pool.map(lambda r: _answer_of(r[0], r[1], "status", []), _target.remotes))
    silent = [why for why in answers if isinstance(why, str)]
    if len(silent) == len(answers):
        _exit("\n".join(f"observer ctl: {why}" for why in dict.fromkeys(silent)), 2)
    replies = [
        (endpoint.removeprefix("tcp://"), _silent_host(a) if isinstance(a, str) else a)
        for (endpoint, _), a in zip(_target.remotes, answers, strict=True)
    ]
    run = {p["name"] for _, r in replies for p in r.data.get("programs", [])}
    left = {name for _, r in replies for name in r.data.get("elsewhere", {})}
    nowhere = [] if silent else sorted(left - run)  # left to another role, run by no host
    healthy = not nowhere and all(r.ok and r.data.get("healthy") for _, r in replies)
    if as_json:
        hosts = [{"host": h, "ok": r.ok, "reason": r.reason, **r.data} for h, r in replies]
        typer.echo(json.dumps({"healthy": healthy, "nowhere": nowhere, "hosts": hosts}))
    else:
        _print_status(replies)
        if nowhere:
            typer.echo(f"run by none of these hosts: {', '.join(nowhere)}")
    raise typer.Exit(0 if healthy else 1)


def _silent_host(why: str) -> Reply:
    """A host that did not answer, in the table as an unhealthy one that says why."""
    return Reply(False, why, "no_answer", {"healthy": False, "problems": [why]})


def _print_status(replies: Sequence[tuple[str | None, Reply]]) -> None:
    """The programs of each reply in one table (a host column when they come over tcp).

    Too narrow for a table whole (a pipe is 80 columns), its rows print as lines instead.
    """
    # deferred: rich (about 0.09 s) for a table on a terminal: every `observer` start would pay
    from rich.console import Console

    # No markup: the details and problems carry programs' own words (a job's last line of
    # output), and a "[/..." among them made rich raise instead of printing the status.
    console = Console(markup=False)
    title = "; ".join(
        f"{_host_label(host, r)}phase {r.data['phase']} at {r.data.get('time')}: {r.reason}"
        if "phase" in r.data
        else f"{_host_label(host, r)}no answer"
        for host, r in replies
    )
    rows = [
        (None if host is None else _host_label(host, r).strip(), p)
        for host, r in replies
        for p in r.data.get("programs", [])
    ]
    keys = ["program"] if replies[0][0] is None else ["host", "program"]
    _print_grid(console, title, keys, _PROGRAM_FIELDS, [_program_row(h, p) for h, p in rows])
    for _host, r in replies:
        if r.data.get("accounts"):
            rows_of = [_account_row(a) for a in r.data["accounts"]]
            _print_grid(console, "accounts", ["account"], _ACCOUNT_FIELDS, rows_of)
    for host, r in replies:  # why a host is unhealthy, in words: a line each, for grep
        for problem in r.data.get("problems", []):
            line = f"{_host_label(host, r)}unhealthy: {problem}"
            console.print(line, highlight=False, soft_wrap=True)
        for warning in r.data.get("warnings", []):  # held by a command: healthy, but said
            line = f"{_host_label(host, r)}warning: {warning}"
            console.print(line, highlight=False, soft_wrap=True)
    for host, p in rows:  # what each worker reports in its heartbeats
        if p.get("counters"):
            figures = ", ".join(f"{k} {v:g}" for k, v in sorted(p["counters"].items()))
            console.print(f"{host + ' ' if host else ''}{p['name']}: {figures}", highlight=False)


def _host_label(address: str | None, reply: Reply) -> str:
    """``address (name) `` of a host: its endpoint and its ``[supervisor] host`` name."""
    name = reply.data.get("host_name") or ""
    label = " ".join(part for part in (address, f"({name})" if name else "") if part)
    return f"{label} " if label else ""


_PROGRAM_FIELDS = [
    "kind",
    "state",
    "pid",
    "restarts",
    "replaced today",
    "cpu %",
    "rss MiB",
    "up s",
    "detail",
]
_ACCOUNT_FIELDS = [
    "stream",
    "for",
    "regs",
    "last tick",
    "lag",
    "reconnects/h",
    "token age",
    "expires in",
    "WS key age",
    "REST err 5m",
    "ready",
    "problems",
]
_FOLDED_MIN = 10  # the last column (detail, problems) folds, but no narrower than this


def _program_row(host: str | None, p: dict[str, Any]) -> list[str]:
    return [
        *([host] if host is not None else []),
        p["name"],
        p["kind"],
        p["state"],
        str(p["pid"] or "-"),
        str(p["restarts"]),
        _replaced(p.get("replaced")),  # a supervisor of an earlier version has none
        f"{p['cpu_percent']:.1f}",
        f"{p['rss_bytes'] / 2**20:.1f}",
        f"{p['uptime_s']:.0f}",
        p["detail"],
    ]


def _replaced(counts: dict[str, int] | None) -> str:
    """Today's replacements by cause, ``1 hung, 2 crashed``; ``-`` for none."""
    return ", ".join(f"{n} {cause}" for cause, n in (counts or {}).items() if n) or "-"


def _account_row(a: dict[str, Any]) -> list[str]:
    """Each account's stream, registrations, last tick, token and REST errors."""
    return [
        a["account"],
        a["stream"],
        _duration(a["state_age_s"]),
        f"{a['registered']}/{a['wanted']}",
        _duration(a["last_tick_age_s"]),
        _duration(a.get("delivery_lag_s")),
        f"{a['reconnects_1h']}/{a['reconnect_budget']}",
        _duration(a["token_age_s"]),
        _duration(a["token_expires_in_s"]),
        _duration(a["approval_key_age_s"]),
        str(a["rest_errors_5m"]),
        _ready(a.get("readiness")),
        "; ".join(a["problems"]) or "-",
    ]


def _print_grid(
    console: Console, title: str, keys: list[str], fields: list[str], rows: list[list[str]]
) -> None:
    """A table if every column fits whole, else one line a row: ``name: field value, ...``.

    The key columns (host, program, account) and the short figures never shrink: squeezed
    into 80 columns (a pipe, a small terminal) rich cut the account to "ac…" and gave the
    lag, the registrations and the detail no width at all. The last field folds.
    """
    # deferred: rich (about 0.09 s) for a table on a terminal, not for --json
    from rich.cells import cell_len  # a Korean word in a detail takes two cells a letter
    from rich.table import Table

    headers = [*keys, *fields]
    widths = [max(cell_len(h), *(cell_len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    widths[-1] = min(widths[-1], max(_FOLDED_MIN, cell_len(headers[-1])))
    if sum(widths) + 3 * len(widths) + 1 > console.width:  # cell padding and rules
        console.print(title, soft_wrap=True, highlight=False)
        for row in rows:  # each on one line (soft_wrap: not cut at the width), for grep
            named = " ".join(row[: len(keys)])
            values = zip(fields, row[len(keys) :], strict=True)
            text = f"{named}: " + ", ".join(f"{f} {v}" for f, v in values if v)
            console.print(text, soft_wrap=True, highlight=False)
        return
    table = Table(title=title, title_justify="left")
    for header, width in zip(headers[:-1], widths, strict=False):
        table.add_column(header, no_wrap=True, min_width=width)
    table.add_column(headers[-1], overflow="fold", min_width=widths[-1])
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _ready(check: dict[str, Any] | None) -> str:
    """The last readiness check: ``yes 2h ago`` or ``NO (rest, ws) 5m ago``; ``-`` before one."""
    if check is None:
        return "-"
    verdict = "yes" if check["ok"] else f"NO ({', '.join(check['failed'])})"
    return f"{verdict} {_duration(check['age_s'])} ago"


def _duration(seconds: float | None) -> str:
    """``-`` for unknown, else the largest fitting unit: ``42s``, ``7m``, ``23.5h``."""
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.0f}s"
    if abs(seconds) < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@ctl_app.command()
def start(name: str, as_json: JsonOpt = False) -> None:
    """Start a stopped or FATAL program and wait until it is READY.

    A held session worker out of its phase is held no more: its phase starts it.
    """
    _finish(_send("start", [name], as_json), as_json)


@ctl_app.command()
def stop(name: str, as_json: JsonOpt = False) -> None:
    """Stop a program; it stays stopped until started again, across supervisor restarts.

    A job stays held too: its schedule skips it, and a run of it waiting for the jobs it
    follows is dropped, until `observer ctl run JOB`. A FATAL program is parked no more.
    """
    _finish(_send("stop", [name], as_json), as_json)


@ctl_app.command()
def restart(name: str, as_json: JsonOpt = False) -> None:
    """Stop a program and start it again; prints the time to READY."""
    _finish(_send("restart", [name], as_json), as_json)


@ctl_app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(ctx: typer.Context, job: str, as_json: JsonOpt = False) -> None:
    """Run a job now; extra arguments are passed to it. Ends a stop's hold.

    A job that rejects them (exit 2 before READY) is refused with what it printed; one
    whose `after` jobs run is refused as busy (run it once they have ended).
    """
    _finish(_send("run", [job, *ctx.args], as_json), as_json)


@ctl_app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def slots(ctx: typer.Context) -> None:
    """Track B's slots: pins and what is held (an alias of observer track-b slots).

    With ``--endpoint`` the supervisor there runs ``observer track-b slots`` on its host
    (the host that runs Track B: another answers that it does not) and this prints its output.
    """
    if _target.remotes:
        _remote_slots(ctx.args)
    # Track B's own command (observer never imports workers/): found, as `observer` finds
    # every worker's command, through the entry points, and run with this command's options.
    found = entry_points(group="observer.commands", name="track-b")
    if not found:
        _exit("observer ctl: no track-b command is installed", 2)
    track_b = typer.main.get_command(next(iter(found)).load())
    options = ["--json"] if _target.as_json else []
    if _target.data_dir is not None:
        options += ["--data-dir", str(_target.data_dir)]
    if _target.config is not None:
        options += ["--config", str(_target.config)]
    args = ["slots", *options, *ctx.args] if ctx.args else ["slots"]  # no command: the help
    track_b.main(args, prog_name="observer ctl")


def _remote_slots(args: list[str]) -> NoReturn:
    """``slots`` on the supervisor of ``--endpoint``: its output here, its exit code ours."""
    if len(_target.remotes) > 1:
        _exit("observer ctl: slots takes one --endpoint (the host that runs Track B)", 2)
    if not args or "--help" in args:
        _exit("observer ctl --endpoint ... slots [--json] list | pin CODE... | unpin CODE...", 2)
    wanted = ["--json", *args] if _target.as_json and "--json" not in args else args
    reply = _ask(*_target.remotes[0], "slots", wanted)
    if "exit" not in reply.data:  # refused by the supervisor before running anything
        _exit(f"observer ctl: {reply.reason} ({reply.code})", 1)
    typer.echo(reply.data["stdout"], nl=False)
    typer.echo(reply.data["stderr"], nl=False, err=True)
    raise typer.Exit(int(reply.data["exit"]))
