"""Settings that contradict each other are refused when the file loads, naming the keys.

Each case starts from the shipped configuration (``extends``) and changes one thing an
operator could get wrong; before these checks each loaded and failed hours later (a missing
REST share at 08:00, a misspelled job command at 21:00), or never fired (a rule naming no
program, or a figure nobody reads), or ran a day without its warmup.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from observer.config.load import load_settings
from observer.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "observer.toml"


def load(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "observer.toml"
    path.write_text(f'extends = "{SHIPPED}"\n{toml}')
    load_settings(path)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # The phases in order, and a late day inside its day.
        (
            '[phases]\nwarmup = "09:30"\n',
            r"track_a_only \(09:00\) must be later than phases.warm",
        ),
        ('[phases]\nidle = "15:00"\n', r"phases.idle \(15:00\) must be later than"),
        ("[calendar]\nlate_days = [{ day = 2026-11-19, minutes = 600 }]\n", "outside the day"),
        ("[calendar]\nlate_days = [{ day = 2026-11-19, minutes = -600 }]\n", "outside the day"),
        (
            "[calendar]\nlate_days = [{ day = 2026-11-19, minutes = 60 }, "
            "{ day = 2026-11-19, minutes = 40 }]\n",
            "2026-11-19 is listed twice",
        ),
        (
            "[calendar]\nextra_closed = [2026-06-03]\nextra_open = [2026-06-03]\n",
            "2026-06-03 is in both extra_closed and extra_open",
        ),
        # A late day that is no session would never shift anything.
        (
            "[calendar]\nlate_days = [{ day = 2026-11-21, minutes = 60 }]\n",  # a Saturday
            r"calendar.late_days: 2026-11-21 is not a session",
        ),
        (
            "[calendar]\nlate_days = [{ day = 2026-12-25, minutes = 60 }]\n",  # Christmas
            r"calendar.late_days: 2026-12-25 is not a session",
        ),
        (
            "[calendar]\nlate_days = [{ day = 2026-06-03, minutes = 60 }]\n",  # extra_closed
            r"calendar.late_days: 2026-06-03 is not a session",
        ),
        # A bare metrics host (its port is metrics_port), and URLs with their scheme.
        (
            '[supervisor]\nmetrics_host = "127.0.0.1:9108"\n',
            r"supervisor.metrics_host \('127.0.0.1:9108'\) must be a bare host",
        ),
        ('[supervisor]\nmetrics_host = "http://localhost"\n', "metrics_host"),
        (
            '[kis]\nsim_url = "127.0.0.1:8080"\n',
            r"kis.sim_url \('127.0.0.1:8080'\) must be an http:// or https:// URL",
        ),
        ('[kis]\nsim_url = "localhost:9443"\n', r"kis.sim_url \('localhost:9443'\)"),
        ('[kis]\nsim_url = "ws://127.0.0.1:8800"\n', "kis.sim_url"),
        ('[kis]\nmaster_url = "localhost:8800/common/master/"\n', "kis.master_url"),
        ('[krx]\nurl = "data.krx.co.kr"\n', r"krx.url \('data.krx.co.kr'\)"),
        ('[enrich]\nfallback_url = "127.0.0.1:9"\n', "enrich.fallback_url"),
        # Every share a program will ask for.
        ('[universe]\nshare_of = "track-a"\n', r"programs.universe uses the 'track-a' share"),
        ('[etf]\nshare_of = "trackA"\n', r"programs.etf_list uses the 'trackA' share"),
        # Two accounts never on one app key.
        (
            '[[kis.accounts]]\nalias = "acct1"\ncredentials_file = "acct.cred"\n'
            '[[kis.accounts]]\nalias = "acct2"\ncredentials_file = "acct.cred"\n',
            "'acct1' and 'acct2' read the same credentials",
        ),
        (
            '[[kis.accounts]]\nalias = "acct-1"\n[[kis.accounts]]\nalias = "acct_1"\n',
            r"'acct-1' and 'acct_1' read the same credentials \(\$OBSERVER_KIS_ACCT_1_\*\)",
        ),
        # The programs' timing.
        (
            "[supervisor]\nheartbeat_interval_s = 30.0\n",
            r"heartbeat_timeout_s \(15\) must be at least two of",
        ),
        (  # a read on Track A's loop may hold its heartbeats for the pool's timeout
            "[database]\nreader_pool_timeout_s = 14.0\n",
            r"programs.track_a.heartbeat_timeout_s \(15\) must be at least 1.25 x "
            r"database.reader_pool_timeout_s plus supervisor.heartbeat_interval_s \(18.5\)",
        ),
        (
            "[writer]\ndrain_s = 60.0\n",
            r"programs.writer.stop_grace_s \(15\) must be at least writer.drain_s \(60\)",
        ),
        (
            "[notifier]\nsend_timeout_s = 60.0\n",
            r"programs.notifier.stop_grace_s \(15\) must be at least notifier.send_timeout_s",
        ),
        ("[programs.backup]\nbackoff_initial_s = 60.0\nbackoff_max_s = 1.0\n", "backoff_initial"),
        ('[kis]\ntoken_issuer = "job"\n[programs.token]\nenabled = false\n', "no enabled program"),
        # Bounds in order.
        ("[track_b]\nrefusal_retry_s = 900.0\n", r"track_b.refusal_retry_s \(900\) is above"),
        ("[gap_recovery]\nbackoff_initial_s = 60.0\n", "gap_recovery.backoff_initial_s"),
        ("[track_b]\noverflow_alert_pct = [20.0, 10.0, 5.0]\n", "in that order"),
        # Threshold rules: one code each, and a metric something reports.
        (
            "[supervisor]\nrules = ["
            '{ code = "x", metric = "gap_recovery.success_pct", below = 95.0 }, '
            '{ code = "x", metric = "gap_recovery.queue_depth", above = 100.0 }]\n',
            "two rules have the code 'x'",
        ),
        (
            "[supervisor]\nrules = ["
            '{ code = "enrichment_stale", metric = "age_h.master_file", above = 1.0 }]\n',
            "two rules have the code 'enrichment_stale'",
        ),
        (
            '[supervisor]\nrules = [{ code = "x", metric = "gap_recovry.success_pct", '
            "below = 95.0 }]\n",
            "'gap_recovry.success_pct' names no program",
        ),
        (
            '[supervisor]\nrules = [{ code = "x", metric = "age_h.masterfile", above = 1.0 }]\n',
            r"'age_h.masterfile' is no age of data the supervisor reads \(age_h.master_file, ",
        ),
        # An enrichment figure the supervisor reads, of a region enriched; before, any name
        # after `enrichment.` loaded, and a shipped rule redefined with a typo never fired.
        (
            '[supervisor]\nrules = [{ code = "x", metric = "enrichment.coverge_pct.kr", '
            "below = 90.0 }]\n",
            r"'x': 'enrichment.coverge_pct.kr' names no enrichment figure \(enrichment.<fig.*"
            "coverage_pct, age_h, calls",
        ),
        (
            '[enrich]\nregions = ["KR", "US"]\n[supervisor]\nrules = [{ code = "x", '
            'metric = "enrichment.coverage_pct.jp", below = 90.0 }]\n',
            r"'enrichment.coverage_pct.jp' names no region of enrich.regions \(kr, us\)",
        ),
        (
            '[supervisor]\nrules = [{ code = "x", metric = "enrichment.calls", above = 9.0 }]\n',
            "'enrichment.calls' names no region",
        ),
        # A command that does not exist, found at load instead of when it is first due.
        (
            '[programs.track_b]\ncommand = ["observer", "trak-b", "run"]\n',
            r"programs.track_b.command: `observer trak-b` is no observer command "
            r"\(did you mean `observer track-b`\?\)",
        ),
        (
            '[programs.backup]\ncommand = ["observer", "bakup"]\n',
            r"programs.backup.command: `observer bakup` is no observer command",
        ),
        (
            '[programs.backup]\ncommand = ["observer"]\n',
            r"`observer` alone names no observer command \(alerts, archive, audit,",
        ),
        (
            '[programs.backup]\ncommand = ["/opt/observer/bin/backup-nightly"]\n',
            "programs.backup.command: no such file /opt/observer/bin/backup-nightly",
        ),
        (
            '[programs.backup]\ncommand = ["/etc"]\n',
            "programs.backup.command: /etc is not an executable file",
        ),
        (
            '[programs.sampler]\nkind = "daemon"\ncommand = ["pyhton", "-m", "sampler"]\n',
            "programs.sampler.command: no command 'pyhton' on the PATH",
        ),
        (  # the program's own PATH is where it is looked for, as it is started
            '[programs.sampler]\nkind = "daemon"\ncommand = ["sh", "-c", "true"]\n'
            'env = { PATH = "/nonexistent" }\n',
            "programs.sampler.command: no command 'sh' on the PATH",
        ),
    ],
)
def test_contradicting_settings_are_refused_by_name(
    tmp_path: Path, toml: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, toml)


@pytest.mark.parametrize(
    "toml",
    [
        "[calendar]\nlate_days = [{ day = 2026-11-19, minutes = 60 }]\n",  # CSAT day
        # A Saturday opened by extra_open, and a date beyond XKRX's range on a weekday.
        "[calendar]\nextra_open = [2026-11-21]\nlate_days = [{ day = 2026-11-21, minutes = 60 }]\n",
        "[calendar]\nlate_days = [{ day = 2099-01-05, minutes = 60 }]\n",
        '[supervisor]\nmetrics_host = "0.0.0.0"\n',
        '[supervisor]\nmetrics_host = "::1"\n',
        '[supervisor]\nmetrics_host = "metrics.internal"\n',
        '[kis]\nsim_url = "https://sim.internal:9443/"\nmaster_url = "http://[::1]:8800/m/"\n',
        '[supervisor]\nrules = [{ code = "x", metric = "track_a.cycle_s", above = 600.0 }]\n',
        '[supervisor]\nrules = [{ code = "x", metric = "age_h.enrichment", above = 30.0 }]\n',
        '[supervisor]\nrules = [{ code = "x", metric = "enrichment.kis_calls.us", above = 9.0 }]\n',
        '[supervisor]\nrules = [{ code = "x", metric = "enrichment.age_h.kr", above = 30.0 }]\n',
        # Commands that exist: the observer's, its earlier names, this interpreter, the PATH.
        '[programs.gap_recovery]\ncommand = ["observer", "gaps", "run"]\n',
        '[programs.backup]\ncommand = ["python", "-m", "workers.backup"]\n',
        f'[programs.backup]\ncommand = ["{sys.executable}", "-c", "pass"]\n',
        '[programs.backup]\ncommand = ["sh", "-c", "true"]\n',
        '[programs.backup]\ncommand = ["sh", "-c", "true"]\nenv = { PATH = "/usr/bin:/bin" }\n',
        # A program not enabled is not started: its command is not looked for.
        '[programs.backup]\nenabled = false\ncommand = ["/opt/observer/bin/backup-nightly"]\n',
        '[kis]\ntoken_issuer = "job"\n',  # the shipped token job issues them
        # Two beats in the shortest timeout, and room for Track A's longest read beside them.
        "[supervisor]\nheartbeat_interval_s = 7.5\n[database]\nreader_pool_timeout_s = 5.0\n",
    ],
)
def test_settings_that_agree_load(tmp_path: Path, toml: str) -> None:
    load(tmp_path, toml)


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ("gap_recovery = 0.25, jobs = 0.15", "uses the 'track_a' share"),
        ("track_a = 0.5, gap_recovry = 0.25, jobs = 0.15", "'gap_recovery' share"),
    ],
)
def test_a_program_needs_its_share(tmp_path: Path, shares: str, message: str) -> None:
    path = tmp_path / "observer.toml"  # whole: a table extended merges key by key
    path.write_text(
        f"[kis]\nprocess_share = {{ {shares} }}\n"
        '[programs.track_a]\nkind = "session"\ncommand = ["observer", "track-a", "run"]\n'
        'phases = ["track_a_only"]\n'
        '[programs.gap_recovery]\nkind = "daemon"\ncommand = ["observer", "gap-recovery", "run"]\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_the_shipped_rules_may_name_programs_a_file_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "observer.toml"
    path.write_text('[programs.writer]\nkind = "daemon"\ncommand = ["observer", "writer"]\n')
    settings = load_settings(path)
    assert {r.metric.split(".")[0] for r in settings.supervisor.rules} >= {"gap_recovery"}


def test_a_socket_path_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    deep = "d" * 100
    with pytest.raises(ConfigError, match=r"control_socket: the socket d+/run/control.sock is 117"):
        load(tmp_path, f'[paths]\ndata_dir = "{deep}"\n')
    with pytest.raises(ConfigError, match=r"paths.run_dir \(ingest\): the socket d+/run/ingest"):
        load(tmp_path, f'[paths]\ndata_dir = "{deep}"\n[supervisor]\ncontrol_socket = "c.sock"\n')
    load(tmp_path, f'[paths]\ndata_dir = "{"d" * 80}"\n')  # 80 + /run/control.sock fits


def test_a_relative_command_is_found_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the supervisor starts it (its children's working folder is its own)."""
    script = tmp_path / "bin" / "nightly"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    toml = '[programs.backup]\ncommand = ["bin/nightly"]\n'
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"programs\.backup\.command: bin/nightly is not an exec"):
        load(tmp_path, toml)
    script.chmod(0o700)
    load(tmp_path, toml)


