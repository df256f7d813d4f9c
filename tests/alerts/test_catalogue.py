"""The alert catalogue holds every code the product raises, and each of its codes is raised.

The product's source is read, not run: each call that raises or resolves an alert (`Alert`,
`AlertResolved`, an `AlertBook`'s `raise_`/`alert`/`resolve`/`resolution`, the workers' own
`alert`/`_alert` helpers) names its code as a literal or a module constant, which must be in
the catalogue. A call whose code is a parameter or a loop variable is listed below with where
its codes come from; those tables are read from the product and must be in the catalogue
too. A new call of either kind that the catalogue or this list does not know fails here.
"""

from __future__ import annotations

import ast
import json
import typing
from collections.abc import Iterator
from pathlib import Path

from observer.alerts.catalogue import CATALOGUE, markdown
from observer.alerts.settings import default_rules, enrichment_rules
from observer.cluster.rosters import OVERLAP_CODES
from observer.config.workers import EnrichSettings
from observer.process.disk import DISK_CODES
from observer.supervisor.sampler import LIMIT_CODES
from workers.enrich.alerts import ALERT_CODES
from workers.etf import backfill, daily, health, holdings, jobs
from workers.master_file import settle
from workers.track_b.barred import BarKind
from workers.track_b.collect import ACCOUNT_CODES
from workers.track_b.session_alerts import SESSION_CODES

ROOT = Path(__file__).resolve().parents[2]
_SEVERITIES = {"info", "warning", "error", "critical"}
_CALLS = {"Alert", "AlertResolved", "raise_", "resolve", "resolution", "alert", "_alert"}
_OWN_CALLS = {"observer/writer/retention.py": {"_finish", "_resolve"}}  # helpers of one module
# Arguments before the code in some helpers: a severity, the book, the producer, a job.
_BEFORE_CODE = ("severity", "alerts", "book", "producer", "job")

# Calls whose code is a variable, and where it comes from (path, the code's expression).
FORWARDED: dict[tuple[str, str], str] = {
    ("observer/alerts/book.py", "code"): "the book's callers, each scanned",
    ("observer/alerts/book.py", "key[0]"): "the book's callers, each scanned",
    ("observer/process/disk.py", "code"): "DISK_CODES",
    ("observer/supervisor/rosters.py", "code"): "OVERLAP_CODES",
    ("observer/supervisor/rules.py", "rule.code"): "the shipped rules (an operator may add more)",
    ("observer/supervisor/sampler.py", "code"): "LIMIT_CODES",
    ("observer/writer/retention.py", "code"): "its constants and _finish's callers, scanned",
    ("workers/enrich/job.py", "code"): "ALERT_CODES",
    ("workers/etf/daily.py", "c.code"): "health.CODES",
    ("workers/etf/daily.py", "flag.code"): "daily.FLAG_CODES",
    ("workers/etf/jobs.py", "code"): "the codes end_alerts is given: the ETF tables",
    ("workers/etf/jobs.py", "c.code"): "health.CODES",
    ("workers/etf/listing.py", "code"): "jobs._LIST_CODES",
    ("workers/master_file/context.py", "code"): "Services.alert's callers, each scanned",
    ("workers/master_file/settle.py", "code"): "settle's _REMOTE and _CONTENTS",
    ("workers/master_file/update.py", "code"): "the decision's alert or SUSPECT (settle's tables)",
    ("workers/master_file/update.py", "alert"): "_refused's callers: STALE (settle's tables)",
    ("workers/track_a/worker.py", "code"): "_alert's callers, each scanned",
    ("workers/track_b/collect.py", "code"): "ACCOUNT_CODES",
    ("workers/track_b/guard.py", "f'track_b_{bar.kind}'"): "the bars' kinds halted, limit_locked",
    ("workers/track_b/outages.py", "code"): "ACCOUNT_CODES",
    ("workers/track_b/rejections.py", "code"): "ACCOUNT_CODES",
    ("workers/track_b/session_alerts.py", "code"): "SESSION_CODES",
    ("workers/track_b/watchers.py", "code"): "Watchers._alert's callers, each scanned",
    ("workers/token/cli.py", "code"): "TOKEN_UNAVAILABLE, its one caller's",
    ("workers/universe/job.py", "code"): "_alert's callers, each scanned",
    # Not alerts: a function of the same name
    ("workers/archive/cli.py", "day"): "not an alert: a day's folder resolved",
    ("workers/etf/backfill.py", "settings"): "not a code: end_alerts(settings, ...)",
    ("workers/etf/holdings.py", "settings"): "not a code: end_alerts(settings, ...)",
    ("workers/etf/jobs.py", "settings"): "not a code: end_alerts(settings, ...)",
    ("workers/master_file/cli.py", "exchange or []"): "not an alert: the markets resolved",
    ("workers/master_file/cli.py", "[exchange]"): "not an alert: the markets resolved",
    ("workers/track_b/refused.py", "alias"): "not a code: resolve(book, code, alias, ...)",
    ("workers/track_b/rejections.py", "alias"): "not a code: an account's subjects resolved",
}


