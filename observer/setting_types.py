"""The bounded value types every settings table is built from, and the strict table base."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "DAY_S",
    "ClockTime",
    "Days",
    "HostName",
    "Percent",
    "PhaseName",
    "Positive",
    "PositiveFloat",
    "ProgramName",
    "Seconds",
    "SecondsOrZero",
    "Strict",
]

# Every float has an upper bound as well as a lower one: TOML's `inf` (and `1e400`) passes
# any lower bound, and an infinite rate divides by zero, an infinite grace never kills, an
# infinite timeout never fires. NaN fails every bound.
DAY_S = 86_400.0  # no duration of a system that runs a trading day needs more
Positive = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0, le=1e6)]  # ratios, weights, rates, percentages
Seconds = Annotated[float, Meta(gt=0, le=DAY_S)]  # timeouts, grace periods, intervals
SecondsOrZero = Annotated[float, Meta(ge=0, le=DAY_S)]
Percent = Annotated[float, Meta(ge=0, le=100)]
ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]  # "HH:MM" KST
ProgramName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# A host's name, qualifying its bus sources (``track_b@c2``); empty: not qualified.
HostName = Annotated[str, Meta(pattern=r"^([a-z0-9][a-z0-9_-]{0,31})?$")]
PhaseName = Literal[
    "idle", "warmup", "track_a_only", "full_operation", "track_a_closing", "shutdown"
]
Days = Literal["sessions", "daily", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A settings table: frozen, keyword-only, and an unknown key is an error."""
