"""The settings as a person reads them: the whole tree, its defaults, or what a file changes.

`settings_document` turns a `Settings` into the nested tables of its TOML form, every key
present (``observer config show``); `changes` keeps only what differs from another document
(``--changed``: what a file sets apart from the defaults). `to_toml` writes a document that
`observer.config.load.load_settings` reads back into the same settings. Secrets are never in
the settings (keys, tokens and alert URLs come from owner-only files or the environment); a
database URL that carries a password shows it as ``***``.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import msgspec
import tomli_w

from observer.config.tree import Settings

__all__ = ["changes", "settings_document", "to_toml"]

Document = dict[str, Any]
_DATABASE_URLS = ("url", "replica_url")


def settings_document(settings: Settings) -> Document:
    """``settings`` as nested tables, in the order the settings declare them.

    A key left unset (None: a program's ``role`` that follows the supervisor's) is left out,
    as TOML has no null; a database URL's password is ``***``.
    """
    tree = msgspec.to_builtins(settings, builtin_types=(date, datetime, time))
    document: Document = _without_none(tree)
    database = document["database"]
    for key in _DATABASE_URLS:
        database[key] = _hide_password(database[key])
    return document


def changes(document: Document, base: Document) -> Document:
    """What ``document`` holds apart from ``base``: its tables pruned to the keys that differ.

    A table compares key by key; a value or an array (``[[kis.accounts]]``, a schedule) as a
    whole, as a configuration file replaces it whole (`observer.config.files`).
    """
    changed: Document = {}
    for key, value in document.items():
        before = base.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            if inner := changes(value, before):
                changed[key] = inner
        elif value != before:
            changed[key] = value
    return changed


def to_toml(document: Document) -> str:
    """``document`` as TOML: a table's plain keys before its sub-tables (TOML's rule)."""
    return tomli_w.dumps(document)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_none(v) for v in value]
    return value


def _hide_password(url: str) -> str:
    if not url:
        return url
    # deferred: SQLAlchemy (about 0.1 s) for a URL to show, not for loading the settings
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:  # the settings refuse such a URL: never shown, it may hold a secret
        return "***"
    return parsed.render_as_string(hide_password=True) if parsed.password else url
