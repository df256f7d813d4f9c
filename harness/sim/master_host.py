"""The simulator's master-file host: today's archives, listing changes and damaged downloads.

The archives (built by `harness.sim.masters`) are rebuilt when the session day or the
listings change; ``change_listings`` evolves them as a real day does, and the
``master_damage`` fault breaks a download in one of the `MASTER_DAMAGE` ways.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from harness.sim.config import Faults, SimConfig
from harness.sim.market import Listing, Market
from harness.sim.masters import damaged, master_files
from harness.sim.protocol import now_kst, session_day
from observer.calendar.clock import Clock

__all__ = ["MasterHost"]


class MasterHost:
    """``GET /common/master/{name}`` and the listings the archives hold.

    Parameters
    ----------
    market:
        The synthetic market listed.
    clock:
        Simulated time: which session's archives are served.
    config:
        Whether downloads carry validators (ETag, Last-Modified), whether HEAD is answered,
        and what the archives hold beyond the .h files (new codes, extra ``.cod`` columns).
    faults:
        Delistings, renames, new listings and damage, shared with the rest of the simulator.
    """

    def __init__(self, market: Market, clock: Clock, config: SimConfig, faults: Faults) -> None:
        self.market = market
        self.clock = clock
        self.config = config
        self.faults = faults
        self._masters: tuple[object, dict[str, tuple[bytes, str]]] | None = None
        self._fresh_codes: list[str] = []  # codes of synthetic new listings, in order

    def _now(self) -> datetime:
        return now_kst(self.clock)

    def change_listings(self, new: int = 0, delist: int = 0, rename: int = 0) -> dict[str, Any]:
        """Evolve the masters as a real day does: listings, delistings and renames.

        Delistings come from KOSDAQ and renames from KOSPI stocks, synthetic ones only, in
        code order, so the same calls always pick the same symbols. Returns what changed.
        """
        f = self.faults

        def stocks(market: str) -> list[str]:
            return sorted(
                s
                for s, x in self.market.listings.items()
                if x.market == market
                and x.group == "ST"
                and not x.known
                and s not in f.delisted
                and s not in f.renamed
            )

        gone = stocks("KOSDAQ")[:delist]
        renamed = {s: f"{self.market.listings[s].name}홀딩스" for s in stocks("KOSPI")[:rename]}
        f.delisted |= set(gone)
        f.renamed |= renamed
        f.new_listings += new
        listed = [self._new_listing(n).symbol for n in range(f.new_listings - new, f.new_listings)]
        return {"new": listed, "delisted": gone, "renamed": renamed}

    def _master_files(self) -> dict[str, tuple[bytes, str]]:
        """Today's archives and when each last changed, rebuilt when the day or listings do."""
        day = session_day(self.market, self._now())
        f = self.faults
        c = self.config
        key = (
            day,
            frozenset(f.delisted),
            tuple(sorted(f.renamed.items())),
            f.new_listings,
            c.master_new_codes,
            c.master_extra_columns,
        )
        if self._masters is None or self._masters[0] != key:
            prices = {s: self.market.close(s, day) for s in self.market.listings}
            listed = [self._new_listing(n) for n in range(f.new_listings)]
            files = master_files(
                self.market,
                prices,
                delisted=f.delisted,
                renamed=f.renamed,
                listed=listed,
                with_new_codes=c.master_new_codes,
                extra_columns=c.master_extra_columns,
            )
            previous = self._masters[1] if self._masters else {}
            stamp = self._now().astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
            self._masters = (
                key,
                {
                    name: (
                        data,
                        previous[name][1] if previous.get(name, (b"",))[0] == data else stamp,
                    )
                    for name, data in files.items()
                },
            )
        return self._masters[1]

    def _new_listing(self, n: int) -> Listing:
        """The ``n``-th synthetic new listing: codes from 990000 up, skipping listed ones."""
        while len(self._fresh_codes) <= n:
            number = int(self._fresh_codes[-1]) + 10 if self._fresh_codes else 990000
            while f"{number:06d}" in self.market.listings:
                number += 10
            self._fresh_codes.append(f"{number:06d}")
        code = self._fresh_codes[n]
        # The first synthetic KOSDAQ stock lends its traits (a real one only if there is none).
        template = min(
            self.market.listings.values(),
            key=lambda x: (x.market != "KOSDAQ", x.group != "ST", x.known),
        )
        return replace(
            template,
            symbol=code,
            isin=f"KR7{code}009",
            name=f"신규상장{n + 1}",
            market="KOSDAQ",
            group="ST",
            known=False,
        )

    async def master(self, request: web.Request) -> web.StreamResponse:
        """``GET /common/master/{name}`` (and HEAD): an archive, damaged if so told."""
        name = request.match_info["name"]
        if request.method == "HEAD" and not self.config.master_head:
            return web.Response(status=405, headers={"Allow": "GET"})
        if name not in self._master_files():
            return web.Response(status=404)
        data, modified = self._master_files()[name]
        damage = self.faults.master_damage.get(name)
        if damage is not None:
            data = damaged(data, name.removesuffix(".zip"), damage)
        headers = {"Content-Length": str(len(data)), "Content-Type": "application/zip"}
        if self.config.master_validators:
            headers["ETag"] = f'"{hashlib.sha256(data).hexdigest()[:20]}"'
            headers["Last-Modified"] = modified
        if request.method == "HEAD":
            return web.Response(headers=headers)
        if damage == "short_body":  # announces the whole file, sends half, hangs up
            response = web.StreamResponse(headers=headers)
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=data, headers=headers)
