"""One CURVE key per source: a second host sending as a source another key sends as is refused.

The allow-list (`bus.curve.ServerCurve.may_send`) lets keys share a pattern (``track_b*``), so
two hosts configured with the same ``[supervisor] host`` would send one source with two
sequences. The first key that sends as a source owns it for the writer's run; another key's frame
carrying it is refused (never stored), counted in ``refused_sources`` and alerted once per key.
A restarted writer learns the owners afresh, so a host whose key was replaced is not locked out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bus.events import Alert

__all__ = ["SourceKeys"]

log = logging.getLogger(__name__)


class SourceKeys:
    """Which client key sends as each source (the writer's sources, bounded by max_sources)."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._alerted: set[str] = set()  # keys already alerted (allow-listed keys only)

    def claim(self, key: str, sources: Iterable[str]) -> str | None:
        """Take ``sources`` for ``key``; the first one another key owns, if any (nothing taken)."""
        sources = tuple(sources)
        for source in sources:
            owner = self._owner.get(source)
            if owner is not None and owner != key:
                return source
        for source in sources:
            self._owner.setdefault(source, key)
        return None

    def refusal(self, key: str, source: str) -> Alert | None:
        """The alert for ``key`` sending as ``source``, owned by another key: once per key."""
        if key in self._alerted:
            return None
        self._alerted.add(key)
        owner = self._owner.get(source, "")
        log.error(
            "refused frames from CURVE key %s: source %r is sent by key %s "
            "(two hosts with one [supervisor] host name?)",
            key,
            source[:40],
            owner,
        )
        return Alert(
            severity="critical",
            code="bus_source_two_keys",
            message=(
                f"two client keys send as source {source[:40]!r}: give each host its own "
                "[supervisor] host name"
            ),
            context={"key": key, "owner": owner, "source": source[:40]},
            subject=key,
        )