def test_the_observer_commands_are_the_clis() -> None:
    """The check's list of the CLI's own commands is the app's (the workers' are entry points)."""
    from observer.cli.main import app
    from observer.config import checks as config_checks

    registered = {info.name for info in app.registered_groups} | {
        info.name or getattr(info.callback, "__name__", "").replace("_", "-")
        for info in app.registered_commands
    }
    # A test of the same process may have added the workers' commands to the one app.
    groups = ("observer.commands", "observer.command_aliases")
    added = {entry.name for group in groups for entry in entry_points(group=group)}
    assert registered - added == config_checks._OWN_COMMANDS
    assert {"track-b", "gaps", "demo"} <= config_checks._observer_commands("track-b")


def test_every_metric_the_supervisor_reads_may_be_named(tmp_path: Path) -> None:
    """What `metrics_of` names from a reading (ages, each region's figures) loads as a rule."""
    from observer.alerts.settings import ENRICHMENT_RUN_FIGURES
    from observer.supervisor.rules import metrics_of

    figures = dict.fromkeys((*ENRICHMENT_RUN_FIGURES, "coverage_pct", "age_h"), 1.0)
    metrics = metrics_of([], {"master_file": 1.0, "enrichment": 1.0}, {"KR": figures})
    assert len(metrics) == 2 + len(figures)
    rules = ", ".join(
        f'{{ code = "r{n}", metric = "{metric}", above = 1.0 }}' for n, metric in enumerate(metrics)
    )
    load(tmp_path, f"[supervisor]\nrules = [{rules}]\n")


def test_a_program_the_supervisor_started_leaves_the_commands_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its PATH may be its own (`env`): it never refuses to start for another's command."""
    monkeypatch.setenv("OBSERVER_PROGRAM", "track_a")
    load(tmp_path, '[programs.backup]\ncommand = ["nightly-backup"]\n')
    with pytest.raises(ConfigError, match="`observer bakup` is no observer command"):
        load(tmp_path, '[programs.backup]\ncommand = ["observer", "bakup"]\n')


def test_another_hosts_command_is_left_to_that_host(tmp_path: Path) -> None:
    """Every host loads the whole file: a store host's script may exist only there."""
    store_only = '[programs.backup]\nrole = "store"\ncommand = ["/opt/observer/bin/nightly"]\n'
    load(tmp_path, '[supervisor]\nrole = "collectors"\n' + store_only)
    with pytest.raises(ConfigError, match=r"programs\.backup\.command: no such file"):
        load(tmp_path, '[supervisor]\nrole = "store"\n' + store_only)
    with pytest.raises(ConfigError, match="`observer bakup` is no observer command"):
        load(
            tmp_path,
            '[supervisor]\nrole = "collectors"\n[programs.backup]\nrole = "store"\n'
            'command = ["observer", "bakup"]\n',
        )
