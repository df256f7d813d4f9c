"""Settings load strictly; read-only sessions refuse writes; the producer follows settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import tomli_w
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.db import migrate
from observer.db.engine import read_only_sessions
from observer.db.models import BusOffset
from observer.errors import ConfigError
from observer.kis.session import rate_limits
from observer.process.paths import PathSettings
from observer.runtime import producer_for


def test_the_shipped_configuration_loads() -> None:
    settings = load_settings()
    assert settings.bus.max_in_flight > 0
    assert settings.database.url.startswith("sqlite:///")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[writer]\nbatch_event = 10\n", "batch_event"),
        ("[bus]\nmax_in_flight = 0\n", r"\$.bus.max_in_flight"),
        ("[paths\n", "not valid TOML"),
        # the built-in full_at (20) kept: every firing would be at full strength
        ("[track_b.trade_velocity]\nthreshold = 30.0\n", r"below its threshold .*trade_velocity"),
    ],
)
def test_bad_configuration_names_the_offending_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_configuration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        load_settings(tmp_path / "nope.toml")


def test_read_only_sessions_read_but_never_write(db_url: str) -> None:
    migrate.upgrade(db_url)
    sessions = read_only_sessions(db_url)
    with sessions() as session:
        assert session.scalars(select(BusOffset)).all() == []
        with pytest.raises(DBAPIError):
            session.execute(text("INSERT INTO bus_offsets VALUES ('x', 1, 0)"))
    sessions.kw["bind"].dispose()


def test_producer_follows_the_bus_settings(tmp_path: Path) -> None:
    settings = Settings(paths=PathSettings(run_dir=str(tmp_path / "run")))
    producer = producer_for(settings, "track_a", clock_ns=lambda: 42)
    try:
        assert producer.endpoint == f"ipc://{tmp_path / 'run' / 'ingest.sock'}"
        assert (tmp_path / "run" / "outbox" / "track_a" / "LOCK").exists()
    finally:
        producer.close(drain_timeout=0)


@pytest.mark.parametrize(("environment", "default"), [("paper", 1.0), ("real", 18.0)])
def test_an_account_without_a_budget_gets_its_environments(
    tmp_path: Path, environment: str, default: float
) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(
        f'[kis]\nenvironment = "{environment}"\n[[kis.accounts]]\nalias = "a"\n'
        '[[kis.accounts]]\nalias = "b"\nrest_per_second = 5\n'
    )
    settings = load_settings(path)
    assert [a.rest_per_second for a in settings.kis.accounts] == [default, 5.0]
    limits = rate_limits(settings.kis, "track_a")  # what every worker paces by
    limiter = limits.for_account("a")
    assert limiter.rate == pytest.approx(default * 0.95 * 0.55)  # less the headroom


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[kis]\nprocess_share = { track_a = 0.7, jobs = 0.5 }\n", "adds up to 1.20"),
        ('[[kis.accounts]]\nalias = "a"\n[[kis.accounts]]\nalias = "a"\n', "repeat an alias"),
        ('[[kis.accounts]]\nalias = "Bad Alias"\n', "alias"),
        ('[kis]\nenvironment = "prod"\n', "environment"),
    ],
)
def test_kis_settings_are_validated(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


W = '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (W.replace("command", "comand"), r"unknown field `comand`.*\$.programs.writer"),
        (W + '[programs.a]\nkind = "daemon"\ncommand = ["x"]\ndepends_on = ["nope"]\n',
         "programs.a.depends_on: no enabled program 'nope'"),
        (W + '[programs.a]\nkind = "daemon"\ncommand = ["x"]\ndepends_on = ["b"]\n'
         '[programs.b]\nkind = "daemon"\ncommand = ["x"]\ndepends_on = ["a"]\n', "cycle"),
        (W + '[programs.t]\nkind = "session"\ncommand = ["x"]\n', "session programs"),
        (W + '[programs.t]\nkind = "session"\ncommand = ["x"]\nphases = ["lunch"]\n',
         r"\$.programs.t.phases"),
        (W + '[programs.j]\nkind = "job"\ncommand = ["x"]\nschedule = [{ at = "25:00" }]\n',
         r"\$.programs.j.schedule\[0\].at"),
        (W + '[programs.d]\nkind = "daemon"\ncommand = ["x"]\nschedule = [{ at = "05:00" }]\n',
         "only jobs have a schedule"),
        (W + '[programs.j]\nkind = "job"\ncommand = ["x"]\n[programs.d]\nkind = "daemon"\n'
         'command = ["x"]\ndepends_on = ["j"]\n', "'j' is a job"),
        (W + '[programs.j]\nkind = "job"\ncommand = ["x"]\nafter = ["writer"]\n',
         "programs.j.after: 'writer' is not another job"),
        (W + '[programs.d]\nkind = "daemon"\ncommand = ["x"]\nafter = ["writer"]\n',
         "run after other jobs"),
        ('[programs.Writer]\nkind = "daemon"\ncommand = ["x"]\n', "programs"),
        ('[phases]\nwarmup = "8:00"\n', r"\$.phases.warmup"),
    ],
)  # fmt: skip
def test_program_configuration_is_strict(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_paths_derive_from_the_data_dir() -> None:
    paths = PathSettings(data_dir="/srv/obs")
    assert paths.run == Path("/srv/obs/run")
    assert paths.log == Path("/srv/obs/log")
    assert PathSettings(data_dir="d", run_dir="/r").run == Path("/r")
    assert set(Settings().programs) == {"writer"}


def test_a_file_extends_another_and_changes_only_what_it_says(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "observer.toml").write_text(
        "[writer]\nbatch_events = 500\ndrain_s = 3.0\n"
        '[[kis.accounts]]\nalias = "a"\n[[kis.accounts]]\nalias = "b"\n'
        '[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n'
    )
    overlay = tmp_path / "overlay.toml"
    overlay.write_text(
        'extends = "base/observer.toml"\n[writer]\ndrain_s = 9.0\n[[kis.accounts]]\nalias = "c"\n'
    )
    settings = load_settings(overlay)
    assert (settings.writer.batch_events, settings.writer.drain_s) == (500, 9.0)  # merged
    assert [a.alias for a in settings.kis.accounts] == ["c"]  # an array is replaced whole
    assert list(settings.programs) == ["writer"]


def _tables(value: msgspec.Struct, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every table under ``value`` (a struct-valued setting), depth first."""
    for field in msgspec.structs.fields(value):
        inner = getattr(value, field.name)
        if isinstance(inner, msgspec.Struct):
            yield (*path, field.encode_name)
            yield from _tables(inner, (*path, field.encode_name))


