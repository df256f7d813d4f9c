"""The import rules and registries of STYLE.md, as tests."""

from __future__ import annotations

import ast
import functools
import graphlib
import re
import sys
import typing
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

from bus.events import EVENT_TYPES, Event
from observer.writer.rows import HANDLERS

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of a source file, parsed once per test process (never changed)."""
    return ast.parse(path.read_text())


def imports_of(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[path] = names
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_bus_imports_only_stdlib_msgspec_and_pyzmq() -> None:
    for path, names in imports_of("bus").items():
        bad = {n for n in names if top(n) not in STDLIB | {"msgspec", "zmq", "bus", "__future__"}}
        assert not bad, f"{path} imports {bad}"


def test_observer_never_imports_workers_or_tests() -> None:
    for path, names in imports_of("observer").items():
        bad = {n for n in names if top(n) in {"workers", "tests"}}
        assert not bad, f"{path} imports {bad}"


def test_nothing_in_the_product_imports_the_harness() -> None:
    """harness/ (simulator, demo, benches, load generator) may import anything; nothing uses it."""
    for package in ("observer", "workers", "bus"):
        for path, names in imports_of(package).items():
            bad = {n for n in names if top(n) == "harness"}
            assert not bad, f"{path} imports {bad}"


def test_workers_never_import_the_simulator() -> None:
    for path, names in imports_of("workers").items():
        bad = {n for n in names if n == "harness.sim" or n.startswith("harness.sim.")}
        assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("observer/kis", "harness.sim"),
        ("harness/sim", "observer.kis"),
        ("observer/kis", "observer.db"),
        ("observer/db", "observer.kis"),
    ],
)
def test_kis_sim_and_db_keep_apart(a: str, b: str) -> None:
    for path, names in imports_of(a.split("/")[0]).items():
        if f"{a}/" in str(path):
            assert not {n for n in names if n.startswith(b)}, path


@pytest.mark.parametrize(
    "banned",
    [
        # The supervisor starts a worker by its module's name and never the other way round;
        # what they share (the timeline: `observer.calendar.timeline`) lives beneath both.
        "observer.supervisor",
        # The typer app is the `observer` command's: a worker's CLI is its own typer app.
        "observer.cli.main",
    ],
)
def test_workers_never_import_the_supervisor_or_the_app(banned: str) -> None:
    for path, names in imports_of("workers").items():
        bad = {n for n in names if n == banned or n.startswith(f"{banned}.")}
        assert not bad, f"{path} imports {bad}"


def module_imports(root: Path, package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (a folder under ``root``) and its modules that it imports.

    Every import counts: at the top, under ``TYPE_CHECKING`` and inside functions alike, and
    ``from package import module`` as well as ``import package.module``. The package's own
    ``__init__`` is left out as a target: Python runs it before any of its modules anyway.
    """
    modules = {
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (root / package).rglob("*.py")
    }
    own = package.replace("/", ".")
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative to the importing module's package
                    parts = name.split(".")[: None if path.name == "__init__.py" else -1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base]) if base else ".".join(parts)
                found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in found if m in modules and m not in (name, own)}
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_core_imports_without_a_circle() -> None:
    """A circle hides under function-level imports and makes the order of imports matter."""
    graph = module_imports(ROOT, "observer")
    assert "observer.supervisor.commands" in graph["observer.supervisor.core"]  # graph is read
    assert cycle_in(graph) is None, f"a circle of imports: {' -> '.join(cycle_in(graph) or [])}"


def test_the_workers_import_without_a_circle() -> None:
    graph = module_imports(ROOT, "workers")
    assert "workers.track_b.collect" in graph["workers.track_b.worker"]  # graph is read
    assert cycle_in(graph) is None, f"a circle of imports: {' -> '.join(cycle_in(graph) or [])}"


def test_a_circle_hidden_under_type_checking_is_found(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "core.py").write_text("from pkg.commands import dispatch\n")
    (tmp_path / "pkg" / "commands.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import core\n"
    )
    (tmp_path / "pkg" / "other.py").write_text("def f():\n    import pkg.core\n")
    graph = module_imports(tmp_path, "pkg")
    assert graph == {
        "pkg": set(),
        "pkg.core": {"pkg.commands"},
        "pkg.commands": {"pkg.core"},
        "pkg.other": {"pkg.core"},
    }
    assert set(cycle_in(graph) or []) == {"pkg.core", "pkg.commands"}


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


