"""max and min: NaN-propagating extremes and the first index of the winning tap."""

from __future__ import annotations

import numpy as np

from ..core.geometry import PoolPlan
from ..core.modes import MODES
from .layout import index_along, row_major_strides, take_along
from .taps import reduce_windows


def _largest(mode: str) -> bool:
    return MODES[mode].keeps == "largest"


def _extreme_fill(dtype: np.dtype, mode: str, omit: bool):
    """The neutral element: padding and missing taps never win."""
    if dtype.kind == "b":
        return not _largest(mode)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if _largest(mode) else info.max
    if omit:
        return np.nan
    return -np.inf if _largest(mode) else np.inf


def omit_nans(plan: PoolPlan, dtype: np.dtype) -> bool:
    return plan.nan_policy == "omit" and dtype.kind == "f"


def extreme_pool(xp, a, plan: PoolPlan):
    omit = omit_nans(plan, a.dtype)
    if _largest(plan.mode):
        combine = xp.fmax if omit else xp.maximum
    else:
        combine = xp.fmin if omit else xp.minimum
    return reduce_windows(xp, a, plan, combine, _extreme_fill(a.dtype, plan.mode, omit))


def _better(xp, mode: str, dtype: np.dtype, omit: bool):
    """Whether a new value replaces the best so far (PyTorch: a NaN always replaces)."""
    strictly = xp.greater if _largest(mode) else xp.less
    if dtype.kind != "f":
        return strictly
    if omit:
        return lambda new, best: strictly(new, best) | (xp.isnan(best) & ~xp.isnan(new))
    return lambda new, best: strictly(new, best) | xp.isnan(new)


def arg_extreme(xp, a, plan: PoolPlan, original_pooled_shape):
    """Values and flat indices (row-major over the pooled axes) of each window's max/min.

    Reducing the last pooled axis first, then the earlier ones, each keeping the first
    strict winner, gives the first occurrence in row-major window order.
    """
    omit = omit_nans(plan, a.dtype)
    better = _better(xp, plan.mode, a.dtype, omit)
    fill = _extreme_fill(a.dtype, plan.mode, omit)
    flat_strides = row_major_strides(original_pooled_shape)
    values, indices = a, None
    for geometry, flat_stride in reversed(list(zip(plan.axes, flat_strides))):
        values, indices = _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill)
    return values, indices


def _arg_reduce_axis(xp, values, indices, geometry, flat_stride, better, fill):
    shape = list(values.shape)
    shape[geometry.axis] = geometry.out
    best = xp.full(shape, fill, dtype=values.dtype)
    best_index = xp.full(shape, -1, dtype=np.int64)
    broadcast = [1] * values.ndim
    for tap in geometry.taps:
        candidate = take_along(xp, values, geometry.axis, tap.src)
        positions = geometry.original_positions(tap.src_positions()) * flat_stride
        broadcast[geometry.axis] = len(positions)
        index = xp.asarray(positions, dtype=np.int64).reshape(broadcast)
        if indices is not None:
            index = take_along(xp, indices, geometry.axis, tap.src) + index
        index = xp.broadcast_to(index, candidate.shape)
        key = index_along(geometry.axis, tap.out if tap.is_slice else xp.asarray(tap.out))
        current, current_index = best[key], best_index[key]
        wins = better(candidate, current) | (current_index < 0)
        if tap.is_slice:
            xp.copyto(current, candidate, where=wins)
            xp.copyto(current_index, index, where=wins)
        else:
            best[key] = xp.where(wins, candidate, current)
            best_index[key] = xp.where(wins, index, current_index)
    return best, best_index

