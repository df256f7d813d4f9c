"""KIS master archives: the HEAD and the bounded download, and safe zip extraction.

The bytes' transport and unpacking, before any record is read (`observer.kis.master`, which
parses the records, re-exports these names). Facts from shared/reference/kis-api.md §6.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import httpx

from observer.errors import KisTransportError, MasterFileError

__all__ = [
    "MAX_COMPRESSION_RATIO",
    "MAX_MASTER_BYTES",
    "Downloaded",
    "RemoteFile",
    "download_master",
    "extract_single",
    "head_master",
    "probe_master",
]

# The largest master file is a few MB; anything far larger is not one.
MAX_MASTER_BYTES = 64 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200
# What `zipfile` lets through from damaged bytes, besides `zipfile.BadZipFile`: the
# decompressors' own errors (zlib, lzma; bz2 raises OSError), a stream cut short (EOFError),
# a seek before the start or an undecodable name (ValueError), an unsupported compression
# method (NotImplementedError) or encryption (RuntimeError).
_DAMAGED = (
    zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, NotImplementedError,
    RuntimeError, zipfile.LargeZipFile,
)  # fmt: skip


def extract_single(archive: bytes, member: str, max_bytes: int = MAX_MASTER_BYTES) -> bytes:
    """Return the one member named ``member`` (any case) of a zip, checked and bounded.

    Nothing is written to disk, so a member name cannot escape a folder; names with path
    parts are still refused. Declared sizes, the compression ratio and the bytes actually
    inflated are all bounded, and the CRC is verified.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            infos = [i for i in zf.infolist() if i.filename.lower() == member.lower()]
            if len(infos) != 1:
                names = [i.filename for i in zf.infolist()][:5]
                raise MasterFileError(f"{member} not found exactly once in the archive: {names}")
            info = infos[0]
            if "/" in info.filename or "\\" in info.filename or ".." in info.filename:
                raise MasterFileError(f"refusing member with a path: {info.filename!r}")
            if info.file_size > max_bytes:
                raise MasterFileError(f"{member} declares {info.file_size} bytes")
            if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise MasterFileError(f"{member} compression ratio looks like a zip bomb")
            with zf.open(info) as stream:
                data = stream.read(max_bytes + 1)
    except zipfile.BadZipFile as exc:
        raise MasterFileError(f"not a valid zip archive: {exc}") from exc
    except _DAMAGED as exc:
        raise MasterFileError(f"damaged zip archive: {exc}") from exc
    if len(data) > max_bytes:
        raise MasterFileError(f"{member} inflates beyond {max_bytes} bytes")
    return data


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """What a HEAD says about a master archive; validators are "" when the server omits them."""

    size: int
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A master archive saved to disk: its size and sha256 as received."""

    path: Path
    size: int
    sha256: str
    remote: RemoteFile


async def head_master(http: httpx.AsyncClient, name: str) -> RemoteFile:
    """The published size (and ETag / Last-Modified) of master archive ``name``."""
    try:
        response = await http.head(name)
    except httpx.HTTPError as exc:
        raise KisTransportError(f"HEAD {name}: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise KisTransportError(f"HEAD {name}: HTTP {response.status_code}")
    if response.status_code != 200 or "content-length" not in response.headers:
        raise MasterFileError(f"HEAD {name}: HTTP {response.status_code}, no size")
    return _remote(response)


# HEAD answers that say "this host does not do HEAD", not "no such file": a GET decides.
_NO_HEAD = frozenset({404, 405, 501})


async def probe_master(
    http: httpx.AsyncClient, name: str, head: Literal["auto", "never"]
) -> RemoteFile | None:
    """What HEAD says of master archive ``name``, or None when the GET has to tell.

    ``never`` asks nothing (None). ``auto`` asks HEAD, and takes 404, 405 or 501, or an
    answer without Content-Length, as a host that serves GET only (None); KIS's material
    documents no HEAD (its samples download with a plain GET).

    Raises
    ------
    KisTransportError
        The host unreachable, or a 5xx other than 501.
    """
    if head == "never":
        return None
    try:
        response = await http.head(name)
    except httpx.HTTPError as exc:
        raise KisTransportError(f"HEAD {name}: {type(exc).__name__}") from None
    if response.status_code in _NO_HEAD or (
        response.status_code == 200 and "content-length" not in response.headers
    ):
        return None
    if response.status_code >= 500:
        raise KisTransportError(f"HEAD {name}: HTTP {response.status_code}")
    if response.status_code != 200:
        raise MasterFileError(f"HEAD {name}: HTTP {response.status_code}")
    return _remote(response)


def _remote(response: httpx.Response) -> RemoteFile:
    try:
        size = int(response.headers["content-length"])
    except ValueError:
        raise MasterFileError(f"{response.url}: Content-Length is not a number") from None
    return RemoteFile(
        size, response.headers.get("etag", ""), response.headers.get("last-modified", "")
    )


async def download_master(
    http: httpx.AsyncClient,
    name: str,
    path: Path,
    *,
    max_bytes: int = MAX_MASTER_BYTES,
    progress: Callable[[int], None] | None = None,
) -> Downloaded:
    """Stream archive ``name`` into ``path`` (created 0600), hashing as it arrives.

    Refuses an error status, a missing or lying Content-Length (more or fewer bytes than
    announced) and more than ``max_bytes``; on any failure ``path`` is removed.
    """
    digest = hashlib.sha256()
    received = 0
    try:
        with _private(path) as out:
            async with http.stream("GET", name) as response:
                if response.status_code >= 500:
                    raise KisTransportError(f"GET {name}: HTTP {response.status_code}")
                if response.status_code != 200:
                    raise MasterFileError(f"GET {name}: HTTP {response.status_code}")
                if "content-length" not in response.headers:
                    raise MasterFileError(f"GET {name}: no Content-Length to verify against")
                remote = _remote(response)
                if remote.size > max_bytes:
                    raise MasterFileError(f"GET {name}: {remote.size} bytes announced")
                try:
                    async for chunk in response.aiter_raw():
                        received += len(chunk)
                        if received > remote.size:
                            raise MasterFileError(
                                f"GET {name}: more than the {remote.size} bytes announced"
                            )
                        digest.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(received)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    raise MasterFileError(
                        f"GET {name}: the body ended after {received} of {remote.size} bytes"
                    ) from None
        if received != remote.size:
            raise MasterFileError(f"GET {name}: {received} of {remote.size} bytes arrived")
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise KisTransportError(f"GET {name}: {type(exc).__name__}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Downloaded(path, received, digest.hexdigest(), remote)


@contextmanager
def _private(path: Path) -> Iterator[BinaryIO]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        yield out
