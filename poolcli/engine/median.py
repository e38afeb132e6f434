"""median: the lower middle or the exact midpoint of each window.

The general path gathers windows in bounded blocks and keeps each window's stable sort order (the
backward pass needs it). Forward alone, three shortcuts (engine/shortcuts.FastPaths, twin-tested in
tests/test_median_paths.py) give the same bits faster: OpenCV's medianBlur for 8-bit images under
odd square windows (`median_opencv`), counting ranks for large overlapping windows
(`median_counts`, engine/ranks.py), and sorting the windows' values themselves, copied from strided
views (`median_values`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..backends import opencv
from ..core.geometry import AxisGeometry, PoolPlan
from . import progress, ranks
from .divisors import window_taps
from .gather import gather_windows, row_major_blocks
from .layout import pooled_last, restore_pooled_axes
from .shortcuts import BUDGETS, FAST_PATHS
from .wide import carry, limbs_to_float, split_limbs


def median_pool(xp, a, plan: PoolPlan, original_pooled_shape, requested: np.dtype | None = None,
            routes: bool = False, missing=None):
    """Median of the real cells of each window, and, with `routes`, what the backward pass needs.

    Windows are gathered (taps side by side) a block at a time, each block's taps under
    BUDGETS.median_block_bytes (one window at least), so memory stays O(input + output) plus a
    constant however many windows overlap; the blocks give the same values as one pass.
    Floats compute in float64; integers stay integers (the mean of the two middle values
    rounded half up, or, for a float `requested`, their exact mean rounded once).

    `missing` cells (engine/missing.py) are left out as padding is.

    Returns (median, routes): routes are None, or (low, high, count) with the pooled axes
    last: the flat input indices of each window's two middle cells in stable sorted
    order (absent taps last) and how many cells it has.
    """
    pooled = plan.pooled_axes
    moved = pooled_last(xp, a, pooled)
    gone = None if missing is None else pooled_last(xp, missing, pooled)
    batch = moved.ndim - len(pooled)
    out_shape = moved.shape[:batch] + tuple(g.out for g in plan.axes)
    float_out = a.dtype.kind == "f" or (requested is not None and requested.kind == "f")
    result_dtype = np.float64 if float_out else np.uint8 if a.dtype.kind == "b" else a.dtype
    axes = _regular_axes(xp, plan)
    if not routes and axes is not None and gone is None:  # the fast paths know no missing cells
        fast = _fast_median(a, moved, axes, plan, out_shape, result_dtype, float_out)
        if fast is not None:
            return fast, None
    median = xp.empty(out_shape, dtype=result_dtype)
    found = tuple(xp.empty(out_shape, dtype=np.int64) for _ in range(3)) if routes else None
    for block in row_major_blocks(out_shape, 8 * window_taps(plan), BUDGETS.median_block_bytes):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, sources = gather_windows(xp, moved[block[:batch]], plan, ranges,
                                                 original_pooled_shape if routes else None,
                                                 None if gone is None else gone[block[:batch]])
        median[block], order, count = _median_block(xp, values, valid, plan.nan_policy, float_out)
        progress.advance(count.size)
        if routes:
            for target, chosen in zip(found or (), (*_middle_sources(xp, order, count, sources), count)):
                target[block] = chosen
    return restore_pooled_axes(xp, median, pooled), found


def _regular_axes(xp, plan: PoolPlan) -> tuple[AxisGeometry, ...] | None:
    """The pooled axes of a NumPy array under regular windows (not adaptive bins), else None."""
    axes = tuple(g for g in plan.axes if isinstance(g, AxisGeometry))
    return axes if xp is np and len(axes) == len(plan.axes) else None


def _fast_median(a, moved, axes: tuple[AxisGeometry, ...], plan: PoolPlan, out_shape, result_dtype, float_out: bool):
    """The median by OpenCV's medianBlur, by counting or from sorted window values, in `a`'s
    layout; None where only the general path (each window's stable order) gives its result."""
    if _is_median_blur(a, axes, plan.pooled_axes):
        return _median_blur(a, axes, result_dtype)
    if not _sorts_values(a) or not _padding_is_small(axes):
        return None
    values = moved.view(np.uint8) if a.dtype.kind == "b" else moved
    if _counting_pays(axes, a.dtype):
        low, high, count, nans = ranks.middle_values(values, axes, out_shape)
        median = _middle_of(low, high, count, nans > 0 if plan.nan_policy == "propagate" else None, float_out)
    else:
        median = _sorted_windows_median(values, axes, plan.nan_policy, out_shape, result_dtype, float_out)
    return restore_pooled_axes(np, median, plan.pooled_axes)


def _padding_is_small(axes: tuple[AxisGeometry, ...]) -> bool:
    """Whether the padding (and ceil-mode overhang) the fast paths materialise stays near the
    input's size, and windows are not mostly padding; else the general path, which visits
    only the taps that reach the input (a window of 2**62 over 10 cells)."""
    padded = math.prod(g.size + g.pad_lo + _overhang(g) for g in axes)
    return (padded <= 4 * math.prod(g.size for g in axes) + (1 << 20)
            and math.prod(g.window for g in axes) <= 4 * math.prod(g.most_taps for g in axes) + 64)


def _overhang(g: AxisGeometry) -> int:
    """Cells past the input's end that the last window reaches (padding or ceil mode)."""
    return max(0, (g.out - 1) * g.stride + g.span - g.size - g.pad_lo)


def _sorts_values(a) -> bool:
    """Whether the windows' values may be sorted themselves (faster than their stable order, and
    without gathering by index): the same result unless equal values differ, which only -0.0 and
    0.0 do."""
    if not FAST_PATHS.median_values:
        return False
    return a.dtype.kind != "f" or not bool(((a == 0) & np.signbit(a)).any())


def _is_median_blur(a, axes: tuple[AxisGeometry, ...], pooled) -> bool:
    """8-bit images (H, W) or (H, W, 1|3|4) under odd square windows wholly inside: OpenCV's
    medianBlur gives each window's middle value (its border rule never reaches these windows)."""
    k = axes[0].window
    return (FAST_PATHS.median_opencv and a.dtype == np.uint8 and tuple(pooled) == (0, 1)
            and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))) and k % 2 == 1 and k >= 3
            and all(g.window == k and g.dilation == 1 and g.pad_lo == 0 and (g.out - 1) * g.stride + k <= g.size
                    for g in axes))


