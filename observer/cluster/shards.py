"""Track B's symbols split between collectors hosts: ``[track_b] shard = "k/n"``.

There is no protocol between collectors hosts: each host's Track B takes only its own shards'
symbols. Shard ``k`` of ``n`` owns the symbols whose CRC-32 (of the code's UTF-8 bytes) mod ``n``
is ``k - 1``: fixed by its standard, so every host, process and release agrees on the split,
where Python's per-process ``hash()`` would not. ``"1/1"``, the default, owns every symbol.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = ["MAX_SHARDS", "Shard", "shard_of"]

MAX_SHARDS = 64
_SPEC = re.compile(r"^([0-9]{1,2}(?:,[0-9]{1,2})*)/([0-9]{1,2})$")


def shard_of(symbol: str, count: int) -> int:
    """The shard (1 to ``count``) that owns ``symbol`` when the symbols are split ``count`` ways."""
    return zlib.crc32(symbol.encode("utf-8", "surrogatepass")) % count + 1


@dataclass(frozen=True)
class Shard:
    """One host's part of the symbols: shards ``indices`` of ``count``.

    A host with more accounts (more slots) takes more of the shards: ``"1,2/3"`` on a host
    with two accounts and ``"3/3"`` on one with one give each about its share of slots.
    """

    indices: frozenset[int] = frozenset({1})
    count: int = 1

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"k/n"`` or ``"k,j,.../n"`` with each 1 <= k <= n <= 64, no k twice.

        Raises
        ------
        ValueError
            Naming the setting and the form it takes.
        """
        match = _SPEC.match(spec)
        if match is None:
            raise ValueError(
                f'track_b.shard must be "k/n" or "k,j/n" (such as "1/2" or "1,2/3"), not {spec!r}'
            )
        listed, count = [int(k) for k in match[1].split(",")], int(match[2])
        if not all(1 <= k <= count <= MAX_SHARDS for k in listed):
            raise ValueError(f"track_b.shard {spec!r}: needs 1 <= k <= n <= {MAX_SHARDS}")
        if len(set(listed)) != len(listed):
            raise ValueError(f"track_b.shard {spec!r}: names a shard twice")
        return cls(frozenset(listed), count)

    def owns(self, symbol: str) -> bool:
        """Whether this shard's host may watch ``symbol``."""
        return self.count == 1 or shard_of(symbol, self.count) in self.indices

    def owner(self, symbol: str) -> str:
        """The shard that owns ``symbol`` (``"2/2"``): the host whose setting lists it."""
        return f"{shard_of(symbol, self.count)}/{self.count}"

    def __str__(self) -> str:
        return f"{','.join(map(str, sorted(self.indices)))}/{self.count}"
