"""Track B's symbols split between collectors hosts: ``[track_b] shard = "k/n"``.

There is no protocol between collectors hosts: each host's Track B takes only its own
shard's symbols, so two hosts configured ``"1/2"`` and ``"2/2"`` never watch the same one.
Shard ``k`` of ``n`` owns the symbols whose CRC-32 (of the code's UTF-8 bytes) mod ``n`` is
``k - 1``. CRC-32 is fixed by its standard, so every host, process and release agrees on
the split; Python's ``hash()`` of a str is randomised per process and would not. ``"1/1"``,
the default, owns every symbol.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = ["MAX_SHARDS", "Shard", "shard_of"]

MAX_SHARDS = 64
_SPEC = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})$")


def shard_of(symbol: str, count: int) -> int:
    """The shard (1 to ``count``) that owns ``symbol`` when the symbols are split ``count`` ways."""
    return zlib.crc32(symbol.encode("utf-8", "surrogatepass")) % count + 1


@dataclass(frozen=True)
class Shard:
    """One host's part of the symbols: shard ``index`` of ``count``."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"k/n"`` with 1 <= k <= n <= 64; `ValueError` naming the setting otherwise."""
        match = _SPEC.match(spec)
        if match is None:
            raise ValueError(f'track_b.shard must be "k/n" (such as "1/2"), not {spec!r}')
        index, count = int(match[1]), int(match[2])
        if not 1 <= index <= count <= MAX_SHARDS:
            raise ValueError(f"track_b.shard {spec!r}: needs 1 <= k <= n <= {MAX_SHARDS}")
        return cls(index, count)

    def owns(self, symbol: str) -> bool:
        """Whether this shard's host may watch ``symbol``."""
        return self.count == 1 or shard_of(symbol, self.count) == self.index

    def owner(self, symbol: str) -> str:
        """The shard that owns ``symbol``, as configured on its host (``"2/2"``)."""
        return f"{shard_of(symbol, self.count)}/{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