def _families() -> set[str]:
    """The codes the variable calls above carry, from the product's own tables."""
    regions = typing.get_args(typing.get_args(typing.get_type_hints(EnrichSettings)["regions"])[0])
    rules = (*default_rules(), *enrichment_rules(EnrichSettings(regions=regions)))
    # guard.py bars a symbol halted or limit-locked (a refusal has its own code)
    barred = ("halted", "limit_locked")
    kinds = {f"track_b_{kind}" for kind in barred if kind in typing.get_args(BarKind)}
    return {
        *DISK_CODES,
        *OVERLAP_CODES,
        *(rule.code for rule in rules),
        *LIMIT_CODES,
        *ALERT_CODES,
        *health.CODES,
        *daily.FLAG_CODES,
        *daily.RUN_CODES,
        *holdings.CODES,
        *backfill.CODES,
        *jobs._LIST_CODES,
        *settle._REMOTE,
        *settle._CONTENTS,
        *ACCOUNT_CODES,
        *SESSION_CODES,
        *kinds,
    }


def _modules() -> dict[str, tuple[str, ast.Module]]:
    found = {}
    for top in ("observer", "workers", "bus"):
        for path in sorted((ROOT / top).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = (path.relative_to(ROOT).as_posix(), ast.parse(path.read_text()))
    return found


MODULES = _modules()


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's top-level text constants (``A = "a"``, ``A, B = "a", "b"``)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            names, values = node.targets[0], node.value
            if isinstance(names, ast.Tuple) and isinstance(values, ast.Tuple):
                pairs = list(zip(names.elts, values.elts, strict=False))
            else:
                pairs = [(names, values)]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            continue
        for name, value in pairs:
            constant = isinstance(value, ast.Constant) and isinstance(value.value, str)
            if isinstance(name, ast.Name) and constant:
                found[name.id] = value.value  # type: ignore[attr-defined]
    return found


CONSTANTS = {name: _constants(tree) for name, (_, tree) in MODULES.items()}


def _resolved(module: str, name: str) -> str | None:
    """``name``'s text in ``module``: its own constant, or one it imports."""
    if name in CONSTANTS[module]:
        return CONSTANTS[module][name]
    for node in MODULES[module][1].body:
        if isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _resolved(node.module, alias.name)
    return None


def _code_of(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "code":
            return keyword.value
    if isinstance(call.func, ast.Name) and call.func.id in ("Alert", "AlertResolved"):
        return None
    args = list(call.args)
    while args and (
        (isinstance(args[0], ast.Constant) and args[0].value in _SEVERITIES)
        or any(word in ast.unparse(args[0]) for word in _BEFORE_CODE)
    ):
        args.pop(0)
    return args[0] if args else None


def _sites() -> Iterator[tuple[str, str, ast.expr]]:
    """Each alert call of the product: its module, its path, its code's expression."""
    for module, (path, tree) in MODULES.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            calls = _CALLS | _OWN_CALLS.get(path, set())
            if name in calls and (code := _code_of(node)) is not None:
                yield module, path, code


def _scanned() -> tuple[dict[str, list[str]], set[tuple[str, str]]]:
    """The codes the calls name (code -> paths), and the calls whose code is a variable."""
    named: dict[str, list[str]] = {}
    variable: set[tuple[str, str]] = set()
    for module, path, code in _sites():
        text = None
        if isinstance(code, ast.Constant) and isinstance(code.value, str):
            text = code.value
        elif isinstance(code, ast.Name):
            text = _resolved(module, code.id)
        if text is None:
            variable.add((path, ast.unparse(code)))
        else:
            named.setdefault(text, []).append(path)
    return named, variable


def test_every_code_raised_is_in_the_catalogue_and_every_entry_is_raised() -> None:
    named, variable = _scanned()
    assert not set(named) - set(CATALOGUE), {c: named[c] for c in set(named) - set(CATALOGUE)}
    assert variable <= set(FORWARDED), f"a call with a variable code: {variable - set(FORWARDED)}"
    assert not set(FORWARDED) - variable, f"listed, no longer found: {set(FORWARDED) - variable}"
    families = _families()
    assert families <= set(CATALOGUE), families - set(CATALOGUE)
    assert set(CATALOGUE) <= set(named) | families | {"bus_events_lost"}, (
        set(CATALOGUE) - set(named) - families
    )


def test_the_lost_events_alert_is_the_writers_own_row() -> None:
    """``bus_events_lost`` is written by the writer straight into the alerts table (not an
    event), so no call names it: its constant does."""
    from bus.events import EVENTS_LOST

    assert EVENTS_LOST == "bus_events_lost" and EVENTS_LOST in CATALOGUE


def test_each_entry_says_what_an_operator_needs() -> None:
    for code, kind in CATALOGUE.items():
        assert code == kind.code and code == code.lower() and " " not in code, code
        assert kind.severities and set(kind.severities) <= _SEVERITIES, code
        order = ["info", "warning", "error", "critical"]
        assert list(kind.severities) == sorted(kind.severities, key=order.index), code
        assert kind.meaning and kind.action and kind.resolved and kind.raised_by, code


def test_the_operations_guide_holds_the_catalogue_word_for_word() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert markdown() in guide, "docs/operations.md: paste `observer alerts --catalogue`"


def test_observer_alerts_catalogue_prints_it_as_a_table_or_json_lines() -> None:
    from typer.testing import CliRunner

    from workers.notifier.cli import alerts_app  # `observer alerts`

    table = CliRunner().invoke(alerts_app, ["--catalogue"])
    assert table.exit_code == 0, table.output
    assert table.stdout == markdown()
    lines = CliRunner().invoke(alerts_app, ["--catalogue", "--json"])
    assert lines.exit_code == 0, lines.output
    rows = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [r["code"] for r in rows] == sorted(CATALOGUE)
    first = CATALOGUE[rows[0]["code"]]
    assert rows[0]["severities"] == list(first.severities) and rows[0]["action"] == first.action
