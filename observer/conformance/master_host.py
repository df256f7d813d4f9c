"""The master-file host, asked as the master-file job asks it: a HEAD, then a GET's headers.

The job decides whether a file changed from the HEAD's Content-Length and its ETag or
Last-Modified (`observer.kis.master_archive.head_master`); KIS documents neither. The check
asks for the first master file and reads the headers only (the body is not downloaded).
"""

from __future__ import annotations

import httpx

from observer.conformance.report import MISMATCH, OK, Report
from observer.errors import KisError, MasterFileError
from observer.kis.master_archive import head_master

__all__ = ["MASTER_SWITCH", "check_master_host"]

# Where a host without HEAD or validators is configured (documented in docs/kis.md).
MASTER_SWITCH = "[master_file] head"


async def check_master_host(http: httpx.AsyncClient, name: str, report: Report) -> None:
    """Add the findings of a HEAD and a GET's headers for master archive ``name``."""
    item = f"master host {name}"
    try:
        remote = await head_master(http, name)
    except (KisError, MasterFileError) as exc:
        get = await _get_headers(http, name)
        report.add(item, MISMATCH, f"HEAD not usable ({exc}); GET: {get}; see {MASTER_SWITCH}")
        return
    validators = [
        v for v, value in (("ETag", remote.etag), ("Last-Modified", remote.last_modified)) if value
    ]
    if not validators:
        report.add(
            item,
            MISMATCH,
            f"HEAD answered Content-Length {remote.size} but no ETag or Last-Modified: a "
            f"same-size change would be missed; see {MASTER_SWITCH}",
        )
        return
    report.add(item, OK, f"HEAD: Content-Length {remote.size}, {' and '.join(validators)}")


async def _get_headers(http: httpx.AsyncClient, name: str) -> str:
    """What a plain GET says in its headers (the body is not read)."""
    try:
        async with http.stream("GET", name) as response:
            found = [
                h for h in ("content-length", "etag", "last-modified") if h in response.headers
            ]
            return f"HTTP {response.status_code}, {', '.join(found) or 'no size or validators'}"
    except httpx.HTTPError as exc:
        return f"failed ({type(exc).__name__})"
