"""Hypothesis strategies for every bus event, built from the structs' own type hints."""

from __future__ import annotations

import functools
import types
import typing
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import msgspec
from hypothesis import strategies as st

from bus.envelope import Envelope
from bus.events import EVENT_TYPES

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=None)


def for_type(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field's type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is int:
        return INT64
    if hint is str:
        return st.text(max_size=20)
    if hint is bool:
        return st.booleans()
    if hint is Decimal:
        return DECIMALS
    if hint is date:
        return st.dates()
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (types.UnionType, typing.Union):
        return st.one_of(*(for_type(a) for a in args))
    if hint is type(None):
        return st.none()
    if origin is tuple:
        return st.lists(for_type(args[0]), max_size=4).map(tuple)
    if origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=3)
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return struct_of(hint)
    raise TypeError(f"no strategy for {hint!r}")


@functools.cache  # built once a type: drawn inside a test, it was built again each example
def struct_of(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Instances of ``cls`` with every field drawn."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: for_type(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


EVENTS = st.one_of(*(struct_of(cls) for cls in EVENT_TYPES))
ENVELOPES = st.builds(
    Envelope,
    # within MAX_SOURCE_LENGTH, and without NUL (no database could store the source's mark)
    source=st.text(min_size=1, max_size=20).map(lambda s: s.replace("\x00", "0")),
    seq=st.integers(min_value=1, max_value=2**63 - 1),
    ts=INT64,
    event=EVENTS,
)