# What config may import besides its own modules and the wings' ``settings`` modules: the
# tables kept beside their own code or under another name, and what the cross-checks build.
_TABLES_ELSEWHERE = (
    "observer.setting_types",
    "observer.errors",
    "observer.process.paths",
    "observer.process.disk",
    "observer.cluster.shards",  # a shard spec is parsed where it is set
    "observer.calendar.trading",  # the cross-checks build the calendar whose late days ...
    "observer.calendar.timeline",  # ... they check
    "observer.market",  # the market's rules as data: the tick grid the defaults name
)
_TOP_LEVEL = tuple(
    f"observer.{p.stem}"
    for p in (ROOT / "observer").iterdir()
    if p.stem not in ("cli", "__init__", "__main__", "__pycache__")
)
# Each rule: the modules it binds, what they may not import, and why.
WING_RULES = {
    "setting-types-and-errors-import-no-wing": (
        ("observer.setting_types", "observer.errors"),
        lambda name: name.startswith("observer."),
        "every wing imports them, so none may come back",
    ),
    "calendar-and-process-stand-beneath-the-processes": (
        ("observer.calendar", "observer.process"),
        lambda name: _within(
            name, ("observer.supervisor", "observer.writer", "observer.cli", "observer.config")
        ),
        "time and files serve every process; a process's own code is above them",
    ),
    "config-assembles-the-wings-tables-only": (
        ("observer.config",),
        lambda name: (
            not (
                _within(name, ("observer.config", *_TABLES_ELSEWHERE)) or name.endswith(".settings")
            )
        ),
        "loading the settings starts no wing's machinery",
    ),
    "only-the-cli-imports-the-cli": (
        _TOP_LEVEL,
        lambda name: _within(name, ("observer.cli",)),
        "the command line is the top: nothing beneath it rests on it",
    ),
}


@pytest.mark.parametrize("rule", WING_RULES)
def test_each_wing_imports_only_beneath_it(rule: str) -> None:
    wings, banned, why = WING_RULES[rule]
    graph = module_imports(ROOT, "observer")
    importers = [name for name in graph if _within(name, wings)]
    assert importers, wings  # the rule binds modules that exist
    for name in importers:
        bad = sorted(m for m in graph[name] if banned(m) and not _within(m, (name,)))
        assert not bad, f"{name} imports {bad}: {why}"


def function_imports(path: Path) -> list[tuple[int, bool]]:
    """Each import inside a function of ``path``: its line, and whether a comment says why.

    The comment is on the import's lines, or on the line above it or above the run of imports
    it belongs to (a blank line between two of them included).
    """
    text = path.read_text()
    lines = ["", *text.splitlines()]  # lines[n] is line n
    found: dict[int, bool] = {}
    for function in ast.walk(parsed(path)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        nodes = [n for n in ast.walk(function) if isinstance(n, ast.Import | ast.ImportFrom)]
        taken = {n for node in nodes for n in range(node.lineno, (node.end_lineno or 0) + 1)}
        for node in nodes:
            above = node.lineno - 1
            while above in taken or (not lines[above].strip() and above - 1 in taken):
                above -= 1
            own = lines[node.lineno : (node.end_lineno or 0) + 1]
            found[node.lineno] = any("#" in line for line in own) or lines[
                above
            ].lstrip().startswith("#")
    return sorted(found.items())


def test_a_function_level_import_without_a_reason_is_found(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import os\n\n\n"
        "def said():\n    # deferred: costly\n    import a\n\n    import b\n\n\n"
        "def inline():\n    x = 1\n    import c  # deferred: costly\n\n\n"
        "def unsaid():\n    # what x is\n    x = 1\n\n    import d\n"
    )
    assert function_imports(path) == [(6, True), (8, True), (13, True), (20, False)]


PACKAGES = [
    "observer",
    *sorted(
        f"workers/{p.name}" for p in (ROOT / "workers").iterdir() if (p / "__init__.py").exists()
    ),
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_function_level_import_says_why(package: str) -> None:
    """A function-level import is there for a measured start-up cost, which a comment names."""
    unsaid = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := [line for line, said in function_imports(path) if not said])
    }
    assert not unsaid, f"imports inside functions without a reason: {unsaid}"


def test_workers_never_import_each_other() -> None:
    for path, names in imports_of("workers").items():
        own = path.relative_to(ROOT / "workers").parts[0].removesuffix(".py")
        others = {n for n in names if top(n) == "workers" and n.split(".")[1:2] != [own]}
        assert not others, f"{path} imports {others}"


# KIS's wire: its answers' fields, its endpoints and market codes, its real-time records. A
# worker asks observer.kis in domain terms (a venue, a day, a symbol) and gets events or typed
# records back (`observer.kis.bars`, `flows`, `investor`, `etf`, `daily_bars`); Track B
# registers feeds by kind, venue and symbol (`observer.kis.feeds`) and reads decoded events.
KIS_WIRE = ("observer.kis.schemas", "observer.kis.endpoints", "observer.kis.realtime")


def test_workers_never_read_kis_s_wire() -> None:
    found = {}
    for path, names in imports_of("workers").items():
        wire = {n for n in names if n in KIS_WIRE}
        if wire:
            found[path.relative_to(ROOT).as_posix()] = wire
    assert not found, f"workers reading KIS's wire: {found}"


