"""Shared fixtures: Hypothesis profiles, databases (SQLite, real PostgreSQL), writer processes."""

from __future__ import annotations

import compileall
import fcntl
import logging
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.exc import OperationalError

from bus.events import Event
from observer.db import migrate
from observer.db.engine import make_engine
from observer.db.scratch import scratch_postgres
from observer.process import logs
from observer.supervisor.core import Supervisor
from observer.writer.store import Store
from tests import support
from tests.migrated import upgrade_from_template
from tests.support import ProducerProcess, Receiver, SupervisorProcess, WriterProcess

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

TESTS = Path(__file__).resolve().parent

# xdist hands the files out in the order given, two to each worker at its start and one at a
# time after that. The longest go first (tests/file_seconds.tsv: each file's wall seconds in a
# whole run, the sum of its tests' in an `OBSERVER_TEST_CPU` log, files of 15 s or more; a
# long file left to the end ran alone on one core for minutes), then the rest by their number
# of tests, most first; but a file holding a `timed` test takes every other place at most:
# those files are among the longest, and only `TIMED_SLOTS` timed tests run at once, so
# workers given nothing but timed files at the start would wait on the slots with the cores
# idle. Among them, the files of `exclusive` tests (one at a time) take every third place, so
# that the first two go to the same worker at the start, one after the other (xdist deals
# the first files round the workers twice: places 0 and 6), not to two workers one of which
# would wait.
FILE_SECONDS = {
    TESTS / name: float(seconds)
    for name, seconds in (
        line.split("\t") for line in (TESTS / "file_seconds.tsv").read_text().splitlines()
    )
}


# The packages whose modules the tests' processes import.
COMPILED = ("bus", "observer", "workers", "harness", "migrations", "tests")


def pytest_configure(config: pytest.Config) -> None:
    """Compile the project's modules once, in the controller, before any process starts.

    Where PYTHONDONTWRITEBYTECODE is set (as on the CI machine), no process writes its
    bytecode, so each of the many the tests start compiled every module it imported again.
    """
    global _CPU_LOG
    if hasattr(config, "workerinput"):  # an xdist worker: the controller compiled already
        return
    if config.getoption("dist", "no") != "no":  # xdist's controller: it runs no test
        _CPU_LOG = None
    for package in COMPILED:
        compileall.compile_dir(TESTS.parent / package, quiet=1)
    _rewrite_tests(config)