def _nested(path: tuple[str, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    return {path[0]: _nested(path[1:], leaf)} if path else leaf


def test_a_table_of_one_s_own_keeps_the_built_in_values_of_the_keys_it_leaves_out(
    tmp_path: Path,
) -> None:
    """A table whose built-in value is not its type's defaults (Track B's triggers, the
    venues' hours) loaded from the type's defaults once a file wrote it: a volatility spike's
    weight alone made its threshold 3.0 (the volume surge's), not its own 2.0."""
    built_in = Settings()
    tables = list(_tables(built_in))
    assert ("track_b", "volatility_spike") in tables and ("venues", "nxt") in tables
    for path in tables:
        file = tmp_path / f"{'.'.join(path)}.toml"
        file.write_text(tomli_w.dumps(_nested(path, {})))
        assert load_settings(file) == built_in, path
    file = tmp_path / "spike.toml"
    file.write_text("[track_b.volatility_spike]\nweight = 7.0\n")
    spike = load_settings(file).track_b.volatility_spike
    assert spike == msgspec.structs.replace(built_in.track_b.volatility_spike, weight=7.0)
    assert (spike.threshold, spike.full_at) == (2.0, 3.0)


def test_a_bad_base_is_named(tmp_path: Path) -> None:
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop.toml"\n')
    with pytest.raises(ConfigError, match="extends"):
        load_settings(loop)
    missing = tmp_path / "missing.toml"
    missing.write_text('extends = "nowhere.toml"\n')
    with pytest.raises(ConfigError, match=r"nowhere\.toml"):
        load_settings(missing)
    wrong = tmp_path / "wrong.toml"
    (tmp_path / "base.toml").write_text("[writer]\nbatch_events = 10\n")
    wrong.write_text('extends = "base.toml"\n[writer]\nbatch_events = 0\n')
    with pytest.raises(ConfigError, match="batch_events"):
        load_settings(wrong)


def test_a_renamed_table_is_read_under_its_old_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[masterfile]\nmax_new = 7\n")
    assert load_settings(old).master_file.max_new == 7
    assert "[masterfile] is now [master_file]" in caplog.text
    overlay = tmp_path / "overlay.toml"  # an old overlay over a current base merges too
    overlay.write_text('extends = "base.toml"\n[masterfile]\nmax_new = 9\n')
    (tmp_path / "base.toml").write_text("[master_file]\nmax_new = 7\nmax_removed = 3\n")
    settings = load_settings(overlay)
    assert (settings.master_file.max_new, settings.master_file.max_removed) == (9, 3)
    both = tmp_path / "both.toml"
    both.write_text("[masterfile]\nmax_new = 7\n[master_file]\nmax_new = 8\n")
    with pytest.raises(ConfigError, match="keep one of them"):
        load_settings(both)


def test_a_moved_key_is_read_in_its_new_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Track B's WebSocket settings moved to ``[kis.stream]``: an older file keeps working."""
    old = tmp_path / "old.toml"
    old.write_text(
        '[kis]\nenvironment = "sim"\n'
        '[track_b]\nregistrations_per_account = 30\npingpong_answer = "echo"\nshard = "1/1"\n'
    )
    settings = load_settings(old)
    assert (settings.kis.stream.max_registrations, settings.kis.stream.pingpong_answer) == (
        30,
        "echo",
    )
    assert settings.kis.stream.reconnects_per_hour == 60  # the rest at their defaults
    assert "[track_b] registrations_per_account is now [kis.stream] max_registrations" in (
        caplog.text
    )
    both = tmp_path / "both.toml"
    both.write_text("[kis.stream]\nsilence_factor = 3.0\n[track_b]\nsilence_factor = 2.0\n")
    with pytest.raises(ConfigError, match="keep one"):
        load_settings(both)


def test_a_key_no_longer_read_is_named_and_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[supervisor]\nopen_alerts_lookback_s = 604800.0\ndata_age_s = 30.0\n")
    assert load_settings(old).supervisor.data_age_s == 30.0
    assert "[supervisor] open_alerts_lookback_s is no longer read" in caplog.text
    pages = tmp_path / "pages.toml"  # FHKST121600C0 is one answer: its page limit is gone
    pages.write_text("[etf]\nholdings_max_pages = 10\nmax_failed_pct = 7.0\n")
    assert load_settings(pages).etf.max_failed_pct == 7.0
    assert "[etf] holdings_max_pages is no longer read (FHKST121600C0 cannot be paged" in (
        caplog.text
    )
    typo = tmp_path / "typo.toml"  # any other unknown key is still refused
    typo.write_text("[supervisor]\nopen_alert_lookback_s = 604800.0\n")
    with pytest.raises(ConfigError, match="open_alert_lookback_s"):
        load_settings(typo)


def test_programs_read_the_configuration_the_supervisor_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linked file's ``extends`` is next to the link, for the supervisor and its programs."""
    from observer.calendar.clock import SystemClock
    from observer.supervisor.core import Supervisor

    for folder, data in (("etc", "etc-data"), ("deploy", "deploy-data")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "base.toml").write_text(f'[paths]\ndata_dir = "{data}"\n')
    (tmp_path / "etc" / "prod.toml").write_text('extends = "base.toml"\n')
    (tmp_path / "deploy" / "observer.toml").symlink_to("../etc/prod.toml")
    monkeypatch.chdir(tmp_path)
    given = Path("deploy/observer.toml")
    settings = load_settings(given)
    assert settings.paths.data_dir == "deploy-data"
    supervisor = Supervisor(settings, given, SystemClock())
    assert load_settings(Path(supervisor.launch.env["OBSERVER_CONFIG"])) == settings