def test_workers_name_no_tr_id() -> None:
    """A worker's code names feeds by kind and venue, never by KIS's TR id (docstrings may)."""
    tr_id = re.compile(r"\bH0[A-Z]{2}[A-Z0-9]{3}0\b")
    named = set()
    for path in (ROOT / "workers").rglob("*.py"):
        tree = parsed(path)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings and tr_id.search(text):
                named.add(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not named, f"TR ids named in workers: {sorted(named)}"


def test_only_the_writer_writes_rows() -> None:
    """Outside observer/writer nothing imports SQLAlchemy's DML or runs raw SQL."""
    allowed = {"migrate.py"}  # DDL
    for package in ("observer", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if "observer/writer/" in str(path) or path.name in allowed:
                continue
            tree = parsed(path)
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "sqlalchemy"
                ):
                    dml = {a.name for a in node.names} & {"insert", "update", "delete"}
                    assert not dml, f"{path} imports {dml}"
                if isinstance(node, ast.Attribute):
                    assert node.attr != "exec_driver_sql", f"{path} runs raw SQL"


def test_the_union_and_the_registry_agree() -> None:
    assert typing.get_args(Event) == EVENT_TYPES


def structs_within(hint: object) -> set[type[msgspec.Struct]]:
    """Every Struct type a field's type hint can hold, at any depth."""
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        found = {hint}
        for inner in typing.get_type_hints(hint).values():
            found |= structs_within(inner)
        return found
    return {s for arg in typing.get_args(hint) for s in structs_within(arg)}


EVENT_STRUCTS = sorted(structs_within(Event), key=lambda c: c.__name__)


def test_the_nested_structs_are_found() -> None:
    nested = {c.__name__ for c in EVENT_STRUCTS if c not in EVENT_TYPES}
    assert nested >= {"Bar", "UniverseMember"}


@pytest.mark.parametrize("cls", EVENT_STRUCTS, ids=lambda c: c.__name__)
def test_events_and_what_they_carry_are_built_by_keyword(cls: type[msgspec.Struct]) -> None:
    """msgspec does not pass ``kw_only`` on to subclasses: each struct must declare it."""
    with pytest.raises(TypeError, match="positional"):
        cls(*(None for _ in cls.__struct_fields__))


def test_every_event_has_a_writer_handler() -> None:
    assert set(HANDLERS) == set(EVENT_TYPES)


def test_one_single_instance_lock() -> None:
    """Every process-exclusion guard is `bus.lock.InstanceLock`; nothing else calls flock."""
    for package in ("bus", "observer", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "bus" / "lock.py":
                continue
            for node in ast.walk(parsed(path)):
                if isinstance(node, ast.Attribute):
                    assert node.attr not in {"flock", "lockf"}, f"{path} locks by hand"


def test_one_retry_policy() -> None:
    """Retries go through `observer.process.retry`: nothing else imports tenacity."""
    for package in ("observer", "workers"):
        for path, names in imports_of(package).items():
            if path != ROOT / "observer" / "process" / "retry.py":
                assert not {n for n in names if top(n) == "tenacity"}, f"{path} retries by hand"


def test_events_are_built_by_keyword_everywhere() -> None:
    """Statically too: in code no test runs, and in the tests, which mypy does not check."""
    names = {c.__name__ for c in EVENT_STRUCTS}
    for package in ("bus", "observer", "workers", "harness", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(parsed(path)):
                if isinstance(node, ast.Call) and node.args:
                    func = node.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    assert name not in names, f"{path}:{node.lineno} builds {name} positionally"


def test_reads_live_in_the_queries_module() -> None:
    """Workers and the core ask the database through `observer.db.queries` (the day's
    reconciliation, retention, enrichment, host rosters, Track B's held slots and a replayed
    day's comparison through their parts, ``*_queries``).

    Besides the writer (which reads its marks and digests), two reads stay with the listing
    type they build, which the database layer may not import (it would reach observer.kis):
    `observer.reference.instruments.tickers` and the master-file worker's `known_listings`.
    """
    allowed = {
        ROOT / "observer" / "db" / "queries.py",
        ROOT / "observer" / "db" / "audit_queries.py",
        ROOT / "observer" / "db" / "reconciliation_queries.py",
        ROOT / "observer" / "db" / "retention_queries.py",
        ROOT / "observer" / "db" / "sector_queries.py",
        ROOT / "observer" / "db" / "etf_queries.py",
        ROOT / "observer" / "db" / "roster_queries.py",
        ROOT / "observer" / "db" / "slot_queries.py",
        ROOT / "observer" / "db" / "replay_queries.py",
        ROOT / "observer" / "reference" / "instruments.py",
        ROOT / "workers" / "master_file" / "diff.py",
    }
    for package in ("observer", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path in allowed or "observer/writer/" in str(path):
                continue
            for node in ast.walk(parsed(path)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "sqlalchemy"
                ):
                    assert "select" not in {a.name for a in node.names}, f"{path} selects"


def test_hand_layout_only_for_data_tables() -> None:
    """``# fmt: skip`` keeps a data table's columns (field widths, code maps, parametrize
    cases): it closes a module-level literal or a decorator, never code or ``__all__``."""
    for package in ("bus", "observer", "workers", "harness", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            if "# fmt: skip" not in text:
                continue
            tables: set[int | None] = set()
            for node in parsed(path).body:
                named = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.Assign | ast.AnnAssign) and not any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in named
                ):
                    tables.add(node.end_lineno)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    tables |= {d.end_lineno for d in node.decorator_list}
            for n, line in enumerate(text.splitlines(), 1):
                if line.endswith("# fmt: skip"):
                    assert n in tables, f"{path}:{n}: let ruff lay it out"


def test_a_command_is_its_programs_name_with_hyphens() -> None:
    """`observer gap-recovery` runs the gap_recovery program of workers/gap_recovery.

    A worker with several jobs names each for its subcommand: `observer etf list` runs the
    etf_list program of workers/etf.
    """
    import tomllib

    config = tomllib.loads((ROOT / "config" / "observer.toml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    commands = project["project"]["entry-points"]["observer.commands"]
    for name, program in config["programs"].items():
        word = program["command"][1]
        if word in commands and commands[word].startswith("workers."):
            package = commands[word].split(".")[1]
            if name != word.replace("-", "_") and len(program["command"]) > 2:
                name = name.removesuffix(f"_{program['command'][2]}")
            assert word == name.replace("_", "-") == package.replace("_", "-"), (name, word)


def test_an_events_rows_are_named_for_it() -> None:
    """The append-only table of an event E is model ``ERow`` (a struct's rows likewise).

    The gap events share one history (``GapEvent``) beside the gap kept in place (``Gap``).
    """
    from observer.db import models

    shared = {"GapDetected", "GapStateChanged"}
    for event in EVENT_TYPES:
        if event.__name__ not in shared:
            assert hasattr(models, f"{event.__name__}Row"), event.__name__
    assert models.UniverseMemberRow.__tablename__ == "universe_members"
    assert models.BarRow.__tablename__ == "minute_bars"


# Where the product writes a file other than through `observer.process.private_files.write_private`
# (temporary file, fsync, rename, fsync of the folder), and why that is right there.
OWN_WRITES = {
    "observer/process/private_files.py": "the helper itself",
    "observer/process/log_files.py": "log lines, appended and rotated",
    "observer/db/archive.py": "day archives: fsynced, renamed, the folder fsynced",
    "observer/db/sqlite_restore.py": "a restored database: fsynced before its rename",
    "observer/db/backup_folders.py": "a backup's folder: every part fsynced, then renamed",
    "workers/master_file/files.py": "master archives: fsynced before renamed into place",
    "workers/etf/report.py": "a report's CSV, at the path an operator gave",
    "observer/cli/data.py": "the rows an operator asked for, at the path they gave",
    "observer/data/export.py": "exported files: written aside, renamed whole, re-exportable",
    "workers/gap_recovery/cli.py": "a report's chart, at the path an operator gave",
    "workers/enrich/summary.py": "a log of runs, appended",
    "observer/supervisor/control.py": "a socket bound aside, renamed over a stale one",
}


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    """The calls in ``tree`` that write, replace or rename a file by hand."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        mode = next(
            (a.value for a in node.args[:2] if isinstance(a, ast.Constant) and a.value in _MODES),
            None,
        )
        if isinstance(func, ast.Attribute) and (
            func.attr in ("write_text", "write_bytes")
            or (func.attr in ("rename", "replace") and len(node.args) == 1 and not node.keywords)
            or (
                isinstance(func.value, ast.Name)
                and func.value.id == "os"
                and func.attr == "replace"
            )
            or (func.attr == "open" and mode is not None)
        ):
            found.append((node.lineno, func.attr))
        elif isinstance(func, ast.Name) and func.id == "open" and mode is not None:
            found.append((node.lineno, "open"))
    return found


_MODES = {"w", "wb", "a", "ab", "x", "xb", "w+", "wb+", "r+", "rb+"}


def test_every_state_file_is_written_through_the_durable_helper() -> None:
    """A state file written by hand is written without fsync: a power cut tears it."""
    for package in ("observer", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            name = str(path.relative_to(ROOT))
            writes = _writes(parsed(path))
            if name in OWN_WRITES:
                assert writes, f"{name} writes nothing by hand any more: take it off the list"
                continue
            assert not writes, f"{name} writes by hand at {writes}: use write_private"