def _rewrite_tests(config: pytest.Config) -> None:
    """Write each test module's assertion-rewritten bytecode once, for every worker to read.

    pytest writes it only where bytecode may be written, so with PYTHONDONTWRITEBYTECODE each
    of the five workers rewrote every test module as it collected (nearly half of the 21 CPU
    seconds a collection took). pytest reads such a file wherever it finds it. This uses
    pytest's own (private) rewriting functions; where they are not there, the workers
    rewrite as before.
    """
    try:
        from _pytest.assertion import rewrite
    except ImportError:
        return
    names = ("PYC_TAIL", "_read_pyc", "_rewrite_test", "_write_pyc", "get_cache_dir")
    if config.getoption("assertmode") != "rewrite" or not all(hasattr(rewrite, n) for n in names):
        return
    state = config.stash[rewrite.assertstate_key]
    for path in sorted(TESTS.rglob("*.py")):
        if not (path.name.startswith("test_") or path.name == "conftest.py"):
            continue
        cache = rewrite.get_cache_dir(path)
        pyc = cache / (path.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(path, pyc, state.trace) is not None:
            continue
        cache.mkdir(exist_ok=True)
        source_hash, code = rewrite._rewrite_test(path, config)
        rewrite._write_pyc(state, code, source_hash, pyc)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which xdist hands out the files (``--no-loadscope-reorder``)."""
    tests_in = Counter(item.path for item in items)
    timed = {item.path for item in items if _timed(item)}
    alone = {item.path for item in items if item.get_closest_marker("exclusive")}

    def longest(paths: set[Path]) -> list[Path]:
        return sorted(paths, key=lambda p: (-FILE_SECONDS.get(p, 0.0), -tests_in[p], str(p)))

    held = _alternate(longest(alone), longest(timed - alone), every=3)
    order = _alternate(held, longest(set(tests_in) - timed))
    place = {path: n for n, path in enumerate(order)}
    items.sort(key=lambda item: place[item.path])  # stable: a file's tests keep their order


# The tests marked ``timed`` run a simulated trading day at many times real speed and assert
# what it achieved in wall time (every tick stored, every cycle complete), so each needs the
# CPU it asks for, whatever the other workers run. Where this process may raise its priority
# again (root, as in CI), timed tests run at the usual priority and every other test at a
# lower one (its processes inherit it), so a timed test gets the cores it asks for while the
# others go on with what is left. `TIMED_SLOTS` timed tests run at once (a slot each: in one
# run, four at once, the demo's day among them, and one fell short; two left the timed days
# end to end, some 700 s, the suite's floor, though most use a fifth of a core); an
# ``exclusive`` one (a demo's day, the two-host day: most of a core each) holds every slot, so
# it runs beside no other timed test (beside two, on a machine twice as slow as the one the
# speeds were set on, the demo's universe came 570 s late and its first Nextrade cycle was cut
# off, and the two-host day's 09:00 cycle asked 96 of its 149 names).
# Elsewhere a timed test runs alone: it holds a lock the others share, behind a gate that
# lets no new test take it while it waits, so it is not passed over. Either way a test lets
# its hold go early once its timed part is over (`support.timing_over`).
TIMED_SLOTS = 3
_BASE_NICE = os.getpriority(os.PRIO_PROCESS, 0)
_LOCKS = Path(tempfile.gettempdir()) / f"observer-tests-{os.getuid()}"


def _may_raise_priority() -> bool:
    """Whether this process may lower its nice value again (CAP_SYS_NICE): a probe by one."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, _BASE_NICE - 1)
    except PermissionError:
        return False
    os.setpriority(os.PRIO_PROCESS, 0, _BASE_NICE)
    return True


_PRIORITISED = _may_raise_priority()


# A test at the lower priority may get a tenth of the cores while a timed day runs: its hang
# guards (pytest-timeout's limit, `wait_until`'s deadlines) are this many times longer.
_LOW_PRIORITY_SLACK = 3.0


def _stretch_limit(item: pytest.Item) -> None:
    """pytest-timeout's limit for a test at the lower priority, stretched (before that plugin
    reads it: this hook runs first)."""
    marker = item.get_closest_marker("timeout")
    limit = (
        float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout"))
    )
    item.add_marker(pytest.mark.timeout(limit * _LOW_PRIORITY_SLACK), append=False)


def _alternate(first: list[Path], then: list[Path], every: int = 2) -> list[Path]:
    """``first`` and ``then`` in their orders, one of ``first`` in each ``every`` places while
    both last."""
    order: list[Path] = []
    while first or then:
        order.append((first if first and (not then or len(order) % every == 0) else then).pop(0))
    return order


def _timed(item: pytest.Item) -> bool:
    """Whether ``item`` is ``timed`` (an ``exclusive`` test is too)."""
    return any(item.get_closest_marker(name) is not None for name in ("timed", "exclusive"))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """A ``timed`` test gets the CPU first, or runs alone (see above), until it calls
    `support.timing_over`."""
    exclusive = item.get_closest_marker("exclusive") is not None
    timed = _timed(item)
    if _PRIORITISED:
        # Every test's hang guard is stretched: a timed test's too, for what it checks after
        # `timing_over` at the lower priority.
        _stretch_limit(item)
        _lower_priority()
        if not timed:
            yield
            return
        with _LOCKS.with_suffix(".exclusive").open("a") as alone:
            if exclusive:  # before the slots: they go on serving timed tests meanwhile
                fcntl.flock(alone, fcntl.LOCK_EX)  # before pytest-timeout's clock starts
            slots = _timed_slots(exclusive)
            os.setpriority(os.PRIO_PROCESS, 0, _BASE_NICE)  # its processes inherit it
            support.DEADLINE_SLACK = 1.0
            support._timing_over = lambda: _let_go(alone, slots)
            try:
                yield
            finally:
                support._timing_over = None
                _let_go(alone, slots)
                for slot in slots:
                    slot.close()
        return
    with (
        _LOCKS.with_suffix(".gate").open("a") as gate,
        _LOCKS.with_suffix(".lock").open("a") as lock,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if timed else fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        if timed:
            support._timing_over = lambda: fcntl.flock(lock, fcntl.LOCK_UN)
        try:
            yield
        finally:
            support._timing_over = None
            fcntl.flock(lock, fcntl.LOCK_UN)


def _lower_priority() -> None:
    """This test process (and what it starts from now on) at the lower priority."""
    os.setpriority(os.PRIO_PROCESS, 0, _BASE_NICE + 10)
    support.DEADLINE_SLACK = _LOW_PRIORITY_SLACK


def _timed_slots(exclusive: bool) -> list[IO[str]]:
    """The slots a timed test holds (locks on open files): one of the `TIMED_SLOTS`, the last
    free one or else the last (no polling), for a timed test; every one for an exclusive test,
    so it runs beside no other timed test."""
    first, *others = (_LOCKS.with_suffix(f".slot{n}") for n in range(TIMED_SLOTS))
    if exclusive:
        held = []
        for path in (first, *others):  # in order; a timed test waits holding none: no deadlock
            slot = path.open("a")
            fcntl.flock(slot, fcntl.LOCK_EX)
            held.append(slot)
        return held
    for path in (*reversed(others), first):
        slot = path.open("a")
        try:
            fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            slot.close()
            continue
        return [slot]
    slot = others[-1].open("a")
    fcntl.flock(slot, fcntl.LOCK_EX)
    return [slot]


def _let_go(alone: IO[str], slots: list[IO[str]]) -> None:
    """A timed test done with its timed part: the next may start. The processes it started
    keep their priority; those it starts from now on get the lower one."""
    _lower_priority()
    for slot in slots:
        fcntl.flock(slot, fcntl.LOCK_UN)
    fcntl.flock(alone, fcntl.LOCK_UN)


# ``OBSERVER_TEST_CPU=<file>``: each test's wall and CPU seconds appended to <file>, a TSV line
# per test (test, wall, this process's CPU, its reaped children's, its start as a Unix time):
# where the suite's CPU goes, and when.
# This process's figure holds its threads' (a simulator in a `SimThread`); a child counts once
# reaped, nearly always within the test that started it. Setup and teardown are included.
_CPU_LOG: str | None = os.environ.get("OBSERVER_TEST_CPU")
_cpu_at_start: tuple[float, float, float] = (0.0, 0.0, 0.0)


def _cpu_now() -> tuple[float, float, float]:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return (
        time.monotonic(),
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
    )


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    global _cpu_at_start
    if _CPU_LOG:
        _cpu_at_start = _cpu_now()


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    if _CPU_LOG:
        spent = [b - a for a, b in zip(_cpu_at_start, _cpu_now(), strict=True)]
        with open(_CPU_LOG, "a") as log:
            started = time.time() - spent[0]
            fields = [nodeid, *(f"{x:.2f}" for x in spent), f"{started:.2f}"]
            log.write("\t".join(fields) + "\n")


@pytest.fixture(autouse=True)
def _own_secret_registry() -> Iterator[None]:
    """The log masker's registry as it was before each test: a value one test registers
    (Hypothesis draws runs of digits) would else be masked in every later test of the
    process, such as a rejected frame's text stored by Track B."""
    saved = logs._known.copy(), logs._known_pattern
    yield
    logs._known, logs._known_pattern = saved


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """The root logger as the test found it: a command run in the test process replaces its
    handlers (`observer.process.logs.setup_logging`) with one on the stderr pytest captured then and
    closes after; a later test's thread logging through it printed "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):  # pytest's own come and go with each phase
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _migrated_from_a_template(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new database a test migrates is a copy of one migrated once (`tests.migrated`);
    the tests marked ``migrations`` run the migrations."""
    if request.node.get_closest_marker("migrations") is None:
        monkeypatch.setattr(migrate, "upgrade", upgrade_from_template)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Event]]:
    """What supervisors made in a test publish (their own alerts and resolutions)."""
    events: list[Event] = []
    monkeypatch.setattr(Supervisor, "_publish", lambda self, event: events.append(event))
    yield events


