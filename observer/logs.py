"""Logging set-up: one line per record, JSON under the supervisor, secrets masked always.

Masking works on the finished line (message, arguments and traceback together), so a
secret cannot slip through a ``%r`` of a dict or an exception's text: every value a
`Secret` ever held is replaced, and so is anything shaped like a credential
(``appsecret=...``, ``"approval_key": "..."``, ``Bearer ...``, a JWT).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time

__all__ = ["mask_secrets", "register_secret", "setup_logging"]

_known: set[str] = set()
_known_lock = threading.Lock()
_known_pattern: re.Pattern[str] | None = None

_SHAPES = re.compile(
    r"(?P<key>app_?key|app_?secret|secretkey|access_?token|approval_?key|authorization"
    r"|password|passwd)"
    r"(?P<sep>[\"']?\s*[:=]\s*[\"']?(?:Bearer\s+)?)"
    r"(?P<value>[^\s\"',}&]+)",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]+")
_BEARER = re.compile(r"(Bearer\s+)[\w.~+/=-]+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)")
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in a log line from now on."""
    global _known_pattern
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        alternatives = sorted(_known, key=len, reverse=True)
        _known_pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret and credential-shaped value replaced by ***."""
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub("***", text)
    text = _SHAPES.sub(lambda m: f"{m['key']}{m['sep']}***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    return _JWT.sub("***", text)


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, program, msg[, exc]."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "program": self.program,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(line, ensure_ascii=False))


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr: JSON lines if ``OBSERVER_LOG_FORMAT=json`` (the supervisor sets it)."""
    handler = logging.StreamHandler()
    if os.environ.get("OBSERVER_LOG_FORMAT") == "json":
        handler.setFormatter(_JsonFormatter(os.environ.get("OBSERVER_PROGRAM", "")))
    else:
        handler.setFormatter(
            _MaskingFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # One INFO line per HTTP request drowns what matters; failures still log as warnings.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
