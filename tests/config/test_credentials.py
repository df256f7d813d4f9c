"""Credentials that are refused stop the process before READY, in every environment.

A refused credentials file is an error naming the file and the reason, the simulator's
environment included; only the simulator takes placeholder keys, and only when none are
configured. The simulator takes its own keys from a file or the environment, never the
command line; two accounts with one app key are refused, naming both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.kis.credentials import account_credentials, configured_credentials
from observer.process.heartbeat import NOTIFY_FD_ENV
from tests.support import ROOT

# ----------------------------------------------------------------------- refused credentials


def sim_settings(credentials_file: str, environment: str = "sim") -> Settings:
    return msgspec.convert(
        {
            "kis": {
                "environment": environment,
                "accounts": [{"alias": "acct1", "credentials_file": credentials_file}],
            }
        },
        Settings,
    )


def credential_file(path: Path, mode: int, text: str) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


GOOD = 'app_key = "PSkey0123456789"\napp_secret = "secret0123456789"\n'


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OBSERVER_KIS_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("mode", "text", "reason"),
    [
        (0o644, GOOD, "owner-only"),
        (0o600, "app_key = [", "not app_key/app_secret TOML"),
        (0o600, 'app_key = "k"\n', "not app_key/app_secret TOML"),
        (None, GOOD, "does not exist"),
    ],
)
@pytest.mark.parametrize("environment", ["sim", "paper"])
def test_a_refused_credentials_file_is_an_error_in_every_environment(
    tmp_path: Path, environment: str, mode: int | None, text: str, reason: str
) -> None:
    path = tmp_path / "acct1.toml"
    if mode is not None:
        credential_file(path, mode, text)
    with pytest.raises(ConfigError, match=reason):
        account_credentials(sim_settings(str(path), environment).kis, "acct1")


def test_the_simulator_alone_takes_placeholder_keys_when_none_are_configured() -> None:
    creds = account_credentials(sim_settings("").kis, "acct1")
    assert creds.app_key.reveal() == "sim-acct1-app-key"
    with pytest.raises(ConfigError, match="OBSERVER_KIS_ACCT1_APP_KEY"):
        account_credentials(sim_settings("", "real").kis, "acct1")


def test_a_good_credentials_file_is_used_in_the_simulator(tmp_path: Path) -> None:
    path = credential_file(tmp_path / "acct1.toml", 0o600, GOOD)
    creds = account_credentials(sim_settings(str(path)).kis, "acct1")
    assert creds.app_key.reveal() == "PSkey0123456789"


def run_until_exit(command: list[str], env: dict[str, str]) -> tuple[int, str, list[Any]]:
    """Run ``command`` with a notify pipe; its exit code, stderr and the notices it sent."""
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.run(
            command,
            env={**env, NOTIFY_FD_ENV: str(write_fd)},
            pass_fds=(write_fd,),
            capture_output=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        os.close(write_fd)
        write_fd = -1
        with os.fdopen(read_fd, "rb") as notices:
            read_fd = -1
            lines = notices.read().splitlines()
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    return proc.returncode, proc.stderr.decode(), [json.loads(line) for line in lines]


WORKERS = [
    ["track-a", "run"],
    ["track-b", "run"],
    ["gap-recovery", "run"],
    ["universe", "build", "--date", "2026-03-09"],
]


@pytest.mark.parametrize("command", WORKERS, ids=lambda c: c[0])
@pytest.mark.parametrize("environment", ["sim", "real"])
def test_a_worker_with_refused_credentials_fails_before_ready(
    tmp_path: Path, command: list[str], environment: str
) -> None:
    credentials = ""
    if environment == "sim":  # the simulator: a file readable by others
        credentials = str(credential_file(tmp_path / "acct1.toml", 0o644, GOOD))
    config = tmp_path / "observer.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/o.db"\n'
        f'[kis]\nenvironment = "{environment}"\ntoken_dir = "{tmp_path}/tokens"\n'
        f'[[kis.accounts]]\nalias = "acct1"\ncredentials_file = "{credentials}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSERVER_KIS_")}
    code, stderr, notices = run_until_exit(
        [sys.executable, "-m", "observer", *command, "--config", str(config)], env
    )
    assert notices == []
    assert code == 2, stderr
    assert "acct1" in stderr
    assert ("owner-only" if environment == "sim" else "OBSERVER_KIS_ACCT1_APP_KEY") in stderr


# ------------------------------------------------------ the simulator's keys, off the argv

SIM_KEY, SIM_SECRET = "PSsimkey" + "k" * 28, "simsecret" + "s" * 171


def start_sim(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``observer sim`` on a free port; the process and its REST URL once it is listening."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "observer", "sim", "--stocks", "50", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(err)
    return proc, line.split("rest=")[1].split()[0]


def token_status(url: str, key: str, secret: str) -> int:
    body = {"grant_type": "client_credentials", "appkey": key, "appsecret": secret}
    return httpx.post(f"{url}/oauth2/tokenP", json=body, timeout=30).status_code


@pytest.mark.parametrize("source", ["file", "environment"])
def test_the_simulator_takes_its_keys_from_a_file_or_the_environment(
    tmp_path: Path, source: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OBSERVER_SIM_APP_KEYS"}
    pairs = f"# accepted keys\n{SIM_KEY}:{SIM_SECRET}\n\nPSother:othersecret\n"
    if source == "file":
        args = ["--app-keys-file", str(credential_file(tmp_path / "keys", 0o600, pairs))]
    else:
        args, env["OBSERVER_SIM_APP_KEYS"] = [], f"{SIM_KEY}:{SIM_SECRET} PSother:othersecret"
    proc, url = start_sim(args, env)
    try:
        assert token_status(url, SIM_KEY, SIM_SECRET) == 200
        assert token_status(url, "PSother", "othersecret") == 200
        assert token_status(url, SIM_KEY, "wrong") == 403
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()  # readable by every local user
        assert SIM_SECRET.encode() not in argv and SIM_KEY.encode() not in argv
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("args", "mode", "text", "reason"),
    [
        (["--app-key", f"{SIM_KEY}:{SIM_SECRET}"], 0o600, "", "No such option"),
        (["--app-keys-file", "KEYS"], 0o644, f"{SIM_KEY}:{SIM_SECRET}\n", "owner-only"),
        (["--app-keys-file", "KEYS"], 0o600, f"{SIM_KEY}{SIM_SECRET}\n", "line 1: not KEY:SECRET"),
        (["--app-keys-file", "KEYS"], 0o600, "# nothing\n", "holds no KEY:SECRET"),
        (["--app-keys-file", "MISSING"], 0o600, "", "does not exist"),
    ],
)
def test_the_simulator_refuses_keys_on_the_command_line_or_in_an_open_file(
    tmp_path: Path, args: list[str], mode: int, text: str, reason: str
) -> None:
    keys = credential_file(tmp_path / "keys", mode, text)
    args = [
        str(keys) if a == "KEYS" else str(tmp_path / "nope") if a == "MISSING" else a for a in args
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "observer", "sim", "--stocks", "50", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert reason in proc.stderr, proc.stderr
    assert SIM_SECRET not in proc.stderr  # a malformed line is named, never shown


def test_two_accounts_with_one_app_key_are_refused_naming_both(tmp_path: Path) -> None:
    first = credential_file(tmp_path / "a.toml", 0o600, GOOD)
    second = credential_file(tmp_path / "b.toml", 0o600, GOOD)  # another file, the same key
    settings = msgspec.convert(
        {
            "kis": {
                "environment": "paper",
                "accounts": [
                    {"alias": "a", "credentials_file": str(first)},
                    {"alias": "b", "credentials_file": str(second)},
                ],
            }
        },
        Settings,
    )
    with pytest.raises(ConfigError, match="accounts 'a' and 'b' have the same app key") as same:
        configured_credentials(settings.kis)
    assert "PSkey" not in str(same.value)
