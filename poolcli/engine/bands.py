"""Bands: the output cut along its first pooled axis into runs of rows, each computed from
the input rows its windows read (the halo), so that pooling band by band gives the bits of
pooling the whole array.

A band of outputs [o0, o1) along an axis with window span `k_eff`, stride `s` and pads
(lo, hi) reads the input rows from its first window's start, ``o0 s - lo``, to its last
window's end, ``(o1 - 1) s - lo + k_eff``, and pools them with the same window, stride and
dilation. Padding stays where it is: a band that starts in the low padding reads from row 0
with the low pad (its pooled row k is output k), the band that holds the last outputs reads to
the input's end with the high pad and the ceil mode; every other band has no pad on that
axis, so the divisors (count_include_pad) count what the whole array's do. Rows the band
pooled beyond its own (partial windows of the ceil mode, or of the rows read for reflect
padding) are cut off. Reflect padding reads at least the rows it mirrors.

Every band but possibly the only one has at least enough outputs that the engine takes the
same path for it as for the whole array (its window-by-window reduction depends on how many
windows an axis has).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..core.geometry import AxisGeometry
from .shortcuts import BUDGETS


@dataclass(frozen=True)
class Band:
    """One band along the band axis: the outputs it gives, the rows it reads, how it pools them."""

    out: slice  # output rows of the band
    read: slice  # input rows read (the halo included)
    pads: tuple[int, int]  # (lo, hi) padding of the band axis when pooling the rows read
    skip: int  # pooled rows of the rows read that come before `out`

    @property
    def rows(self) -> int:
        return self.out.stop - self.out.start


def fewest_rows(window: int) -> int:
    """The fewest outputs a band may have: enough that the engine reduces the axis tap by tap
    whenever it does so for the whole array (engine.taps: window by window only where an axis
    has more than `window_wise_ratio` taps a window)."""
    return max(1, math.ceil(window / max(BUDGETS.window_wise_ratio, 1)))


def bands(geometry: AxisGeometry, rows: int, pad_mode: str) -> Iterator[Band]:
    """Bands of about `rows` outputs each (at least `fewest_rows`) covering every output."""
    out = geometry.out
    rows = max(rows, fewest_rows(geometry.window))
    o0 = 0
    while o0 < out:
        o1 = min(out, o0 + rows)
        if out - o1 < fewest_rows(geometry.window) or _overhangs(geometry, o1 - 1):
            o1 = out  # a short remainder joins this band; so do windows past the input's end
        yield band(geometry, o0, o1, pad_mode)
        o0 = o1


def _overhangs(geometry: AxisGeometry, o: int) -> bool:
    """Whether window `o` reads past the input's last row (into the high padding)."""
    return o * geometry.stride - geometry.pad_lo + geometry.span > geometry.size


def band(geometry: AxisGeometry, o0: int, o1: int, pad_mode: str) -> Band:
    """The band of outputs [o0, o1) (o1 = out for the band that holds the last outputs)."""
    n, s, lo, hi = geometry.size, geometry.stride, geometry.pad_lo, geometry.pad_hi
    last = o1 == geometry.out
    first = o0
    if last and pad_mode == "reflect" and hi:  # the mirrored rows n-1-hi .. n-2 must be read
        first = min(first, max(0, (n - 1 - hi + lo) // s))
    start = first * s - lo
    if start <= 0:
        first, start, pad_lo = 0, 0, lo  # reads from row 0 with the low pad: pooled row k is output k
    else:
        pad_lo = 0
    stop = n if last else (o1 - 1) * s - lo + geometry.span
    if pad_lo and pad_mode == "reflect":
        stop = max(stop, min(n, lo + 1))  # the mirrored rows 1 .. lo
    return Band(out=slice(o0, o1), read=slice(start, stop), pads=(pad_lo, hi if last else 0), skip=o0 - first)
