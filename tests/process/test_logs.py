"""Secrets never reach a log line, whatever shape they take."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.kis.credentials import Secret
from observer.process.logs import _JsonFormatter, mask_secrets, register_secret

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    "line",
    [
        "POST /oauth2/tokenP {'appkey': 'PSabcdefgh12345', 'appsecret': 'topsecretvalue'}",
        'body={"grant_type":"client_credentials","appkey":"PSabcdefgh12345"}',
        "approval_key=0d1f2e3c-aaaa-bbbb-cccc-123456789abc",
        "headers: authorization: Bearer " + JWT,
        "token " + JWT + " expired",
        "postgresql://observer:hunter22@db/observer",
        "access_token: abcdefghijk",
    ],
)
def test_credential_shapes_are_masked(line: str) -> None:
    masked = mask_secrets(line)
    for secret in ("PSabcdefgh12345", "topsecretvalue", "0d1f2e3c", JWT, "hunter22", "abcdefghijk"):
        assert secret not in masked
    assert "***" in masked


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=8))
def test_a_registered_secret_is_masked_anywhere(value: str) -> None:
    register_secret(value)
    assert value not in mask_secrets(f"before {value} after {value!r}")


def test_secrets_from_credentials_are_registered_and_json_lines_are_masked() -> None:
    secret = Secret("sk-live-7f3a9c2e")
    record = logging.LogRecord(
        "kis", logging.ERROR, __file__, 1, "sent %s", (secret.reveal(),), None
    )
    line = _JsonFormatter("track_a").format(record)
    parsed = json.loads(line)
    assert parsed["msg"] == "sent ***"
    assert parsed["program"] == "track_a" and parsed["level"] == "ERROR"


def test_ordinary_text_is_left_alone() -> None:
    line = "track_a cycle 09:10 done: 1000 symbols, 0 failed, 52.1 s"
    assert mask_secrets(line) == line