PG_ADMIN_URL = os.environ.get(
    "OBSERVER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable, set OBSERVER_TEST_PG to use another ({reason})")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_postgres(PG_ADMIN_URL, "observer_test"))
        except OperationalError as exc:
            _pg_unavailable(str(exc.orig).splitlines()[0])
        yield url
        # The processes stop before the database goes: a supervisor stopped after the drop
        # took 15 s, 10 of them waiting for producers that could not drain into it.
        _stop_test_processes()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in the test's own directory."""
    return f"sqlite:///{tmp_path / 'observer.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database the product supports, in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'observer.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """The writer's store on a migrated database, its marks loaded."""
    migrate.upgrade(db_url)
    engine = make_engine(db_url)
    store = Store(engine)
    store.load_marks()
    yield store
    engine.dispose()


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One token cache for a module's simulator: it issues an app key's token once a minute,
    as KIS does, so the module's runs share the one they got."""
    return tmp_path_factory.mktemp("tokens")


@pytest.fixture
def writer_factory(tmp_path: Path) -> Iterator[Callable[..., WriterProcess]]:
    """Start real writer processes; every one is killed at teardown."""
    started: list[WriterProcess] = []

    def make(url: str, **kwargs: object) -> WriterProcess:
        writer = WriterProcess(tmp_path, url, **kwargs)  # type: ignore[arg-type]
        started.append(writer)
        return writer

    yield make
    for writer in started:
        writer.kill()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback, closed at teardown."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _reap_producers() -> Iterator[None]:
    """No producer process outlives its test, even a failed one."""
    yield
    _stop_test_processes()


def _stop_test_processes() -> None:
    ProducerProcess.reap_all()
    SupervisorProcess.stop_all()
