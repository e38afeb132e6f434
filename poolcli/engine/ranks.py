"""The two middle values of large overlapping windows by counting, not by sorting each window.

Sorting every window costs O(taps log taps) per output, so a 100x100 median over a photo sorts
10,000 values per pixel. Here the outputs go in tiles; in each tile's input region every value
gets its rank (one stable sort, ties in row-major order: the order in which a window lists its
taps, so the value chosen is the one a stable sort of the window would choose), the ranks are cut
into bins, and counts of the values of each bin and below, summed over every box of the region
(cumulative sums), tell each window in O(bins) which bin holds its middle values and how many come
before it. Only that bin's few values are then looked at, by position. The cost per output grows
with the window's side, not with its area.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from ..core.geometry import AxisGeometry
from . import progress
from .shortcuts import BUDGETS

TILE_WINDOWS = 4096  # windows per tile at least (fewer Python steps), the tile's region permitting


def middle_values(moved, axes: tuple[AxisGeometry, ...], out_shape):
    """(low, high, count, nans) of every window of `moved` (pooled axes last, zero pads absent,
    dilation 1): its two middle values in stable sorted order (NaN left out), how many values it
    has and how many NaNs."""
    m = len(axes)
    low = np.empty(out_shape, dtype=moved.dtype)
    high = np.empty(out_shape, dtype=moved.dtype)
    count = np.empty(out_shape, dtype=np.int64)
    nans = np.empty(out_shape, dtype=np.int64)
    for index in np.ndindex(moved.shape[:-m]):
        for outs in _tiles(axes):
            key = index + tuple(slice(rows.start, rows.stop) for rows in outs)
            low[key], high[key], count[key], nans[key] = _tile(moved[index], axes, outs)
            progress.advance(count[key].size)
    return low, high, count, nans


def fits(axes: tuple[AxisGeometry, ...]) -> bool:
    """Whether the counts of the smallest tile (a window's width of outputs) and a few bins fit
    BUDGETS.median_block_bytes."""
    return _region_cells(axes, _first_sides(axes)) * 4 * 8 <= BUDGETS.median_block_bytes


def _first_sides(axes) -> list[int]:
    return [min(max(1, -(-g.window // g.stride)), g.out) for g in axes]


def _region_cells(axes, sides) -> int:
    return math.prod(min((side - 1) * g.stride + g.window, g.size) for side, g in zip(sides, axes))


def _tiles(axes: tuple[AxisGeometry, ...]):
    """Ranges of outputs per axis: about one window's width of outputs, more for small windows
    (while the region's counts fit)."""
    sides = _first_sides(axes)
    while math.prod(sides) < TILE_WINDOWS and any(side < g.out for side, g in zip(sides, axes)):
        wider = [min(2 * side, g.out) for side, g in zip(sides, axes)]
        if _region_cells(axes, wider) * 4 * 8 > BUDGETS.median_block_bytes:
            break
        sides = wider
    return itertools.product(*(
        [range(start, min(start + side, g.out)) for start in range(0, g.out, side)] for side, g in zip(sides, axes)))


def _tile(x, axes, outs):
    starts = [np.arange(rows.start, rows.stop, dtype=np.int64) * g.stride - g.pad_lo for g, rows in zip(axes, outs)]
    lows = [max(0, int(s[0])) for s in starts]
    highs = [min(g.size, int(s[-1]) + g.window) for g, s in zip(axes, starts)]
    region = x[tuple(slice(lo, hi) for lo, hi in zip(lows, highs))]
    boxes = [(np.clip(s - lo, 0, hi - lo), np.clip(s + g.window - lo, 0, hi - lo))
             for g, s, lo, hi in zip(axes, starts, lows, highs)]
    flat = region.ravel()
    positions = np.flatnonzero(~np.isnan(flat)) if flat.dtype.kind == "f" else np.arange(flat.size)
    order = np.argsort(flat[positions], kind="stable")
    ranked = positions[order]  # the region's values in stable sorted order, as flat positions
    if not len(ranked):  # NaN only: no middle values
        nothing = np.zeros(tuple(len(rows) for rows in outs), dtype=np.int64)
        return nothing.astype(flat.dtype), nothing.astype(flat.dtype), nothing, _areas(boxes)
    bins = _bin_count(len(ranked), math.prod(len(rows) for rows in outs), region.ndim)
    size = max(1, -(-len(ranked) // bins))
    below = _counts_below(region.shape, ranked, size, bins, boxes)  # (bins + 1, tile...)
    count = below[bins - 1]
    nans = below[bins] - count
    lower, upper = np.maximum((count - 1) // 2, 0), count // 2
    coords = np.unravel_index(ranked, region.shape)
    low = _select(below[:bins], lower, coords, boxes, size)
    high = low if bool((lower == upper).all()) else _select(below[:bins], upper, coords, boxes, size)
    values = flat[ranked] if len(ranked) else np.zeros(1, dtype=flat.dtype)
    last = max(len(ranked) - 1, 0)
    return values[np.minimum(low, last)], values[np.minimum(high, last)], count, nans


def _areas(boxes):
    sides = [stop - start for start, stop in boxes]
    return functools.reduce(np.multiply.outer, sides)


def _bin_count(values: int, windows: int, m: int) -> int:
    """Bins balancing the counting (bins x region) against the look at one bin (windows x bin)."""
    best = math.sqrt(6 * windows * values / (3 * values + 2**m * windows + 1))
    most = BUDGETS.median_block_bytes // (4 * max(values, 1)) - 1  # the counts' table fits
    return int(max(min(round(best), values, most), 1))


def _counts_below(shape, ranked, size: int, bins: int, boxes):
    """counts[c, window]: the values of bins 0..c inside each window (bin `bins`: every cell,
    NaN included), by inclusion-exclusion over the corners of cumulative sums."""
    cells = math.prod(shape)
    which = np.full(cells, bins, dtype=np.int64)
    which[ranked] = np.arange(len(ranked)) // size
    marks = np.zeros((bins + 1, cells), dtype=np.int32)
    marks[which, np.arange(cells)] = 1
    table = np.zeros((bins + 1, *(n + 1 for n in shape)), dtype=np.int32)
    inner = table[(slice(None), *(slice(1, None) for _ in shape))]
    inner[...] = marks.reshape(bins + 1, *shape)
    for axis in range(1, len(shape) + 1):
        np.cumsum(inner, axis=axis, out=inner)
    counts = np.zeros((bins + 1, *(len(box[0]) for box in boxes)), dtype=np.int32)
    for corner in itertools.product((0, 1), repeat=len(shape)):
        index = np.ix_(*(box[side] for box, side in zip(boxes, corner)))
        if (len(shape) - sum(corner)) % 2:
            counts -= table[(slice(None), *index)]
        else:
            counts += table[(slice(None), *index)]
    return np.cumsum(counts, axis=0, out=counts)  # each bin's counts, then those of it and below


def _select(cumulative, targets, coords, boxes, size: int):
    """The stable rank of each window's value number `targets` (0-based): its bin from the
    cumulative counts, then that bin's values tested for being inside the window, in rank order."""
    bins = len(cumulative)
    which = np.minimum((cumulative <= targets).sum(axis=0), bins - 1)
    before = np.where(which > 0, np.take_along_axis(cumulative, np.maximum(which - 1, 0)[None], axis=0)[0], 0)
    within = (targets - before).ravel()
    which = which.ravel()
    grids = np.indices(targets.shape).reshape(len(boxes), -1)
    starts = [box[0][grid] for box, grid in zip(boxes, grids)]
    stops = [box[1][grid] for box, grid in zip(boxes, grids)]
    ranks = np.zeros(which.size, dtype=np.int64)
    by_bin = np.argsort(which, kind="stable")
    edges = np.searchsorted(which[by_bin], np.arange(bins + 1))
    for c in range(bins):
        windows = by_bin[edges[c]:edges[c + 1]]
        if not len(windows):
            continue
        first = c * size
        inside = np.ones((len(windows), len(coords[0][first:first + size])), dtype=bool)
        for coord, start, stop in zip(coords, starts, stops):
            cells = coord[first:first + size]
            inside &= (cells >= start[windows, None]) & (cells < stop[windows, None])
        seen = np.cumsum(inside, axis=1, dtype=np.int32)
        ranks[windows] = first + np.argmax(seen > within[windows, None], axis=1)
    return ranks.reshape(targets.shape)
