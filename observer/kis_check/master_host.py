"""The master-file host, asked as the master-file job asks it (`[master_file] head`).

With ``head = "auto"`` the job asks HEAD and decides from its Content-Length and ETag or
Last-Modified; a host without HEAD, or without validators, makes the job GET the file and
compare its sha256 (`observer.kis.master_archive.probe_master`). Either way works: the check
reports which one the host needs, and refuses only a host the job cannot use at all. The body
is never downloaded.
"""

from __future__ import annotations

from typing import Literal

import httpx

from observer.errors import KisError, MasterFileError
from observer.kis.master_archive import probe_master
from observer.kis_check.report import MISMATCH, OK, Report

__all__ = ["MASTER_SWITCH", "check_master_host"]

# Where a host without HEAD or validators is configured (documented in docs/kis.md).
MASTER_SWITCH = "[master_file] head"


async def check_master_host(
    http: httpx.AsyncClient, name: str, report: Report, head: Literal["auto", "never"] = "auto"
) -> None:
    """Add the finding for master archive ``name``: how the job would tell a change."""
    item = f"master host {name}"
    try:
        remote = await probe_master(http, name, head)
    except (KisError, MasterFileError) as exc:
        report.add(item, MISMATCH, f"HEAD failed ({exc}); see {MASTER_SWITCH} = 'never'")
        return
    get = await _get_headers(http, name)
    if not get.startswith("HTTP 200"):
        report.add(item, MISMATCH, f"GET: {get}: the job cannot download it")
        return
    if remote is None:
        why = "asked for no HEAD" if head == "never" else "no usable HEAD"
        report.add(item, OK, f"{why}; GET: {get}: the job compares each download's sha256")
        return
    validators = [
        v for v, value in (("ETag", remote.etag), ("Last-Modified", remote.last_modified)) if value
    ]
    if not validators:
        report.add(
            item,
            OK,
            f"HEAD: Content-Length {remote.size}, no ETag or Last-Modified: the job compares "
            "each download's sha256",
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
