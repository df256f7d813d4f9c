"""A state file that does not read: set aside, alerted, rebuilt by its owner, never fatal.

The product's state files (token caches, universe files, pins, the supervisor's records, ...) are
written with `observer.process.private_files.write_private`, so a torn one is a power cut on a
disk that lied, or a hand edit. Its owner neither reads it as empty in place nor fails on it at
every start: it is moved aside (``<name>.bad-<UTC time>``, owner-only), one warning
``state_file_unreadable`` says what was lost, and the owner goes on from its empty or safe state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bus.events import Alert
from observer.process.private_files import set_aside

__all__ = ["STATE_FILE_UNREADABLE", "read_state", "reason", "unreadable"]

log = logging.getLogger(__name__)

STATE_FILE_UNREADABLE = "state_file_unreadable"  # warning; subject: the file's path

T = TypeVar("T")


def unreadable(path: Path, why: str, outcome: str, *, copy: bool = False) -> Alert:
    """Set ``path`` aside and return the alert saying so (subject: its path); logged.

    ``why``: what is wrong with it; ``outcome``: what was lost and how it is rebuilt;
    ``copy``: a copy is set aside, the file stays for its owner to replace
    (`observer.process.private_files.set_aside`). A file that cannot be moved is said to be so; the
    caller goes on the same way.
    """
    try:
        aside = set_aside(path, copy=copy)
        kept, where = f"set aside as {aside.name}", str(aside)
    except FileNotFoundError:
        kept, where = "gone before it could be set aside", ""
    except OSError as exc:
        kept, where = f"not set aside ({exc.strerror or exc})", ""
    message = f"{path} does not read ({why}): {kept}; {outcome}"
    log.error("%s", message)
    context = {"file": str(path), "set_aside": where}
    return Alert(
        severity="warning",
        code=STATE_FILE_UNREADABLE,
        message=message,
        context=context,
        subject=str(path),
    )


def read_state(
    path: Path,
    decode: Callable[[bytes], T],
    outcome: str,
    send: Callable[[Alert], object] | None,
) -> T | None:
    """``decode`` of the file's bytes; None if there is no file, or if it does not read.

    ``decode`` raises `ValueError` (`msgspec.DecodeError` is one) for contents that are not
    the file's. Such a file, or one that cannot be read at all (a folder in its place, its
    permissions, the disk), is set aside and its alert given to ``send`` (``outcome``: what
    the caller does without it; without ``send`` the alert is only logged).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        alert = unreadable(path, exc.strerror or str(exc), outcome)
    else:
        try:
            return decode(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
            alert = unreadable(path, reason(data, exc), outcome)
    if send is not None:
        send(alert)
    return None


def reason(data: bytes, exc: Exception) -> str:
    """Why ``data`` does not read, in a few words: "empty" says the most after a power cut."""
    if not data.strip(b"\x00 \t\r\n"):
        return "empty" if not data else f"{len(data)} bytes of nothing"
    return str(exc)[:200] or type(exc).__name__