def _median_blur(a, axes: tuple[AxisGeometry, ...], result_dtype):
    k = axes[0].window
    used = a[tuple(slice(0, (g.out - 1) * g.stride + k) for g in axes)]
    blurred = opencv.cv2().medianBlur(np.ascontiguousarray(used), k).reshape(used.shape)
    centres = tuple(slice(k // 2, k // 2 + (g.out - 1) * g.stride + 1, g.stride) for g in axes)
    median = blurred[centres].astype(result_dtype)
    progress.advance(median.size)
    return median


def _counting_pays(axes: tuple[AxisGeometry, ...], dtype: np.dtype) -> bool:
    """Large overlapping windows without dilation: counting (engine/ranks.py) beats sorting each
    (later for 8- and 16-bit values, which sort fastest)."""
    least = BUDGETS.median_count_taps * (4 if dtype.itemsize <= 2 else 1)
    return (FAST_PATHS.median_counts and all(g.dilation == 1 for g in axes)
            and any(g.stride < g.window for g in axes) and math.prod(g.most_taps for g in axes) >= least
            and ranks.fits(axes))


def _middle_of(low, high, count, has_nan, float_out: bool):
    """The median from each window's two middle values (see the two functions below)."""
    if low.dtype.kind == "f":
        return _middle_of_floats(np, low.astype(np.float64), high.astype(np.float64), count, has_nan)
    return _middle_of_integers(np, low, high, float_out)


def _sorted_windows_median(moved, axes: tuple[AxisGeometry, ...], nan_policy: str, out_shape, result_dtype,
                           float_out: bool):
    """The median of every window (pooled axes last in `moved`) from its sorted values: absent
    taps (zero padding, the ceil-mode overhang) are NaN for floats, the largest value for
    integers, so they sort last; the windows are strided views, copied a block at a time."""
    m = len(axes)
    floats = moved.dtype.kind == "f"
    widths = [(0, 0)] * (moved.ndim - m) + [(g.pad_lo, _overhang(g)) for g in axes]
    windows = _window_view(np.pad(moved, widths, constant_values=np.nan if floats else np.iinfo(moved.dtype).max),
                           axes)
    nans = None
    if floats and nan_policy == "propagate" and bool(np.isnan(moved).any()):
        nans = _window_view(np.pad(np.isnan(moved), widths), axes)  # real NaNs, not the padding
    counts = functools.reduce(np.multiply.outer, [g.count_real() for g in axes])
    median = np.empty(out_shape, dtype=result_dtype)
    taps = math.prod(windows.shape[-m:])
    sort_dtype = np.int16 if moved.dtype.itemsize == 1 else moved.dtype  # NumPy's SIMD sorts start at 16 bits
    for block in row_major_blocks(out_shape, 2 * windows.itemsize * taps, BUDGETS.median_block_bytes):
        view = windows[block]
        values = np.empty(view.shape[:-m] + (taps,), dtype=sort_dtype)
        np.copyto(values.reshape(view.shape), view)
        values.sort(axis=-1)
        count = (~np.isnan(values)).sum(axis=-1) if floats else np.broadcast_to(counts[block[-m:]], values.shape[:-1])
        low, high = (np.take_along_axis(values, position[..., None], axis=-1)[..., 0]
                     for position in _middle_positions(np, count))
        has_nan = None if nans is None else nans[block].any(axis=tuple(range(-m, 0)))
        median[block] = _middle_of(low.astype(moved.dtype), high.astype(moved.dtype), count, has_nan, float_out)
        progress.advance(count.size)
    return median


def _window_view(padded, axes: tuple[AxisGeometry, ...]):
    """(batch..., out..., window...) view of every window of `padded` (its pads all inside)."""
    m = len(axes)
    view = sliding_window_view(padded, tuple(g.span for g in axes), axis=tuple(range(padded.ndim - m, padded.ndim)))
    outs = [slice(0, (g.out - 1) * g.stride + 1, g.stride) for g in axes]
    key: tuple = (Ellipsis, *outs, *(slice(None, None, g.dilation) for g in axes))
    return view[key]


def _middle_of_floats(xp, low, high, count, has_nan):
    """The median of float windows from their two middle values (float64), how many values each
    window has and, under nan_policy="propagate", which windows hold a NaN (else None)."""
    mean = (low + high) / 2
    mean = xp.where(xp.isinf(mean) & xp.isfinite(low) & xp.isfinite(high), low / 2 + high / 2, mean)
    median = xp.where(low == high, low, mean)
    median = xp.where(count == 0, np.nan, median)
    if has_nan is not None:
        median = xp.where(has_nan, np.nan, median)
    return median


def _middle_of_integers(xp, low, high, float_out: bool):
    """The median of integer windows from their two middle values: their exact mean as a float,
    or rounded half up."""
    return _exact_midpoint(xp, low, high) if float_out else _midpoint_half_up(low, high)


def _median_block(xp, values, valid, nan_policy: str, float_out: bool):
    """(median, order, count) over the last axis of gathered windows: the stable sort order
    of the taps with absent ones last, and how many are present."""
    if values.dtype.kind == "f":
        return _float_median(xp, values, valid, nan_policy)
    if values.dtype.kind == "b":
        values = values.view(np.uint8)
    order = xp.argsort(values, axis=-1, kind="stable")
    valid = xp.broadcast_to(valid, values.shape)
    if not bool(valid.all()):  # padding: a second stable sort puts absent taps last
        absent = ~xp.take_along_axis(valid, order, axis=-1)
        order = xp.take_along_axis(order, xp.argsort(absent.view(np.uint8), axis=-1, kind="stable"), axis=-1)
    count = valid.sum(axis=-1)
    low, high = (_middle_value(xp, values, order, position) for position in _middle_positions(xp, count))
    return _middle_of_integers(xp, low, high, float_out), order, count


def _float_median(xp, values, valid, nan_policy: str):
    cells = values.astype(np.float64)
    has_nan = (xp.isnan(cells) & valid).any(axis=-1) if nan_policy == "propagate" else None
    cells = xp.where(valid, cells, np.nan)
    order = xp.argsort(cells, axis=-1, kind="stable")
    count = (~xp.isnan(cells)).sum(axis=-1)
    low, high = (_middle_value(xp, cells, order, position) for position in _middle_positions(xp, count))
    return _middle_of_floats(xp, low, high, count, has_nan), order, count


def _middle_positions(xp, count):
    return xp.maximum((count - 1) // 2, 0), count // 2


def _middle_value(xp, values, order, position):
    tap = xp.take_along_axis(order, position[..., None], axis=-1)
    return xp.take_along_axis(values, tap, axis=-1)[..., 0]


def _midpoint_half_up(a, b):
    """floor((a + b) / 2 + 1/2) of two integers, without overflow at any width."""
    return (a >> 1) + (b >> 1) + (((a & 1) + (b & 1) + 1) >> 1)


def _exact_midpoint(xp, a, b):
    """(a + b) / 2 of two integers as the nearest float64 (64-bit values too)."""
    a_high, a_low = split_limbs(xp, a)
    b_high, b_low = split_limbs(xp, b)
    return limbs_to_float(xp, *carry(xp, a_high + b_high, a_low + b_low)) / 2


def _middle_sources(xp, order, count, sources):
    """Flat input indices of each window's two middle cells."""
    sources = xp.broadcast_to(sources, order.shape)
    return tuple(_middle_value(xp, sources, order, position) for position in _middle_positions(xp, count))

