"""median: windows gathered in bounded blocks, the lower middle or the exact midpoint."""

from __future__ import annotations

import numpy as np

from ..core.geometry import (
    PoolPlan,
)
from .divisors import window_taps
from .gather import gather_windows, row_major_blocks
from .layout import pooled_last, restore_pooled_axes
from .shortcuts import BUDGETS
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
    median = xp.empty(out_shape, dtype=result_dtype)
    found = tuple(xp.empty(out_shape, dtype=np.int64) for _ in range(3)) if routes else None
    for block in row_major_blocks(out_shape, 8 * window_taps(plan), BUDGETS.median_block_bytes):
        ranges = [range(*rows.indices(g.out)) for rows, g in zip(block[batch:], plan.axes)]
        values, valid, sources = gather_windows(xp, moved[block[:batch]], plan, ranges,
                                                 original_pooled_shape if routes else None,
                                                 None if gone is None else gone[block[:batch]])
        median[block], order, count = _median_block(xp, values, valid, plan.nan_policy, float_out)
        if routes:
            for target, chosen in zip(found or (), (*_middle_sources(xp, order, count, sources), count)):
                target[block] = chosen
    return restore_pooled_axes(xp, median, pooled), found


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
    median = _exact_midpoint(xp, low, high) if float_out else _midpoint_half_up(low, high)
    return median, order, count


def _float_median(xp, values, valid, nan_policy: str):
    cells = values.astype(np.float64)
    has_nan = (xp.isnan(cells) & valid).any(axis=-1) if nan_policy == "propagate" else None
    cells = xp.where(valid, cells, np.nan)
    order = xp.argsort(cells, axis=-1, kind="stable")
    count = (~xp.isnan(cells)).sum(axis=-1)
    low, high = (_middle_value(xp, cells, order, position) for position in _middle_positions(xp, count))
    mean = (low + high) / 2
    mean = xp.where(xp.isinf(mean) & xp.isfinite(low) & xp.isfinite(high), low / 2 + high / 2, mean)
    median = xp.where(low == high, low, mean)
    median = xp.where(count == 0, np.nan, median)
    if has_nan is not None:
        median = xp.where(has_nan, np.nan, median)
    return median, order, count


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

