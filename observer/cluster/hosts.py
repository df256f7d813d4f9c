"""Host-qualified bus sources: several collectors hosts sending to one writer.

The writer keeps one sequence per source, so every source must be unique. A host named in
``[supervisor] host`` qualifies every source it produces with it (``track_b@c2``, outbox
``<run_dir>/outbox/track_b@c2``), and reads back its own rows (Track A's cycle, Track B's slots,
gap recovery's gaps) under that name, so each host resumes its own work. Without a name the
sources are the programs' names (``track_b``).
"""

from __future__ import annotations

from observer.supervisor.settings import SupervisorSettings

__all__ = ["SEPARATOR", "host_of", "own_source", "program_of", "qualified"]

SEPARATOR = "@"


def qualified(source: str, host: str) -> str:
    """``source@host``; ``source`` itself without a host, or if it names one already."""
    if not host or SEPARATOR in source:
        return source
    return f"{source}{SEPARATOR}{host}"


def own_source(supervisor: SupervisorSettings, source: str) -> str:
    """The name ``source`` is produced under on this host (`qualified` by its host name)."""
    return qualified(source, supervisor.host)


def host_of(source: str) -> str:
    """The host a source was produced on: the part after ``@``; empty if unqualified."""
    _, _, host = source.rpartition(SEPARATOR)
    return host if SEPARATOR in source else ""


def program_of(source: str) -> str:
    """The source without its host: ``track_b`` of ``track_b@c2``."""
    return source.partition(SEPARATOR)[0]
