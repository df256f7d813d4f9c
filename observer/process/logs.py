"""Logging set-up: one line per record, JSON under the supervisor, secrets masked always.

Masking works on the finished line (message, arguments and traceback together), so a secret
cannot slip through a ``%r`` of a dict or an exception's text: every value a `Secret` ever held
is replaced (`register_secret`), and so is anything shaped like a credential (``appsecret=...``,
``Bearer ...``, a JWT). `mask_struct` applies the same masker to every string of an event; every
process's producer calls it before the outbox.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from observer.process.log_files import stderr_handler

__all__ = [
    "ANYWHERE_SECRET_LENGTH",
    "MIN_SECRET_LENGTH",
    "mask_secrets",
    "mask_struct",
    "register_secret",
    "setup_logging",
]

S = TypeVar("S", bound=msgspec.Struct)

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
# A secret of ANYWHERE_SECRET_LENGTH or more is masked wherever it appears, inside a word
# too. A shorter one would mask pieces of ordinary words that way, so a credential (every
# `Secret`: a KRX password may be short) is masked only where no ASCII letter, digit or _
# extends it: "pa55" in "for pa55" and "user:pa55@host", not in "spa555" or "pa55word". An
# end that is punctuation needs no such check, and other scripts are no letters here
# (Korean particles follow a word unspaced). A short value that may be an ordinary word
# (a channel URL's path segment, port or option) is not masked. Nor is one shorter than
# MIN_SECRET_LENGTH ("a" or "10" as words are ordinary text): the KIS readers refuse one.
ANYWHERE_SECRET_LENGTH = 6
MIN_SECRET_LENGTH = 3
# An error text cut to a length (``text[:200]``) may end inside a secret: a value of at
# least CUT_SECRET_LENGTH is also masked from its first CUT_PREFIX characters to the end of
# the word (random keys never share 16 characters with anything else).
CUT_SECRET_LENGTH = 24
CUT_PREFIX = 16
_REST_OF_WORD = r"[^\s\"',;}&]*"  # up to a space, quote or separator, as in _SHAPES's value
_WORD_CHAR = "[0-9A-Za-z_]"


def register_secret(value: str, *, short_too: bool = False) -> None:
    """Mask ``value`` wherever it appears in a log line from now on.

    A value shorter than ANYWHERE_SECRET_LENGTH is masked, as a whole word, only with
    ``short_too`` (a credential, never an ordinary word); else, or if shorter than
    MIN_SECRET_LENGTH, it is ignored. One of CUT_SECRET_LENGTH or more is also masked when
    cut short, from its first CUT_PREFIX characters on.
    """
    global _known_pattern
    if len(value) < (MIN_SECRET_LENGTH if short_too else ANYWHERE_SECRET_LENGTH):
        return
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        by_length = sorted(_known, key=len, reverse=True)
        cut = sorted({v[:CUT_PREFIX] for v in _known if len(v) >= CUT_SECRET_LENGTH})
        alternatives = [re.escape(v) for v in by_length if len(v) >= ANYWHERE_SECRET_LENGTH]
        alternatives += [re.escape(prefix) + _REST_OF_WORD for prefix in cut]
        longer = "|".join(alternatives)
        alternatives += [_as_word(v, longer) for v in by_length if len(v) < ANYWHERE_SECRET_LENGTH]
        _known_pattern = re.compile("|".join(alternatives))


def _as_word(value: str, longer: str) -> str:
    """A pattern for a short ``value``, matching it only as a whole word.

    No letter, digit or _ may extend it at an end that is one, and none of ``longer`` may begin
    inside it: that one is masked whole, by its own alternative, rather than cut by this match. It
    starts with a plain character, as the other alternatives do, so that the regex engine skips to
    where one can begin (a lookbehind first is ten times slower).
    """
    first, rest = re.escape(value[0]), re.escape(value[1:])
    before = "" if re.fullmatch(_WORD_CHAR, value[0]) is None else f"(?<!{_WORD_CHAR}{first})"
    after = "" if re.fullmatch(_WORD_CHAR, value[-1]) is None else f"(?!{_WORD_CHAR})"
    if not longer:
        return first + before + rest + after
    inside = f"(?!(?s:.){{0,{len(value) - 2}}}(?:{longer}))"
    return f"{first}{before}(?={rest}{after}){inside}{rest}"


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret and credential-shaped value replaced by ***."""
    pattern = _known_pattern
    if pattern is not None:
        text = pattern.sub("***", text)
    if not _may_be_shaped(text):
        return text
    text = _SHAPES.sub(lambda m: f"{m['key']}{m['sep']}***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _URL_PASSWORD.sub(r"\1***\2", text)
    return _JWT.sub("***", text)


def _may_be_shaped(text: str) -> bool:
    """False only for a text no credential shape can match (a few substring searches).

    Every text the shapes match holds one of these words once lowercased. IGNORECASE folds
    four characters beyond ASCII onto ASCII letters: the Kelvin sign (lower() makes it a
    k), the long s (made an s here), and two forms of i, a letter none of the words holds.
    Spelled out rather than looped: events are masked string by string.
    """
    low = text.lower() if text.isascii() else text.lower().replace("\u017f", "s")
    return (
        "key" in low
        or "secret" in low
        or "token" in low
        or "auth" in low
        or "pass" in low
        or "bearer" in low
        or "eyj" in low
        or "://" in low
    )


def mask_struct(value: S) -> S:
    """``value`` with every string in it masked (`mask_secrets`), nested structs included.

    Returns ``value`` itself when nothing needed masking, the usual case: only fields whose
    type can hold a string are visited, each string costs a search or two.
    """
    changes = {}
    for name in _text_fields(type(value)):
        old = getattr(value, name)
        new = _masked(old)
        if new is not old:
            changes[name] = new
    return msgspec.structs.replace(value, **changes) if changes else value


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        masked = mask_secrets(value)
        return value if masked == value else masked
    if isinstance(value, msgspec.Struct):
        return mask_struct(value)
    if isinstance(value, tuple | list):
        items = [_masked(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, dict):
        masked_dict = {_masked(k): _masked(v) for k, v in value.items()}
        return value if masked_dict == value else masked_dict
    return value


_text_fields_of: dict[type, tuple[str, ...]] = {}


def _text_fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of ``cls`` whose type can hold a string (at any depth)."""
    fields = _text_fields_of.get(cls)
    if fields is None:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        fields = tuple(f.name for f in info.fields if _holds_text(f.type))
        _text_fields_of[cls] = fields
    return fields


def _holds_text(kind: mi.Type) -> bool:
    match kind:
        case mi.StrType() | mi.AnyType() | mi.CustomType():
            return True
        case mi.LiteralType():  # not checked on encoding: a bug could put any text there
            return any(isinstance(value, str) for value in kind.values)
        case mi.Metadata():
            return _holds_text(kind.type)
        case mi.CollectionType():
            return _holds_text(kind.item_type)
        case mi.TupleType():
            return any(_holds_text(item) for item in kind.item_types)
        case mi.DictType():
            return _holds_text(kind.key_type) or _holds_text(kind.value_type)
        case mi.UnionType():
            return any(_holds_text(member) for member in kind.types)
        case mi.StructType():
            return any(_holds_text(f.type) for f in kind.fields)
    return False


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


def setup_logging(level: str = "INFO", handler: logging.Handler | None = None) -> None:
    """Log to stderr: JSON lines if ``OBSERVER_LOG_FORMAT=json`` (the supervisor sets it).

    Under the supervisor stderr is the program's log file, rotated by size
    (`observer.process.log_files`); ``handler`` replaces that choice (a file the process adopted).
    """
    handler = handler or stderr_handler()
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
    # One INFO line per HTTP request drowns what matters, and so do alembic's notes on each
    # migration context (a backup's check makes several); failures still log as warnings.
    for chatty in ("httpx", "httpcore", "alembic"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
