"""Whether the minute bars' label is off by one minute: stored trades agree with them shifted.

KIS's ``stck_cntg_hour`` may name a bar's opening minute or its closing one (UNCONFIRMED;
``[gap_recovery] bar_label``). Read with the wrong one, every bar lands a minute off: each
minute's stored volume disagrees with its own bar but agrees with its neighbour's.
`label_shift` finds that from one symbol's minutes, and `advice` says what to set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from observer.kis.bars import BarLabel

__all__ = ["LEAST_MINUTES", "SHIFT_SHARE", "advice", "label_shift"]

_MINUTE_NS = 60 * 1_000_000_000
SHIFT_SHARE = 0.8  # of the compared minutes with trades that must agree shifted
LEAST_MINUTES = 5  # fewer compared minutes with trades prove nothing


def label_shift(
    minutes: Sequence[int],
    stored: Mapping[int, tuple[int, int]],
    bars: Mapping[int, int],
    share: float = SHIFT_SHARE,
    least: int = LEAST_MINUTES,
) -> int:
    """The shift (+1 or -1 minute) under which the bars agree with the stored trades, or 0.

    ``minutes`` are the watched minutes (opening instants, UTC ns), ``stored`` minute ->
    (volume, trades) of the stream, ``bars`` minute -> bar volume as labelled. A shift
    ``s`` is found when, of the minutes with stored trades whose neighbour ``m + s`` is
    also watched (at least ``least`` of them), ``share`` or more have the volume of the bar
    at ``m + s``, while fewer than ``share`` of the minutes with trades agree with their own
    bar. +1: the bar of a minute is labelled a minute late (the label is its end).
    """
    watched = set(minutes)
    traded = [m for m in minutes if stored.get(m, (0, 0))[0] > 0]
    if len(traded) < least:
        return 0
    own = sum(stored[m][0] == bars.get(m, 0) for m in traded)
    if own >= share * len(traded):
        return 0
    for shift in (1, -1):
        compared = [m for m in traded if m + shift * _MINUTE_NS in watched]
        agree = sum(stored[m][0] == bars.get(m + shift * _MINUTE_NS, 0) for m in compared)
        if len(compared) >= least and agree >= share * len(compared):
            return shift
    return 0


def advice(shift: int, label: BarLabel) -> str:
    """What to set when the bars read with ``label`` are ``shift`` minutes off."""
    fixes: dict[tuple[int, BarLabel], BarLabel] = {(1, "start"): "end", (-1, "end"): "start"}
    fixed = fixes.get((shift, label))
    if fixed is None:
        return f"no bar_label fixes a shift of {shift:+d} minute from {label!r}: report it"
    return f'set [gap_recovery] bar_label = "{fixed}" (now "{label}")'
