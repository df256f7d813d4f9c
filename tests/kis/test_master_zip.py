"""A damaged master archive is a `MasterFileError`, whatever byte the damage hit.

`zipfile` reports damage in many ways besides `zipfile.BadZipFile`: the decompressors' own
errors (``zlib.error``, ``lzma.LZMAError``), EOFError, ValueError (a seek before the start),
NotImplementedError (an unknown compression method). Each must reach the master-file and
universe jobs as the one error they handle (reject, record, alert; reuse).
"""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from observer.errors import MasterFileError
from observer.kis.master import extract_single, parse_domestic
from tests.kis.test_kis_master import record

MEMBER = "kospi_code.mst"
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
PAYLOAD = b"".join(
    record("KOSPI", f"{n:06d}", f"종목{n}", grp="ST", sdpr=str(1000 + n), lstn=str(n * 7))
    for n in range(1, 60)
)


def archive(method: int, payload: bytes = PAYLOAD, member: str = MEMBER) -> bytes:
    """A zip of one member, the same bytes every time (a fixed timestamp)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo(member, date_time=(2026, 11, 20, 6, 0, 0))
        info.compress_type = method
        zf.writestr(info, payload)
    return buffer.getvalue()


ARCHIVES = {method: archive(method) for method in METHODS}


def flipped(data: bytes, position: int, mask: int) -> bytes:
    damaged = bytearray(data)
    damaged[position % len(damaged)] ^= mask
    return bytes(damaged)


def inflate_error_copy(good: bytes, member: str) -> bytes:
    """``good`` with one byte of its deflated data flipped so that inflating it fails.

    Found with `zipfile` alone (not `extract_single`): the damage the reviewer saw raise a
    bare ``zlib.error`` out of both jobs.
    """
    start = 30 + len(member)  # past the local header (no extra field from `zipfile`)
    for position in range(start, len(good)):
        damaged = flipped(good, position, 0xFF)
        try:
            with zipfile.ZipFile(io.BytesIO(damaged)) as zf:
                zf.read(member)
        except zlib.error:
            return damaged
        except Exception:  # another kind of damage: try the next byte
            continue
    raise AssertionError("no byte of the archive makes inflating it fail")


@pytest.mark.parametrize("method", METHODS)
def test_every_single_byte_flip_is_a_master_file_error_or_the_same_contents(method: int) -> None:
    good = ARCHIVES[method]
    assert extract_single(good, MEMBER) == PAYLOAD
    refused = 0
    for position in range(len(good)):
        try:
            got = extract_single(flipped(good, position, 0xFF), MEMBER)
        except MasterFileError:
            refused += 1
            continue
        assert got == PAYLOAD, position  # damage outside the contents (a timestamp, ...)
    assert refused > len(good) // 2  # most bytes matter


def test_inflate_errors_are_master_file_errors() -> None:
    good = ARCHIVES[zipfile.ZIP_DEFLATED]
    with pytest.raises(MasterFileError, match="damaged zip archive: Error -3"):
        extract_single(inflate_error_copy(good, MEMBER), MEMBER)


@given(
    st.sampled_from(METHODS),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=4),
)
@example(zipfile.ZIP_DEFLATED, [(100, 0xFF)])  # zlib.error
@example(zipfile.ZIP_LZMA, [(46, 0x01)])  # lzma.LZMAError
@example(zipfile.ZIP_STORED, [(15157, 0xFF)])  # ValueError: the directory's offset
def test_corrupt_bytes_never_raise_anything_but_master_file_error(
    method: int, flips: list[tuple[int, int]]
) -> None:
    data = ARCHIVES[method]
    for position, mask in flips:
        data = flipped(data, position, mask)
    try:
        contents = extract_single(data, MEMBER)
    except MasterFileError:
        return
    # Accepted only when the contents are intact (the CRC is checked) and parse the same.
    assert contents == PAYLOAD
    assert parse_domestic(contents, "KOSPI") == parse_domestic(PAYLOAD, "KOSPI")


@pytest.mark.parametrize(
    ("flag", "match"),
    [("method", "compression method is not supported"), ("encrypted", "password required")],
)
def test_an_unsupported_method_or_encryption_is_refused(flag: str, match: str) -> None:
    damaged = bytearray(ARCHIVES[zipfile.ZIP_STORED])
    central = bytes(damaged).rfind(b"PK\x01\x02")
    if flag == "method":  # 9: deflate64, which zipfile cannot inflate
        damaged[8:10] = damaged[central + 10 : central + 12] = (9).to_bytes(2, "little")
    else:
        damaged[6] |= 1
        damaged[central + 8] |= 1
    with pytest.raises(MasterFileError, match=match):
        extract_single(bytes(damaged), MEMBER)
